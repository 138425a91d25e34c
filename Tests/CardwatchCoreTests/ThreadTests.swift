import CardwatchCore
import Foundation
import Synchronization
import Testing

@Suite struct ThreadTests {
    /// The name reaches the system's thread (what `top -H` and `perf` show), cut to 15 bytes.
    @Test func namedThreadsCarryTheirNameToTheSystem() throws {
        let done = DispatchSemaphore(value: 0)
        let comm = Mutex<String?>(nil)
        startThread(named: "cw-test-thread-name-long") {
            let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            comm.withLock { $0 = name }
            done.signal()
        }
        done.wait()
        #expect(comm.withLock { $0 }?.trimmingCharacters(in: .newlines) == "cw-test-thread-")
    }

    /// A name cut to 15 bytes keeps whole characters (pthread refuses more than 15 bytes).
    @Test func longNamesAreCutAtACharacter() throws {
        let done = DispatchSemaphore(value: 0)
        let comm = Mutex<String?>(nil)
        startThread(named: "décisions-aéé-x") {
            let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            comm.withLock { $0 = name }
            done.signal()
        }
        done.wait()
        #expect(comm.withLock { $0 }?.trimmingCharacters(in: .newlines) == "décisions-aé")
    }
}
