import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

@testable import CardwatchStorage

/// A wall clock the tests move by hand (µs since 1970).
private final class FakeClock: Sendable {
    private let micros = Atomic<Int64>(1_800_000_000_000_000)
    var now: Int64 { micros.load(ordering: .relaxed) }
    func advance(_ d: Duration) {
        micros.add(d.components.seconds * 1_000_000 + d.components.attoseconds / 1_000_000_000_000, ordering: .relaxed)
    }
}

/// How much longer than the budgets timed tests may take: 1, or `CARDWATCH_TEST_TIME_SCALE`
/// (scripts/tsan.sh sets 10: under ThreadSanitizer everything runs several times slower).
let testTimeScale =
    Double(ProcessInfo.processInfo.environment["CARDWATCH_TEST_TIME_SCALE"] ?? "").flatMap { $0 >= 1 ? $0 : nil } ?? 1

/// Values gathered from any thread.
private final class Recorder<T: Sendable>: Sendable {
    private let values = Mutex<[T]>([])
    func add(_ v: T) { values.withLock { $0.append(v) } }
    var all: [T] { values.withLock { $0 } }
}

@Suite struct SupervisionPolicyTests {
    /// Item 5: each failure in a row doubles the wait (100 ms … 30 s); a stage failing without
    /// a stable run for over a minute is reported down, and health says so, yet it is still
    /// retried, and it runs again once the failure stops.
    @Test func restartsBackOffToTheCapAndALongFailureIsReportedDownButRetried() async throws {
        let clock = FakeClock()
        let state = PipelineState(now: clock.now)
        let delays = Recorder<Duration>()
        let seen = Recorder<PipelineState.StageHealth.Status>()
        let views = Recorder<PipelineHealth>()
        let attempts = Mutex(0)
        try await Supervised(
            "generator", state: state, logger: Logger(label: "test"),
            sleep: { d in
                delays.add(d)
                clock.advance(d)
            }, now: { clock.now }, jitter: { 1 }
        ) {
            let n = attempts.withLock {
                $0 += 1
                return $0
            }
            seen.add(state.stages(at: clock.now)["generator"]!.status)
            if n == 12 { views.add(PipelineHealth.at(clock.now, state: state, lastReport: nil, interval: .seconds(300))) }
            if n <= 14 { throw StageFailure() }
        }.run()
        #expect(attempts.withLock { $0 } == 15)
        let expected = (1...14).map { min(0.1 * pow(2, Double($0 - 1)), 30) }
        let waited = delays.all.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        #expect(zip(waited, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(waited)")
        // 0.1 + … + 25.6 + 30 s = 81.1 s after the first failure the 11th restart finds it down.
        let statuses = seen.all
        #expect(statuses.first == .running)
        #expect(statuses[1...9].allSatisfy { $0 == .restarting }, "\(statuses)")
        #expect(statuses[10...].allSatisfy { $0 == .down }, "\(statuses)")
        let view = try #require(views.all.first)
        #expect(view.status == .unhealthy && !view.healthy)
        #expect(view.alerts.contains { $0.kind == .stageDown && $0.message.contains("generator") })
        let final = try #require(state.stages(at: clock.now)["generator"])
        #expect(final.status == .stopped && final.restarts == 14 && final.lastError == "the stage broke")
    }

    /// A stage that ran stably before it failed again starts over at the shortest wait; jitter
    /// keeps each wait within its upper half.
    @Test func aStableRunEndsTheRunOfFailures() async throws {
        let clock = FakeClock()
        let state = PipelineState(now: clock.now)
        let delays = Recorder<Duration>()
        let attempts = Mutex(0)
        try await Supervised(
            "processor", state: state, logger: Logger(label: "test"),
            sleep: { d in
                delays.add(d)
                clock.advance(d)
            }, now: { clock.now }, jitter: { 0 }
        ) {
            let n = attempts.withLock {
                $0 += 1
                return $0
            }
            if n == 4 { clock.advance(.seconds(10)) }  // ran stably, then failed again
            if n <= 5 { throw StageFailure() }
        }.run()
        let waited = delays.all.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        #expect(waited.count == 5)
        #expect(zip(waited, [0.05, 0.1, 0.2, 0.05, 0.1]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(waited)")
        let policy = SupervisionPolicy()
        for k in 1...20 {
            let full = min(0.1 * pow(2, Double(k - 1)), 30)
            let d = policy.backoff(afterFailures: k, jitter: Double(k % 7) / 6)
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            #expect(s >= full / 2 - 1e-6 && s <= full + 1e-6)
        }
    }
}

