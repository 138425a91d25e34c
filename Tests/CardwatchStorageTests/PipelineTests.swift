import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Logging
import Testing

// MARK: Fixtures

/// A fresh temporary directory, removed afterwards.
private func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-pipeline-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// A logistic model on the amount alone: probability 0.5 at `pivot` dollars, ~1 well above.
private func amountModel(pivot: Double) -> ModelArtifact {
    let amount = Feature.amount.rawValue
    var weights = [Double](repeating: 0, count: Feature.count)
    weights[amount] = 0.01
    let model = LogisticModel(
        means: [Double](repeating: 0, count: Feature.count), scales: [Double](repeating: 1, count: Feature.count),
        weights: weights, intercept: -0.01 * pivot)
    return ModelArtifact(
        kind: .logistic, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion, logistic: model,
        thresholds: DecisionThresholds(review: 0.5, decline: 0.99))
}

private func history(days: Double, cards: Int = 100, seed: UInt64 = 3, fraudRate: Double = 0.02) throws -> [Transaction] {
    var config = GeneratorConfig()
    config.seed = seed
    config.cards = cards
    config.fraudRate = fraudRate
    let start = Timestamp(rfc3339: "2026-03-01T00:00:00Z")!
    var g = try TransactionGenerator(config: config, mode: .backfill(start: start, end: start + days * 86_400))
    var out: [Transaction] = []
    while let t = g.next() { out.append(t) }
    return out
}

private func writeLines(_ lines: [String], to path: String) throws {
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

private func jsonLine(_ t: Transaction) -> String {
    TransactionEncoder.jsonLine(t).trimmingCharacters(in: .newlines)
}

private func query<T: DatabaseValueConvertible>(_ dir: String, _ sql: String) throws -> [T] {
    let db = try DatabaseQueue(path: dir + "/log.sqlite")
    return try db.read { try T.fetchAll($0, sql: sql) }
}

/// Processes until the log is drained and every batch is committed.
private func drain(_ p: Processor) throws {
    while try p.step() > 0 {}
    try p.flush()
}

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
            let processor = try Processor(store: store, scorer: try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(processor)
            let silver: [Int] = try query(dir, "SELECT COUNT(*) FROM silver_transactions")
            let distinct: [Int] = try query(dir, "SELECT COUNT(DISTINCT transaction_id) FROM silver_transactions")
            let recorded: [String] = try query(dir, "SELECT transaction_id FROM duplicates ORDER BY id")
            #expect(silver == [80] && distinct == [80])
            #expect(recorded == [txs[0].transactionID] + txs[45..<50].map(\.transactionID))
        }
    }
}

// MARK: Processing

