import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

// MARK: Ingest

@Suite struct IngestTests {
    @Test func everyKindOfBadRecordIsDeadLetteredWithItsReasons() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let good = try history(days: 1, cards: 20)
            var lines = good.prefix(10).map(jsonLine)
            let bad: [(line: String, field: String)] = [
                ("{\"transaction_id\": \"t1\", \"card_id\": ", "record"),  // malformed JSON
                (
                    "{\"transaction_id\":\"t2\",\"card_id\":\"c\",\"amount\":\"lots\",\"timestamp\":\"2026-03-01T00:00:00Z\","
                        + "\"merchant_id\":\"m\",\"currency\":\"USD\"}", "amount"
                ),  // wrong type
                (
                    "{\"transaction_id\":\"t3\",\"amount\":5,\"timestamp\":\"2026-03-01T00:00:00Z\",\"merchant_id\":\"m\","
                        + "\"currency\":\"USD\"}", "card_id"
                ),  // missing field
                (
                    "{\"transaction_id\":\"t4\",\"card_id\":\"c\",\"amount\":5,\"timestamp\":\"2026-03-01T00:00:00Z\","
                        + "\"merchant_id\":\"m\",\"currency\":\"XXQ\"}", "currency"
                ),  // not ISO 4217
                (
                    "{\"transaction_id\":\"t5\",\"card_id\":\"c\",\"amount\":-5,\"timestamp\":\"yesterday\","
                        + "\"merchant_id\":\"m\",\"currency\":\"USD\"}", "timestamp"
                ),  // two problems at once
                ("plain text, not a record", "record"),
            ]
            lines += bad.map(\.line)
            let path = dir + "/in.jsonl"
            try writeLines(lines, to: path)
            let summary = try Ingestor(store: store).importFile(path)
            #expect(summary.read == lines.count)
            #expect(summary.accepted == 10)
            #expect(summary.deadLettered == bad.count)

            let raws: [String] = try query(dir, "SELECT raw FROM dead_letters ORDER BY line")
            let reasons: [String] = try query(dir, "SELECT reasons FROM dead_letters ORDER BY line")
            let linesNo: [Int] = try query(dir, "SELECT line FROM dead_letters ORDER BY line")
            #expect(raws == bad.map(\.line), "the dead-letter log keeps each record exactly")
            #expect(linesNo == Array(11...(10 + bad.count)))
            for (reason, expected) in zip(reasons, bad) {
                #expect(reason.contains("\"field\":\"\(expected.field)\""), "\(reason) should name \(expected.field)")
            }
            #expect(reasons[4].contains("\"field\":\"amount\""), "every problem of a record is reported")
        }
    }

    @Test func duplicatesAreRecordedNotDoubleCounted() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 4)
            let txs = try history(days: 2, cards: 30)
            let first = dir + "/a.jsonl"
            let second = dir + "/b.jsonl"
            // Within a file (line 3 repeats line 1) and across files (b repeats a's last 5).
            try writeLines([jsonLine(txs[0]), jsonLine(txs[1]), jsonLine(txs[0])] + txs[2..<50].map(jsonLine), to: first)
            try writeLines(txs[45..<80].map(jsonLine), to: second)
            let a = try Ingestor(store: store).importFile(first)
            let b = try Ingestor(store: store).importFile(second)
            #expect(a.accepted == 50 && a.duplicates == 1)
            #expect(b.accepted == 30 && b.duplicates == 5)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(runtime)
            let silver: [Int] = try query(dir, "SELECT COUNT(*) FROM silver_transactions")
            let distinct: [Int] = try query(dir, "SELECT COUNT(DISTINCT transaction_id) FROM silver_transactions")
            let recorded: [String] = try query(dir, "SELECT transaction_id FROM duplicates ORDER BY id")
            #expect(silver == [80] && distinct == [80])
            #expect(recorded == [txs[0].transactionID] + txs[45..<50].map(\.transactionID))
        }
    }
}

// MARK: Processing

