import CardwatchPipeline
import Foundation
import Testing

@Suite struct RuleFileConcurrencyTests {
    /// Item 18: the rules, the last error and the reload count are read from other threads
    /// while the file changes and reloads (a data race under ThreadSanitizer before they were
    /// behind the lock; see scripts/tsan.sh).
    @Test func ruleFileIsReadWhileItReloads() throws {
        try withDirectory { dir in
            let path = dir + "/rules.json"
            let good = #"{"rules": [{"name": "big", "when": "amount > 300", "action": "review"}]}"#
            try good.write(toFile: path, atomically: true, encoding: .utf8)
            let rules = try RuleFile(path: path, checkEvery: 0)
            let stop = StopSignal()
            let readers = (0..<3).map { _ in
                Thread {
                    while !stop.isStopped {
                        _ = rules.current()
                        _ = rules.error
                        _ = rules.loads
                    }
                }
            }
            for reader in readers { reader.start() }
            for k in 0..<40 {
                try (k % 2 == 0 ? "{broken" : good).write(toFile: path, atomically: true, encoding: .utf8)
                _ = rules.current()  // the file changed (its size too): reloaded here or by a reader
                #expect((rules.error != nil) == (k % 2 == 0))
            }
            stop.stop()
            usleep(20_000)
            #expect(rules.loads >= 21)
        }
    }
}