@Suite struct ProcessorTests {
    @Test func aModelSwapMidStreamLosesNothingAndEveryDecisionNamesItsModel() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 3)
            let txs = try history(days: 4, cards: 80)
            let ingest = Ingestor(store: store)
            let half = txs.count / 2
            _ = try ingest.ingest(txs[..<half].map { IngestRecord(transaction: $0) }, source: "test")
            let processor = try Processor(
                store: store, scorer: try Scorer(artifact: amountModel(pivot: 1000), version: 1), batchRecords: 100)
            #expect(try processor.step() > 0)  // v1 is serving
            let before = processor.processed
            _ = try ingest.ingest(txs[half...].map { IngestRecord(transaction: $0) }, source: "test")
            processor.swapModel(try Scorer(artifact: amountModel(pivot: 50), version: 2))
            try drain(processor)

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
            let processor = try Processor(
                store: store, scorer: try Scorer(artifact: amountModel(pivot: 100_000), version: 1), rules: rules)
            let half = txs.count / 2
            _ = try ingest.ingest(txs[..<half].map { IngestRecord(transaction: $0) }, source: "test")
            try drain(processor)
            // A new rule set, and a later modification time than the file had.
            try #"{"rules": [{"name": "tiny-online", "when": "amount < 5 and is_online == 1", "action": "decline"}]}"#
                .write(toFile: rulesPath, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: rulesPath)
            _ = try ingest.ingest(txs[half...].map { IngestRecord(transaction: $0) }, source: "test")
            try drain(processor)
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
    @Test func aFraudSpikeAndDeadLettersRaiseSystemAlerts() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let state = PipelineState()
            let processor = try Processor(store: store, scorer: try Scorer(artifact: amountModel(pivot: 400), version: 1))
            processor.state = state
            var check = HealthCheck(store: store, state: state)
            let t0 = wallClock() - 1_000_000_000  // checks 1000, 700 and 400 s ago, then now

            // A normal week, then a quiet check: no alerts.
            let normal = try history(days: 7, cards: 100, seed: 5, fraudRate: 0.02)
            _ = try Ingestor(store: store).ingest(normal.map { IngestRecord(transaction: $0) }, source: "test")
            _ = try check.run(now: t0)
            try drain(processor)
            let calm = try check.run(now: t0 + 300_000_000)
            #expect(calm.processed == normal.count)
            #expect(calm.alerts.isEmpty, "\(calm.alerts)")
            let baseline = try #require(calm.baselineFraudRate)

            // A spike: expensive purchases, many of them.
            var spike = try history(days: 1, cards: 100, seed: 6, fraudRate: 0.02)
            for i in spike.indices {
                spike[i].transactionID = "spike-\(i)"
                spike[i].timestamp = spike[i].timestamp + 7 * 86_400
                if i % 4 == 0 { spike[i].amount = 2_000 }
            }
            _ = try Ingestor(store: store).ingest(spike.map { IngestRecord(transaction: $0) }, source: "test")
            try drain(processor)
            let report = try check.run(now: t0 + 600_000_000)
            let kinds = Set(report.alerts.map(\.kind))
            #expect(kinds.contains(.fraudRateHigh), "\(report)")
            #expect(kinds.contains(.fraudRateAboveBaseline))
            #expect((report.fraudRate ?? 0) > 0.05 && (report.fraudRate ?? 0) > 2 * baseline)
            #expect(!kinds.contains(.deadLetters))

            // Dead letters in the last 5 minutes.
            var bad = IngestBatch(source: "test")
            bad.deadLetters = [DeadLetter(source: "test", line: 1, issues: [FieldIssue(field: "record", problem: "x")], raw: [1])]
            _ = try store.ingest(bad)
            let withDead = try check.run(now: wallClock())
            #expect(withDead.alerts.contains { $0.kind == .deadLetters })
            #expect(withDead.deadLettersRecent == 1)
            let stored = try store.systemAlerts(limit: 10)
            #expect(stored.contains { $0.kind == .deadLetters } && stored.contains { $0.kind == .fraudRateHigh })
            #expect(try store.latestHealth()?.checkedAt == withDead.checkedAt)
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
        let processor = try Processor(store: store, scorer: try Scorer(artifact: first, version: v1))
        let handle = ProcessorHandle(processor)

        var job = RetrainingJob(store: store, catalog: registry, models: handle.models)
        job.request.gbdt.trees = 40
        // The gate first: an empty warehouse is refused.
        let refused = try job.run()
        #expect(!refused.ran && refused.gate?.contains("fewer than") == true)

        let txs = try history(days: 12, cards: 150, seed: 9, fraudRate: 0.03)
        _ = try Ingestor(store: store).ingest(txs.map { IngestRecord(transaction: $0) }, source: "test")
        try handle.withProcessor { try drain($0) }

        let clock = JumpingClock(Date(timeIntervalSince1970: 1_795_570_000))  // 2026-11-25T01:26:40Z
        var service = RetrainingService(
            job: job, schedule: try CronSchedule(), clock: clock, state: PipelineState(), monitoring: store,
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
        try handle.withProcessor { try drain($0) }
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

private struct StageFailure: Error, CustomStringConvertible {
    var description: String { "the stage broke" }
}

@Suite struct SupervisionTests {
    @Test func aFailingStageIsRestartedThenReportedDownAfterThreeRestarts() async throws {
        let state = PipelineState()
        let flaky = Attempts()
        // Fails twice, then succeeds: restarted, still healthy.
        try await Supervised("flaky", state: state, logger: Logger(label: "test"), backoff: .milliseconds(1)) {
            if flaky.next() <= 2 { throw StageFailure() }
        }.run()
        #expect(flaky.value == 3)
        #expect(state.isHealthy)
        #expect(state.stageHealth["flaky"]?.failures == 2 && state.stageHealth["flaky"]?.down == false)

        // Always fails: the first run and 3 restarts, then down; the pipeline is unhealthy.
        let broken = Attempts()
        try await Supervised("broken", state: state, logger: Logger(label: "test"), backoff: .milliseconds(1)) {
            _ = broken.next()
            throw StageFailure()
        }.run()
        #expect(broken.value == 4)
        #expect(!state.isHealthy)
        #expect(state.stageHealth["broken"]?.down == true && state.stageHealth["broken"]?.lastError == "the stage broke")
    }

    @Test func ingestionWaitsWhileTheProcessorIsBehind() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let txs = try history(days: 3, cards: 60)
            let path = dir + "/in.jsonl"
            try writeLines(txs.map(jsonLine), to: path)
            let processor = try Processor(
                store: store, scorer: try Scorer(artifact: amountModel(pivot: 1000), version: 1), batchRecords: 20)
            let maxLag: Int64 = 200
            let probe = PacingProbe()
            // The pace `import` uses: wait while too many records wait for the processor.
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
            // A deliberately slow processor.
            while try !done.isStopped || store.processorLag() > 0 {
                if try processor.step() == 0 { usleep(200) } else { usleep(2_000) }
                try processor.flush()
            }
            #expect(processor.processed == txs.count)
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

/// The SQLite store, except that its `failAt`-th processor commit fails.
private final class FlakyStore: PipelineStore, @unchecked Sendable {
    // `@unchecked Sendable`: `commits` is touched only under `lock`; `base` is Sendable.
    let base: SQLiteEventLog
    private let lock = NSLock()
    private var commits = 0
    let failAt: Int
    init(_ base: SQLiteEventLog, failAt: Int) {
        self.base = base
        self.failAt = failAt
    }
    var partitions: Int { base.partitions }
    func append(_ topic: Topic, _ records: [(key: String, payload: [UInt8])]) throws -> [LogPosition] {
        try base.append(topic, records)
    }
    func read(_ topic: Topic, partition: Int, from offset: Int64, limit: Int) throws -> [LogRecord] {
        try base.read(topic, partition: partition, from: offset, limit: limit)
    }
    func endOffset(_ topic: Topic, partition: Int) throws -> Int64 { try base.endOffset(topic, partition: partition) }
    func committedOffset(group: String, topic: Topic, partition: Int) throws -> Int64? {
        try base.committedOffset(group: group, topic: topic, partition: partition)
    }
    func commit(group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool) throws {
        try base.commit(group: group, topic: topic, partition: partition, offset: offset, allowBackwards: allowBackwards)
    }
    func ingest(_ batch: IngestBatch) throws -> IngestOutcome { try base.ingest(batch) }
    func ingest(
        _ batch: IngestBatch, deciding decide: (_ previous: Int64, _ arrival: RecentArrival) throws -> ProcessedBatch?
    ) throws -> IngestOutcome {
        try base.ingest(batch) { previous, arrival in
            let decided = try decide(previous, arrival)
            if decided != nil, countCommit() == failAt { throw StageFailure() }
            return decided
        }
    }
    func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
        try base.ingestLabels(labels, source: source, resumeAt: resumeAt)
    }
    func resumePosition(source: String) throws -> Int64? { try base.resumePosition(source: source) }
    func commit(_ batch: ProcessedBatch) throws {
        if countCommit() == failAt { throw StageFailure() }
        try base.commit(batch)
    }
    private func countCommit() -> Int {
        lock.withLock {
            commits += 1
            return commits
        }
    }
    func processorPosition() throws -> Int64 { try base.processorPosition() }
    func arrivals(after arrival: Int64, records: Int) throws -> [Arrival] { try base.arrivals(after: arrival, records: records) }
    func latestCheckpoint(atMost arrival: Int64) throws -> Checkpoint? { try base.latestCheckpoint(atMost: arrival) }
    func waitForCheckpoints() throws { try base.waitForCheckpoints() }
    func processedTransactions(_ ids: [String], before arrival: Int64) throws -> [String: (
        merchantID: String, time: Timestamp
    )] { try base.processedTransactions(ids, before: arrival) }
}

@Suite struct StageFailureTests {
    /// A commit fails mid-stream; the handle rebuilds the processor from the store and the
    /// warehouse ends as after a run without the failure.
    @Test func aFailedCommitIsRecoveredExactlyOnce() throws {
        try withDirectory { root in
            let txs = try history(days: 6, cards: 120, seed: 12)
            var lastSilver: [[String]] = []
            for failAt in [0, 3] {  // 0: never fails
                let dir = root + "/run\(failAt)"
                let base = try SQLiteEventLog(directory: dir, partitions: 3)
                let store = FlakyStore(base, failAt: failAt)
                let scorer = try Scorer(artifact: amountModel(pivot: 700), version: 1)
                let make: @Sendable () throws -> Processor = {
                    try Processor(store: store, scorer: scorer, batchRecords: 300, checkpointEvery: 2)
                }
                let handle = ProcessorHandle(try make(), rebuild: make)
                let ingest = Ingestor(store: base)
                for chunk in stride(from: 0, to: txs.count, by: 400) {
                    _ = try ingest.ingest(
                        txs[chunk..<min(txs.count, chunk + 400)].map { IngestRecord(transaction: $0) }, source: "t")
                }
                var failures = 0
                while true {
                    do {
                        let n = try handle.withProcessor { p -> Int in
                            let n = try p.step()
                            try p.flush()
                            return n
                        }
                        if n == 0 { break }
                    } catch is StageFailure {
                        failures += 1
                    }
                }
                #expect(failures == (failAt == 0 ? 0 : 1))
                let silver: [String] = try query(
                    dir,
                    "SELECT transaction_id || ':' || printf('%.17g', fraud_probability) || ':' || printf('%.17g', tx_count_1hr) "
                        + "|| ':' || risk_tier FROM silver_transactions ORDER BY transaction_id")
                lastSilver.append(silver)
                #expect(silver.count == txs.count)
            }
            #expect(lastSilver[0] == lastSilver[1], "the recovered run decided exactly as the clean one")
        }
    }
}

@Suite struct InlineDecisionTests {
    /// One append of the plan: transactions (decided in their append's transaction, or left to
    /// the processor's loop) or labels.
    enum Append {
        case transactions([Transaction], inline: Bool)
        case labels([LabelEvent])
    }

    /// Random chunks of a history, a repeated id now and then, labels in between.
    static func plan(_ txs: [Transaction], seed: UInt64) -> [Append] {
        var rng = SplitMix(seed: seed)
        var plan: [Append] = []
        var i = 0
        while i < txs.count {
            let end = min(txs.count, i + Int.random(in: 1...60, using: &rng))
            var chunk = Array(txs[i..<end])
            if i > 0 && Bool.random(using: &rng) { chunk.append(txs[Int.random(in: 0..<i, using: &rng)]) }
            plan.append(.transactions(chunk, inline: Int.random(in: 0..<4, using: &rng) != 0))
            if Int.random(in: 0..<4, using: &rng) == 0 {
                let t = txs[Int.random(in: 0..<end, using: &rng)]
                plan.append(
                    .labels([
                        LabelEvent(
                            transactionID: t.transactionID, isFraud: Bool.random(using: &rng), reportedAt: t.timestamp + 60)
                    ]))
            }
            i = end
        }
        return plan
    }

    /// What a run leaves in the warehouse, batch timing aside.
    static func warehouse(_ dir: String) throws -> [String] {
        let silver: [String] = try query(
            dir,
            "SELECT transaction_id || ':' || arrival || ':' || printf('%.17g', fraud_probability) || ':' "
                + "|| printf('%.17g', tx_count_1hr) || ':' || printf('%.17g', merchant_fraud_rate_7d) || ':' || risk_tier "
                + "|| ':' || coalesce(label, '-') FROM silver_transactions ORDER BY transaction_id")
        let gold: [String] = try query(
            dir,
            "SELECT card_id || ':' || transactions || ':' || amount_micros || ':' || alerts || ':' || last_risk_tier "
                + "FROM gold_card_profiles ORDER BY card_id")
        let hourly: [String] = try query(
            dir, "SELECT hour || ':' || transactions || ':' || amount_micros || ':' || alerts FROM gold_hourly ORDER BY hour")
        let labels: [String] = try query(
            dir, "SELECT transaction_id || ':' || is_fraud || ':' || matched || ':' || arrival FROM labels ORDER BY arrival")
        let alerts: [String] = try query(dir, "SELECT transaction_id || ':' || reasons FROM alerts ORDER BY transaction_id")
        let duplicates: [String] = try query(dir, "SELECT transaction_id FROM duplicates ORDER BY id")
        return silver + ["--"] + gold + ["--"] + hourly + ["--"] + labels + ["--"] + alerts + ["--"] + duplicates
    }

    /// Batches decided in their append's transaction (the HTTP API's path), interleaved at
    /// random with appends by other writers (transactions and labels, which the processor
    /// catches up on first), and with one commit failing and its batch sent again: the
    /// warehouse ends exactly as when every append goes to the log and the processor's loop
    /// decides it.
    @Test(arguments: [1, 2, 3, 4] as [UInt64]) func decidingInTheAppendEqualsTheProcessorsLoop(seed: UInt64) throws {
        try withDirectory { root in
            let txs = try history(days: 5, cards: 90, seed: 20 + seed)
            let plan = Self.plan(txs, seed: seed)
            #expect(plan.contains { if case .transactions(_, false) = $0 { true } else { false } })
            #expect(plan.contains { if case .labels = $0 { true } else { false } })
            let scorer = try Scorer(artifact: amountModel(pivot: 700), version: 1)
            var results: [[String]] = []
            for run in ["loop", "inline"] {
                let dir = root + "/" + run
                let base = try SQLiteEventLog(directory: dir, partitions: 3)
                // The loop run never fails; the inline one fails its seventh commit (inline or the writer's).
                let store = FlakyStore(base, failAt: run == "loop" ? 0 : 7)
                let make: @Sendable () throws -> Processor = {
                    try Processor(store: store, scorer: scorer, batchRecords: 50, checkpointEvery: 3)
                }
                let handle = ProcessorHandle(try make(), rebuild: make)
                var failures = 0
                var labelsSent: Int64 = 0
                for append in plan {
                    switch append {
                    case .transactions(let chunk, let inline):
                        var batch = IngestBatch(source: "t")
                        batch.records = chunk.map { IngestRecord(transaction: $0) }
                        guard run == "inline" && inline else {
                            _ = try base.ingest(batch)
                            continue
                        }
                        while true {
                            do {
                                let (outcome, decided) = try handle.withProcessor { try $0.ingestAndDecide(batch) }
                                #expect(decided?.transactions.count ?? 0 == outcome.accepted)
                                break
                            } catch is StageFailure {
                                failures += 1  // rolled back: sent again, as a client would
                            }
                        }
                    case .labels(let labels):
                        labelsSent += Int64(labels.count)
                        try base.ingestLabels(labels, source: "l", resumeAt: labelsSent)
                    }
                }
                while true {
                    do {
                        if try handle.withProcessor({ p -> Int in
                            let n = try p.step()
                            try p.flush()
                            return n
                        }) == 0 {
                            break
                        }
                    } catch is StageFailure {
                        failures += 1
                    }
                }
                #expect(failures == (run == "loop" ? 0 : 1))
                results.append(try Self.warehouse(dir))
            }
            #expect(results[0].count > txs.count)
            #expect(results[0] == results[1], "deciding inline left the warehouse as the processor's loop does")
        }
    }
}