@Suite struct EmbeddedRuntimeTests {
    @Test func aModelSwapMidStreamLosesNothingAndEveryDecisionNamesItsModel() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 3)
            let txs = try history(days: 4, cards: 80)
            let ingest = Ingestor(store: store)
            let half = txs.count / 2
            _ = try ingest.ingest(txs[..<half].map { IngestRecord(transaction: $0) }, source: "test")
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1), batch: 100)
            #expect(try runtime.step() > 0)  // v1 is serving
            try runtime.flush()
            let before = runtime.counters.decided
            _ = try ingest.ingest(txs[half...].map { IngestRecord(transaction: $0) }, source: "test")
            runtime.models.publish(try Scorer(artifact: amountModel(pivot: 50), version: 2))
            try drain(runtime)

            let ids: [String] = try query(
                dir, "SELECT transaction_id FROM silver_transactions ORDER BY arrival, \"partition\", \"offset\"")
            let versions: [Int] = try query(
                dir, "SELECT model_version FROM silver_transactions ORDER BY arrival, \"partition\", \"offset\"")
            #expect(Set(ids) == Set(txs.map(\.transactionID)) && ids.count == txs.count, "no transaction lost or repeated")
            #expect(versions.prefix(before).allSatisfy { $0 == 1 })
            #expect(versions.dropFirst(before).allSatisfy { $0 == 2 })
            #expect(versions.contains(2) && versions.first == 1)
            // Each model's own decisions: v2 (pivot $50) alerts on far more.
            let alerts1: [Int] = try query(dir, "SELECT COUNT(*) FROM alerts WHERE model_version = 1")
            let alerts2: [Int] = try query(dir, "SELECT COUNT(*) FROM alerts WHERE model_version = 2")
            #expect(alerts2[0] > alerts1[0])
        }
    }

    @Test func ruleFileChangesAreReloadedAndHitsRecorded() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let rulesPath = dir + "/rules.json"
            try #"{"rules": [{"name": "big", "when": "amount > 300", "action": "review"}]}"#
                .write(toFile: rulesPath, atomically: true, encoding: .utf8)
            let rules = try RuleFile(path: rulesPath, checkEvery: 0)
            let txs = try history(days: 3, cards: 60)
            let ingest = Ingestor(store: store)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 100_000), version: 1), rules: rules)
            let half = txs.count / 2
            _ = try ingest.ingest(txs[..<half].map { IngestRecord(transaction: $0) }, source: "test")
            try drain(runtime)
            // A new rule set, and a later modification time than the file had.
            try #"{"rules": [{"name": "tiny-online", "when": "amount < 5 and is_online == 1", "action": "decline"}]}"#
                .write(toFile: rulesPath, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: rulesPath)
            _ = try ingest.ingest(txs[half...].map { IngestRecord(transaction: $0) }, source: "test")
            try drain(runtime)
            #expect(rules.loads == 2)

            let firstHits: [Int] = try query(
                dir, "SELECT COUNT(*) FROM silver_transactions WHERE rule_hits = 'big' AND action = 'review'")
            let expectedFirst = txs[..<half].filter { $0.amount > 300 }.count
            #expect(firstHits == [expectedFirst] && expectedFirst > 0)
            let secondHits: [Int] = try query(
                dir, "SELECT COUNT(*) FROM silver_transactions WHERE rule_hits = 'tiny-online' AND action = 'decline'")
            let expectedSecond = txs[half...].filter { $0.amount < 5 && $0.channel == .online }.count
            #expect(secondHits == [expectedSecond] && expectedSecond > 0)
            let late: [Int] = try query(dir, "SELECT COUNT(*) FROM silver_transactions WHERE rule_hits = 'big' AND arrival > 1")
            #expect(late == [0], "the old rule no longer fires")
            let reasons: [String] = try query(
                dir,
                "SELECT reasons FROM alerts WHERE transaction_id IN "
                    + "(SELECT transaction_id FROM silver_transactions WHERE rule_hits = 'tiny-online') LIMIT 1")
            #expect(reasons.first?.contains("\"kind\":\"rule\",\"name\":\"tiny-online\"") == true)

            // A broken file keeps the last good rules and says why.
            try #"{"rules": [{"name": "x", "when": "amount >> 5", "action": "decline"}]}"#
                .write(toFile: rulesPath, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(10)], ofItemAtPath: rulesPath)
            #expect(rules.current().rules.map(\.name) == ["tiny-online"])
            #expect(rules.error?.contains("unknown operator '>>'") == true)
        }
    }

    @Test func ruleParsingNamesWhatIsWrong() {
        func error(_ json: String) -> String? {
            do {
                _ = try RuleBook(json: Data(json.utf8))
                return nil
            } catch { return error.message }
        }
        #expect(
            error(#"{"rules": [{"name": "a", "when": "speed > 5", "action": "decline"}]}"#)?.contains("unknown feature 'speed'")
                == true)
        #expect(
            error(#"{"rules": [{"name": "a", "when": "amount > lots", "action": "decline"}]}"#)?.contains(
                "'lots' is not a number") == true)
        #expect(
            error(#"{"rules": [{"name": "a", "when": "amount > 5", "action": "approve"}]}"#)?.contains(
                "\"review\" or \"decline\"") == true)
        #expect(
            error(#"{"rules": [{"name": "a", "when": "amount > 5 and", "action": "review"}]}"#)?.contains("ends with 'and'")
                == true)
        let book = try? RuleBook(
            json: Data(
                #"{"rules": [{"name": "a", "when": "amount > 5 and amount < 10 or tx_count_5min >= 3", "action": "review"}]}"#
                    .utf8))
        var f = FeatureVector()
        f[.amount] = 7
        #expect(book?.hits(f).count == 1)
        f[.amount] = 20
        #expect(book?.hits(f).isEmpty == true)
        f[.txCount5min] = 3
        #expect(book?.hits(f).count == 1)
    }
}