@Suite struct StoreFullTests {
    /// Item 5 on a real store: SQLite's page limit makes the database full (SQLITE_FULL, as a
    /// full disk does). Writes are refused as `unavailable` (a 503 over HTTP), the runtime
    /// refuses uses during its cooldown, and once there is room the pipeline resumes by
    /// itself: every transaction decided exactly once.
    @Test func aFullStoreRefusesWritesForNowAndThePipelineResumesExactly() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let scorer = try Scorer(artifact: amountModel(pivot: 1_000), version: 1)
            var options = PartitionRuntime.Options()
            options.batchRecords = 64
            let runtime = try EmbeddedRuntime(store: store, scorer: scorer, options: options, cooldown: .milliseconds(300))
            let txs = try history(days: 4, cards: 80, seed: 21)
            let third = txs.count / 3
            func send(_ slice: ArraySlice<Transaction>) throws {
                var batch = IngestBatch(source: "http")
                batch.records = slice.map { IngestRecord(transaction: $0) }
                _ = try runtime.ingestAndDecide(batch)
            }
            for chunk in stride(from: 0, to: third, by: 50) { try send(txs[chunk..<min(third, chunk + 50)]) }

            try store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1") }  // full
            var batch = IngestBatch(source: "generator")
            batch.records = txs[third..<(third + 200)].map { IngestRecord(transaction: $0) }
            #expect {
                _ = try store.ingest(batch)
            } throws: { ($0 as? EventLogError)?.kind == .unavailable }
            #expect {
                try send(txs[third..<(third + 200)])
            } throws: { StorageFailure.isTransient($0) && $0 is EventLogError }
            // Within the cooldown: refused at once.
            #expect {
                try send(txs[third..<(third + 200)])
            } throws: { $0 is StorageUnavailable }

            try store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
            usleep(350_000)
            for chunk in stride(from: third, to: txs.count, by: 50) { try send(txs[chunk..<min(txs.count, chunk + 50)]) }
            try drain(runtime)
            let counts: [Int] = try query(dir, "SELECT COUNT(*) FROM silver_transactions")
            let distinct: [Int] = try query(dir, "SELECT COUNT(DISTINCT transaction_id) FROM silver_transactions")
            #expect(counts == [txs.count] && distinct == [txs.count])
            let hourly: [Int] = try query(dir, "SELECT SUM(transactions) FROM gold_hourly")
            #expect(hourly == [txs.count])
        }
    }
}

