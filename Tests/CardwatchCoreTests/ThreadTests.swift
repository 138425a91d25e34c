import CardwatchCore
import Foundation
import Synchronization
import Testing

@Suite struct ThreadTests {
    /// The name reaches the system's thread (what `top -H` and `perf` show), cut to 15 bytes.
    @Test func namedThreadsCarryTheirNameToTheSystem() {
        #expect(systemName(ofThreadNamed: "cw-test-thread-name-long") == "cw-test-thread-")
    }

    /// A name cut to 15 bytes keeps whole characters (pthread refuses more than 15 bytes).
    @Test func longNamesAreCutAtACharacter() {
        #expect(systemName(ofThreadNamed: "décisions-aéé-x") == "décisions-aé")
    }

    /// What the system calls a thread started with `name`, read by the thread itself.
    private func systemName(ofThreadNamed name: String) -> String? {
        let done = DispatchSemaphore(value: 0)
        let comm = Mutex<String?>(nil)
        startThread(named: name) {
            let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            comm.withLock { $0 = name }
            done.signal()
        }
        done.wait()
        return comm.withLock { $0 }?.trimmingCharacters(in: .newlines)
    }
}