// MARK: Health and retraining

@Suite struct HealthTests {
    @Test func anAlertSpikeAndDeadLettersRaiseSystemAlerts() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let state = PipelineState()
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 400), version: 1), state: state)
            var check = HealthCheck(store: store.monitoring, state: state)
            let t0 = wallClock() - 1_000_000_000  // checks 1000, 700 and 400 s ago, then now

            // A normal week, then a quiet check: no alerts.
            let normal = try history(days: 7, cards: 100, seed: 5, fraudRate: 0.02)
            _ = try Ingestor(store: store).ingest(normal.map { IngestRecord(transaction: $0) }, source: "test")
            _ = try check.run(now: t0)
            try drain(runtime)
            let calm = try check.run(now: t0 + 300_000_000)
            #expect(calm.processed == normal.count)
            #expect(calm.alerts.isEmpty, "\(calm.alerts)")
            let baseline = try #require(calm.baselineAlertRate)

            // A spike: expensive purchases, many of them.
            var spike = try history(days: 1, cards: 100, seed: 6, fraudRate: 0.02)
            for i in spike.indices {
                spike[i].transactionID = "spike-\(i)"
                spike[i].timestamp = spike[i].timestamp + 7 * 86_400
                if i % 4 == 0 { spike[i].amount = 2_000 }
            }
            _ = try Ingestor(store: store).ingest(spike.map { IngestRecord(transaction: $0) }, source: "test")
            try drain(runtime)
            let report = try check.run(now: t0 + 600_000_000)
            let kinds = Set(report.alerts.map(\.kind))
            #expect(kinds.contains(.alertRateHigh), "\(report)")
            #expect(kinds.contains(.alertRateAboveBaseline))
            #expect((report.alertRate ?? 0) > 0.05 && (report.alertRate ?? 0) > 2 * baseline)
            #expect(!kinds.contains(.deadLetters))

            // Dead letters in the last 5 minutes.
            var bad = IngestBatch(source: "test")
            bad.deadLetters = [DeadLetter(source: "test", line: 1, issues: [FieldIssue(field: "record", problem: "x")], raw: [1])]
            _ = try store.ingest(bad)
            let withDead = try check.run(now: wallClock())
            #expect(withDead.alerts.contains { $0.kind == .deadLetters })
            #expect(withDead.deadLettersRecent == 1)
            let stored = try store.monitoring.systemAlerts(limit: 10)
            #expect(stored.contains { $0.kind == .deadLetters } && stored.contains { $0.kind == .alertRateHigh })
            #expect(try store.monitoring.latestHealth()?.checkedAt == withDead.checkedAt)
        }
    }
}

private func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