@Suite struct CheckpointFailureTests {
    /// Item 5: a feature checkpoint that cannot be written (a full disk; here the checkpoint
    /// file's page limit) leaves the older one and does not stop the stream; a restart
    /// recovers from the older one with a longer replay instead of failing for good, and the
    /// next checkpoint written clears the failure.
    @Test func aCheckpointThatCannotBeWrittenDoesNotStopARecovery() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 1)
            let scorer = try Scorer(artifact: amountModel(pivot: 1_000), version: 1)
            let txs = try history(days: 20, cards: 20, seed: 17)
            let half = txs.count / 2
            let runtime = try embeddedRuntime(store, scorer, batch: 40, checkpointEvery: 1)
            func append(_ slice: ArraySlice<Transaction>) throws {
                var batch = IngestBatch(source: "t")
                batch.records = slice.map { IngestRecord(transaction: $0) }
                _ = try store.ingest(batch)
            }
            for chunk in stride(from: 0, to: half, by: 40) { try append(txs[chunk..<min(half, chunk + 40)]) }
            try drain(runtime)
            try runtime.stop()
            let written = try #require(try runtime.checkpoints.latest(group: "processor", partition: 0))
            #expect(written.offsets.transactions == Int64(half))
            // Full: no page can be added or changed.
            let checkpoints = try #require(runtime.checkpoints as? SQLiteCheckpointStore)
            let pages = try checkpoints.queue.read { try Int.fetchOne($0, sql: "PRAGMA page_count") ?? 1 }
            try checkpoints.queue.writeWithoutTransaction {
                try $0.execute(sql: "PRAGMA max_page_count = \(pages)")
            }
            for chunk in stride(from: half, to: txs.count, by: 40) {
                try append(txs[chunk..<min(txs.count, chunk + 40)])
                try drain(runtime)
            }
            #expect(try query(dir, "SELECT COUNT(*) FROM silver_transactions") == [txs.count])
            // The clean stop's checkpoint cannot be written: the stop says so.
            #expect(throws: (any Error).self) { try runtime.stop() }
            #expect(runtime.counters.checkpointFailures > 0)
            // A restart (as after a failure) recovers from the older checkpoint.
            let recovered = try embeddedRuntime(store, scorer, batch: 40, checkpointEvery: 1)
            #expect(recovered.counters.replayed == txs.count - half)
            // Room again: the next checkpoint is written, and the failure is behind.
            try #require(recovered.checkpoints as? SQLiteCheckpointStore).queue.writeWithoutTransaction {
                try $0.execute(sql: "PRAGMA max_page_count = 1073741823")
            }
            let more = try history(days: 1, cards: 20, seed: 18).map { t -> Transaction in
                var t = t
                t.transactionID = "more-" + t.transactionID
                t.timestamp = t.timestamp + 30 * 86_400
                return t
            }
            try append(more[...])
            try drain(recovered)
            try recovered.stop()
            let latest = try #require(try recovered.checkpoints.latest(group: "processor", partition: 0))
            #expect(latest.offsets.transactions == Int64(txs.count + more.count))
        }
    }
}

@Suite struct ModelFollowerTests {
    /// Item 15 (and 17): another process promotes a model (here a second registry handle on
    /// the same directory, as `cardwatch models promote` opens one): the running runtime
    /// scores with it within 2 s, under the operator's thresholds.
    @Test func aPromotionByAnotherProcessReachesTheRunningScorerWithinTwoSeconds() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-follow-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteEventLog(directory: dir, partitions: 1)
        let serving = try ModelRegistry(directory: dir)
        let v1 = try serving.register(amountModel(pivot: 1_000))
        _ = try serving.promote(version: v1, rule: PromotionRule(), force: true)
        let policy = try ScoringPolicy(highThreshold: 0.3, criticalThreshold: 0.6)
        let runtime = try embeddedRuntime(store, try policy.scorer(amountModel(pivot: 1_000), version: v1))
        let follower = ModelFollower(
            registry: serving, models: runtime.models, scoring: policy, every: .milliseconds(500), logger: Logger(label: "test"))
        let task = Task { try await follower.run() }
        defer { task.cancel() }
        try await Task.sleep(for: .milliseconds(300))

        let other = try ModelRegistry(directory: dir)  // another process's handle
        let v2 = try other.register(amountModel(pivot: 50))
        let promoted = ContinuousClock.now
        _ = try other.promote(version: v2, rule: PromotionRule(), force: true)
        var version = v1
        var k = 0
        while version != v2 && ContinuousClock.now - promoted < .seconds(3) * testTimeScale {
            var batch = IngestBatch(source: "http")
            let time = Timestamp(microseconds: 1_795_000_000_000_000 + Int64(k) * 1_000_000)
            batch.records = [
                IngestRecord(
                    transaction: Transaction(
                        transactionID: "f\(k)", cardID: "c", amount: 100, timestamp: time, merchantID: "m"))
            ]
            k += 1
            let (_, decided) = try runtime.ingestAndDecide(batch)
            version = try #require(decided?.transactions.first?.decision.modelVersion)
            // A blocking wait: the measurement must not depend on when the busy test pool resumes a task.
            if version != v2 { usleep(50_000) }
        }
        let elapsed = ContinuousClock.now - promoted
        #expect(version == v2 && elapsed < .seconds(2) * testTimeScale, "switched after \(elapsed)")
        let applied = runtime.models.current.scorer.policy
        #expect(applied.high == 0.3 && applied.critical == 0.6, "the operator's thresholds survive the swap")
        #expect(try follower.check() == nil, "nothing more to swap")
    }
}

