import CardwatchPipeline
import Foundation
import Synchronization
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
            // Two threads read what the API and the health check read (the error, the reload
            // count), one the rules as the processor does; this thread changes the file, and
            // its reads of the rules reload it.
            let reads = Atomic<Int>(0)
            let readers =
                (0..<2).map { _ in
                    Thread {
                        // The values are used: a read whose result is dropped (`_ = rules.loads`) is not
                        // instrumented, and ThreadSanitizer would not see it.
                        var seen = 0
                        while !stop.isStopped {
                            seen &+= rules.loads + (rules.error == nil ? 0 : 1)
                            reads.add(1, ordering: .relaxed)
                        }
                        withExtendedLifetime(seen) {}
                    }
                } + [
                    Thread {
                        var rulesSeen = 0
                        while !stop.isStopped { rulesSeen &+= rules.current().rules.count }
                        withExtendedLifetime(rulesSeen) {}
                    }
                ]
            for reader in readers { reader.start() }
            while reads.load(ordering: .relaxed) < 1_000 { usleep(1_000) }  // the readers are running
            for k in 0..<200 {
                try (k % 2 == 0 ? "{broken" : good).write(toFile: path, atomically: true, encoding: .utf8)
                _ = rules.current()  // the file changed (its size too): reloaded here or by the reader
                #expect((rules.error != nil) == (k % 2 == 0))
            }
            stop.stop()
            usleep(20_000)
            #expect(rules.loads >= 101)
        }
    }
}