/// A clock that jumps to whatever time the scheduler sleeps until, and records the jumps.
private final class JumpingClock: SchedulerClock, @unchecked Sendable {
    // `@unchecked Sendable`: `time` and `sleeps` are touched only under `lock`.
    private let lock = NSLock()
    private var time: Date
    private var sleeps: [Date] = []
    init(_ start: Date) { time = start }
    func now() -> Date { lock.withLock { time } }
    func sleep(until date: Date) async throws {
        try Task.checkCancellation()
        let first = lock.withLock {
            sleeps.append(date)
            time = date
            return sleeps.count == 1
        }
        if !first { try await Task.sleep(for: .seconds(3_600)) }  // one run is enough: wait to be cancelled
    }
    var wakeUps: [Date] { lock.withLock { sleeps } }
}

private final class Outcomes: @unchecked Sendable {
    // `@unchecked Sendable`: `list` is touched only under `lock`.
    private let lock = NSLock()
    private var list: [RetrainingOutcome] = []
    func add(_ o: RetrainingOutcome) { lock.withLock { list.append(o) } }
    var all: [RetrainingOutcome] { lock.withLock { list } }
}

@Suite struct RetrainingTests {
    @Test func theScheduleFiresDailyAtTwoUTCAndParsesCron() throws {
        let daily = try CronSchedule()
        let t = Date(timeIntervalSince1970: 1_795_570_000)  // 2026-11-25T01:26:40Z
        #expect(ISO8601DateFormatter().string(from: daily.next(after: t)) == "2026-11-25T02:00:00Z")
        let next = daily.next(after: daily.next(after: t))
        #expect(ISO8601DateFormatter().string(from: next) == "2026-11-26T02:00:00Z")
        let quarter = try CronSchedule("*/15 * * * *")
        #expect(ISO8601DateFormatter().string(from: quarter.next(after: t)) == "2026-11-25T01:30:00Z")
        #expect(throws: PipelineError.self) { try CronSchedule("0 25 * * *") }
        #expect(throws: PipelineError.self) { try CronSchedule("0 2 * *") }
    }

    @Test func retrainingEndToEndWithAFakeClock() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-retrain-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteEventLog(directory: dir, partitions: 2)
        let registry = try ModelRegistry(directory: dir)
        var first = amountModel(pivot: 2_000)
        first.metrics = nil
        let v1 = try registry.register(first)
        _ = try registry.promote(version: v1, rule: PromotionRule(), force: true)
        let runtime = try embeddedRuntime(store, try Scorer(artifact: first, version: v1))

        var job = RetrainingJob(store: store.monitoring, catalog: registry, models: runtime.models)
        job.request.gbdt.trees = 40
        #expect(job.request.search != nil, "scheduled retraining selects its model as `train` does")
        job.request.search?.budget = 0.05  // a few candidates: a debug build is slow
        // The gate first: an empty warehouse is refused.
        let refused = try job.run()
        #expect(!refused.ran && refused.gate?.contains("fewer than") == true)

        let txs = try history(days: 12, cards: 150, seed: 9, fraudRate: 0.03)
        _ = try Ingestor(store: store).ingest(txs.map { IngestRecord(transaction: $0) }, source: "test")
        try drain(runtime)

        let clock = JumpingClock(Date(timeIntervalSince1970: 1_795_570_000))  // 2026-11-25T01:26:40Z
        var service = RetrainingService(
            job: job, schedule: try CronSchedule(), clock: clock, state: PipelineState(), monitoring: store.monitoring,
            logger: .init(label: "test"))
        let outcomes = Outcomes()
        service.onRun = { outcomes.add($0) }
        let task = Task { try await service.run() }
        for _ in 0..<600 where outcomes.all.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        task.cancel()
        _ = try? await task.value

        let outcome = try #require(outcomes.all.first)
        #expect(ISO8601DateFormatter().string(from: clock.wakeUps[0]) == "2026-11-25T02:00:00Z")
        #expect(outcome.ran && outcome.gate == nil)
        #expect(outcome.rows == txs.count)
        let version = try #require(outcome.version)
        #expect(try registry.record(version: version) != nil)
        #expect(try registry.artifact(version: version).search?.tried ?? 0 >= 1)
        #expect(outcome.promoted, "\(outcome.reason ?? "")")  // the amount-only model never had metrics to defend
        #expect(try registry.production()?.version == version)