@Suite struct ScoringPolicyTests {
    /// Item 17: one rule turns a model's thresholds and the operator's overrides into the
    /// thresholds applied, always ordered, whatever the model.
    @Test func overridesApplyToEveryModelAndKeepTheOrder() throws {
        let own = DecisionThresholds(review: 0.4, decline: 0.9)
        #expect(ScoringPolicy().decisionPolicy(for: own) == DecisionPolicy(review: 0.4, decline: 0.9))
        let both = try ScoringPolicy(highThreshold: 0.3, criticalThreshold: 0.6).decisionPolicy(for: own)
        #expect(both.high == 0.3 && both.critical == 0.6 && both.medium == 0.15)
        // Only critical, below the model's review: review comes down to it.
        let critical = try ScoringPolicy(highThreshold: nil, criticalThreshold: 0.35).decisionPolicy(for: own)
        #expect(critical.high == 0.35 && critical.critical == 0.35)
        // Only high, above the model's decline: decline goes halfway to 1.
        let high = try ScoringPolicy(highThreshold: 0.95, criticalThreshold: nil).decisionPolicy(for: own)
        #expect(high.high == 0.95 && abs(high.critical - 0.975) < 1e-12)
        #expect(throws: PipelineError.self) { try ScoringPolicy(highThreshold: 0.7, criticalThreshold: 0.5) }
        #expect(throws: PipelineError.self) { try ScoringPolicy(highThreshold: 1.5, criticalThreshold: nil) }
        for review in stride(from: 0.0, through: 1.0, by: 0.1) {
            for decline in stride(from: 0.0, through: 1.0, by: 0.1) {
                for policy in [
                    try ScoringPolicy(highThreshold: 0.5, criticalThreshold: nil),
                    try ScoringPolicy(highThreshold: nil, criticalThreshold: 0.5),
                ] {
                    let p = policy.decisionPolicy(for: DecisionThresholds(review: review, decline: decline))
                    #expect(0 <= p.medium && p.medium <= p.high && p.high <= p.critical && p.critical <= 1)
                }
            }
        }
    }
}

@Suite struct DataDirectoryLockTests {
    /// Item 16: one writer per data directory; the second is told who holds it; closing (or
    /// the holder's death, see scripts/cli-smoke.sh) releases it.
    @Test func aSecondWriterIsRefusedNamingTheFirst() throws {
        try withDirectory { dir in
            var first: DataDirectoryLock? = try DataDirectoryLock(directory: dir, command: "cardwatch run")
            #expect(first != nil)
            do {
                _ = try DataDirectoryLock(directory: dir, command: "cardwatch import")
                Issue.record("a second writer got the lock")
            } catch let e as DataDirectoryInUse {
                #expect(e.holder?.pid == getpid() && e.holder?.command == "cardwatch run")
                #expect("\(e)".contains("in use by PID \(getpid()) (cardwatch run)"))
            }
            first = nil
            let again = try DataDirectoryLock(directory: dir, command: "cardwatch import")
            let text = try String(contentsOfFile: again.path, encoding: .utf8)
            #expect(text == "\(getpid())\ncardwatch import\n")
        }
    }
}