        // Hot swap: the next batch is decided by the new model.
        let more = try history(days: 1, cards: 150, seed: 10).enumerated().map { i, t -> IngestRecord in
            var t = t
            t.transactionID = "after-\(i)"
            t.timestamp = t.timestamp + 30 * 86_400
            return IngestRecord(transaction: t)
        }
        _ = try Ingestor(store: store).ingest(more, source: "test")
        try drain(runtime)
        let versions: [Int] = try query(
            dir, "SELECT DISTINCT model_version FROM silver_transactions WHERE transaction_id LIKE 'after-%'")
        #expect(versions == [version])
    }
}

private final class Attempts: @unchecked Sendable {
    // `@unchecked Sendable`: `count` is touched only under `lock`.
    private let lock = NSLock()
    private var count = 0
    func next() -> Int {
        lock.withLock {
            count += 1
            return count
        }
    }
    var value: Int { lock.withLock { count } }
}

@Suite struct SupervisionTests {
    /// Issue 14, item 5: a stage failing on a full disk for two seconds (every attempt
    /// meanwhile throws) restarts after backoffs that grow, never gives up, and resumes by
    /// itself once the disk has room: a handful of attempts, not a hot loop, and never down.
    @Test func aStageFailingForTwoSecondsResumesByItself() async throws {
        let state = PipelineState()
        let attempts = Attempts()
        let firstAttempt = Mutex<ContinuousClock.Instant?>(nil)
        let resumed = Attempts()
        try await Supervised("runtime", state: state, logger: Logger(label: "test")) {
            _ = attempts.next()
            // Full for the first two seconds of the stage's life (the suite may start it late).
            let first = firstAttempt.withLock { start in
                if start == nil { start = ContinuousClock.now }
                return start!
            }
            if ContinuousClock.now < first + .seconds(2) {
                throw EventLogError(.storage, "committing runtime arrivals failed: SQLite error 13: database or disk is full")
            }
            _ = resumed.next()  // the disk has room again: the stage runs (and here returns)
        }.run()
        #expect(resumed.value == 1, "the stage resumed once the disk had room")
        #expect(attempts.value >= 2 && attempts.value <= 8, "backoff: \(attempts.value) attempts in about 2 s")
        #expect(state.isHealthy)
    }

    @Test func ingestionWaitsWhileTheRuntimeIsBehind() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let txs = try history(days: 3, cards: 60)
            let path = dir + "/in.jsonl"
            try writeLines(txs.map(jsonLine), to: path)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1), batch: 20)
            let maxLag: Int64 = 200
            let probe = PacingProbe()
            // The pace `import` uses: wait while too many records wait for the runtime.
            let ingestor = Ingestor(store: store, batchSize: 50) {
                while (try? store.processorLag()) ?? 0 > maxLag { usleep(200) }
                probe.record(store)
            }
            let done = StopSignal()
            let thread = Thread {
                _ = try? ingestor.importFile(path)
                done.stop()
            }
            thread.start()
            // A deliberately slow runtime.
            while try !done.isStopped || store.processorLag() > 0 {
                if try runtime.step() == 0 { usleep(200) } else { usleep(2_000) }
            }
            try runtime.flush()
            #expect(runtime.counters.decided == txs.count)
            #expect(probe.writes >= (txs.count + 49) / 50)
            #expect(probe.maxSeenLag <= Int(maxLag), "every batch was written with the log at most \(maxLag) behind")
            #expect(probe.maxSeenLag > 0)
        }
    }
}

/// The largest lag the ingest saw just before its writes, and how many writes.
private final class PacingProbe: @unchecked Sendable {
    // `@unchecked Sendable`: `seen` and `count` are touched only under `lock`.
    private let lock = NSLock()
    private var seen = 0
    private var count = 0
    func record(_ store: SQLiteEventLog) {
        let lag = (try? store.processorLag()) ?? 0
        lock.withLock {
            seen = max(seen, Int(lag))
            count += 1
        }
    }
    var maxSeenLag: Int { lock.withLock { seen } }
    var writes: Int { lock.withLock { count } }
}