@Suite struct LiveHealthTests {
    /// Item 6: health tells the stages from the first second, judges a fresh report's alerts
    /// (degraded), and does not keep a stale report's verdict (unhealthy).
    @Test func healthIsTakenNowAndAStaleReportIsNotBelieved() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir)
            let start: Int64 = 1_800_000_000_000_000
            let state = PipelineState(now: start)
            for name in ["processor", "generator", "health"] {
                state.register(name, policy: SupervisionPolicy(), at: start)
                state.stageStarted(name, at: start)
            }
            let interval = Duration.seconds(300)
            let first = PipelineHealth.at(start + 1_000_000, state: state, lastReport: nil, interval: interval)
            #expect(
                first.status == .healthy && first.stages.count == 3 && first.stages.values.allSatisfy { $0.status == .running })

            // The first check covers the time since the start, not a microsecond.
            var check = HealthCheck(store: store.monitoring, state: state)
            state.processed.add(600, ordering: .relaxed)
            state.alerts.add(60, ordering: .relaxed)  // 10 %: above the 5 % limit
            let report = try check.run(now: start + 300_000_000)
            #expect(report.intervalSeconds == 300 && report.throughputPerSecond == 2)
            #expect(report.alertRate == 0.1 && report.alerts.contains { $0.kind == .alertRateHigh })
            let stored = try #require(try store.monitoring.latestHealth())
            #expect(stored == report)

            let degraded = PipelineHealth.at(start + 301_000_000, state: state, lastReport: stored, interval: interval)
            #expect(degraded.status == .degraded && degraded.healthy)
            #expect(degraded.alerts.map(\.kind) == [.alertRateHigh])

            // The health stage stopped reporting: two intervals later the report is stale.
            let stale = PipelineHealth.at(start + 901_000_000, state: state, lastReport: stored, interval: interval)
            #expect(stale.status == .unhealthy && !stale.healthy && stale.reportIsStale)
            #expect(stale.alerts.map(\.kind) == [.healthStale])
            // No report at all after two intervals: unhealthy too.
            let never = PipelineHealth.at(start + 601_000_000, state: state, lastReport: nil, interval: interval)
            #expect(never.status == .unhealthy && never.alerts.map(\.kind) == [.healthStale])

            // A stage failing now: restarting (degraded), with its error, live.
            state.stageFailed("generator", StageFailure(), at: start + 302_000_000)
            let restarting = PipelineHealth.at(start + 302_500_000, state: state, lastReport: stored, interval: interval)
            #expect(restarting.stages["generator"]?.status == .restarting)
            #expect(restarting.alerts.contains { $0.kind == .stageRestarting && $0.message.contains("the stage broke") })
        }
    }

    /// Reports and system alerts stored before the rename (`fraud_rate_…`, `fraudRate`,
    /// `failures`/`down`) still read.
    @Test func reportsStoredBeforeTheRenameStillRead() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir)
            let old = """
                {"checkedAt":1,"intervalSeconds":300,"processed":10,"throughputPerSecond":0.1,"lag":0,"deadLettersTotal":0,\
                "deadLettersRecent":0,"fraudRate":0.2,"baselineFraudRate":0.02,"healthy":false,\
                "stages":{"generator":{"failures":4,"lastError":"disk full","down":true}},\
                "alerts":[{"kind":"fraud_rate_high","message":"m","raisedAt":1}]}
                """
            try store.pool.write { db in
                try db.execute(sql: "INSERT INTO health_reports VALUES (1, 0, ?)", arguments: [old])
                try db.execute(
                    sql: "INSERT INTO system_alerts (kind, message, raised_at) VALUES ('fraud_rate_above_baseline', 'm', 1)")
            }
            let report = try #require(try store.monitoring.latestHealth())
            #expect(report.alertRate == 0.2 && report.baselineAlertRate == 0.02)
            #expect(report.stages["generator"]?.status == .down && report.stages["generator"]?.restarts == 4)
            #expect(report.alerts.first?.kind == .alertRateHigh)
            #expect(try store.monitoring.systemAlerts(limit: 5).map(\.kind) == [.alertRateAboveBaseline])
        }
    }
}
