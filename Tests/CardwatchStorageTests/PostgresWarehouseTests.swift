import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchPostgres
import Foundation
import GRDB
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import CardwatchStorage

/// The PostgreSQL warehouse against the embedded one, and what is particular to PostgreSQL
/// (migrations, the URL, an unreachable server). Runs when the test server is there.
@Suite(.enabled(if: testPostgresURL != nil, "needs the test PostgreSQL (CARDWATCH_TEST_POSTGRES)"))
struct PostgresWarehouseTests {
    /// Runs the embedded runtime over `store` committing into `pool`'s warehouse.
    func postgresRuntime(_ store: SQLiteEventLog, _ scorer: Scorer, _ pool: PostgresPool, batch: Int) throws -> EmbeddedRuntime {
        var options = PartitionRuntime.Options()
        options.batchRecords = batch
        options.checkpointEvery = 2
        options.pipelined = true
        options.group = "processor@\(try store.logID())"  // as `run` names a log's stream
        let runtime = try EmbeddedRuntime(
            store: store, scorer: scorer, options: options,
            warehouse: .external(
                sink: { try PostgresWarehouseSink(pool: pool, observer: $0) },
                checkpoints: try PostgresCheckpointStore(pool: pool)))
        try runtime.start()
        return runtime
    }

    /// Every transaction decided once, with the decisions the embedded warehouse holds for the
    /// same log, whether or not the runtime stopped and restored half way; labels mark their
    /// silver rows; the aggregates equal a count over silver.
    /// How the PostgreSQL run goes: straight through, stopped and restored half way, or
    /// decided half way by the embedded warehouse and migrated (`SQLiteMigration`).
    enum HalfWay: String, CaseIterable, Sendable { case straight, restart, migrate }

    @Test(arguments: HalfWay.allCases)
    func decisionsEqualTheEmbeddedWarehouses(halfWay: HalfWay) throws {
        let txs = try history(days: 12, cards: 60, seed: 21)
        let labelled = txs.filter { $0.isFraud == true }.prefix(20)
        let scorer = try Scorer(artifact: amountModel(pivot: 400), version: 1)
        func fill(_ store: SQLiteEventLog, _ range: Range<Int>) throws {
            for chunk in stride(from: range.lowerBound, to: range.upperBound, by: 500) {
                var batch = IngestBatch(source: "t")
                batch.records = txs[chunk..<min(range.upperBound, chunk + 500)].map { IngestRecord(transaction: $0) }
                _ = try store.ingest(batch)
            }
        }
        let half = txs.count / 2
        let labels = labelled.map { LabelEvent(transactionID: $0.transactionID, isFraud: true, reportedAt: $0.timestamp + 60) }
        /// The aggregates, as text rows in a fixed order (the same SQL reads both stores).
        let goldQueries = [
            """
            SELECT hour || ' ' || transactions || ' ' || amount_micros || ' ' || alerts || ' ' || reviews || ' ' || declines
                || ' ' || probability_nanos || ' ' || labelled || ' ' || confirmed_frauds || ' ' || fraud_amount_micros
                || ' ' || alerts_labelled || ' ' || alerts_confirmed FROM gold_hourly ORDER BY hour
            """,
            """
            SELECT card_id || ' ' || transactions || ' ' || amount_micros || ' ' || alerts || ' ' || declines || ' '
                || last_event_time || ' ' || last_risk_tier FROM gold_card_profiles ORDER BY card_id
            """,
            """
            SELECT card_id || ' ' || labelled || ' ' || confirmed_frauds || ' ' || fraud_amount_micros || ' '
                || alerts_labelled || ' ' || alerts_confirmed FROM gold_card_labels ORDER BY card_id
            """,
        ]
        let expectedGold = Mutex<[[String]]>([])
        /// What the API and retraining read, as text (the training rows, the alerts of a few cards).
        let expectedReads = Mutex<[String]>([])
        func reads(_ serving: any ServingStore, _ training: any TrainingStore) throws -> [String] {
            let rows = try training.trainingRows(days: 30)
            var out = [
                "\(rows.transactionIDs)", "\(rows.times)", "\(rows.matrix.labels)",
                "\(rows.matrix.values.map { $0.isNaN ? "nan" : "\($0)" })", "\(try training.featureColumns())",
            ]
            for card in Set(txs.prefix(40).map(\.cardID)).sorted() {
                out.append("\(try serving.alerts(cardID: card, limit: 100).map { "\($0.transactionID) \($0.riskTier)" })")
            }
            for t in txs.prefix(30) {
                let d = try serving.decision(transactionID: t.transactionID)
                out.append("\(d.map { "\($0.fraudProbability) \($0.riskTier) \($0.ruleHits)" } ?? "none")")
            }
            return out
        }
        // The embedded warehouse's decisions.
        let expected: [String: String] = try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 3)
            try fill(store, 0..<half)
            try store.ingestLabels(labels, source: "labels", resumeAt: 1)
            try fill(store, half..<txs.count)
            let runtime = try embeddedRuntime(store, scorer, batch: 700)
            try drain(runtime)
            try runtime.stop()
            let rows = try store.pool.read {
                try Row.fetchAll($0, sql: "SELECT transaction_id, fraud_probability, risk_tier, label FROM silver_transactions")
            }
            let gold = try store.pool.read { db in try goldQueries.map { try String.fetchAll(db, sql: $0) } }
            expectedGold.withLock { $0 = gold }
            let read = try reads(store.serving, store.monitoring)
            expectedReads.withLock { $0 = read }
            return Dictionary(
                uniqueKeysWithValues: rows.map {
                    ($0[0], "\($0[1] as Double) \($0[2] as String) \(($0[3] as Int?).map(String.init) ?? "-")")
                })
        }
        try withDirectory { dir in
            try withPostgresDatabase { pool in
                let store = try SQLiteEventLog(directory: dir, partitions: 3)
                try fill(store, 0..<half)
                var runtime: EmbeddedRuntime
                switch halfWay {
                case .straight:
                    runtime = try postgresRuntime(store, scorer, pool, batch: 700)
                case .restart:
                    runtime = try postgresRuntime(store, scorer, pool, batch: 700)
                    try drain(runtime)
                    try runtime.stop()
                case .migrate:
                    let embedded = try embeddedRuntime(store, scorer, batch: 700)
                    try drain(embedded)
                    try embedded.stop()
                    let checkpoints = try (0..<3).compactMap {
                        try embedded.checkpoints.latest(group: PartitionRuntime.defaultGroup, partition: $0)
                    }
                    let copied = try SQLiteMigration.run(
                        WarehouseExport(log: store, directory: dir), into: pool, stream: "processor@\(try store.logID())",
                        checkpoints: checkpoints)
                    #expect(copied.first { $0.table == "silver_transactions" }?.rows == half)
                    runtime = try postgresRuntime(store, scorer, pool, batch: 700)
                }
                try store.ingestLabels(labels, source: "labels", resumeAt: 1)
                try fill(store, half..<txs.count)
                if halfWay != .straight {
                    runtime = try postgresRuntime(store, scorer, pool, batch: 700)
                    #expect(runtime.counters.replayed == 0, "a clean stop checkpointed every partition")
                }
                try drain(runtime)
                try runtime.stop()
                #expect(
                    try runtime.alertCount() == expected.values.filter { $0.contains("high") || $0.contains("critical") }.count)
                let got = try pool.withSession("reading silver") { s in
                    try s.query(
                        "SELECT transaction_id, fraud_probability, risk_tier, label FROM silver_transactions",
                        PostgresBindings()
                    ).rows.map { row in
                        let (id, p, tier, label) = try row.decode((String, Double, String, Int16?).self)
                        return (id, "\(p) \(tier) \(label.map { String($0) } ?? "-")")
                    }
                }
                #expect(got.count == txs.count, "each transaction decided once")
                #expect(Dictionary(got, uniquingKeysWith: { a, _ in a }) == expected)
                let (hourly, cards, alerts) = try pool.withSession("reading gold") { s in
                    try s.query(
                        """
                        SELECT (SELECT SUM(transactions)::int8 FROM gold_hourly),
                            (SELECT SUM(transactions)::int8 FROM gold_card_profiles), (SELECT SUM(alerts)::int8 FROM gold_hourly)
                        """, PostgresBindings()
                    ).rows.first!.decode((Int64, Int64, Int64).self)
                }
                #expect(hourly == Int64(txs.count) && cards == Int64(txs.count))
                let gold = try pool.withSession("reading gold") { s in
                    try goldQueries.map { sql in try s.query(sql, PostgresBindings()).rows.map { try $0.decode(String.self) } }
                }
                #expect(gold == expectedGold.withLock { $0 }, "the aggregates equal the embedded warehouse's")
                #expect(gold[2].count > 0, "labels moved the confirmed outcomes")
                let warehouse = PostgresWarehouseReads(pool: pool, ingest: NoIngestSide())
                let read = try reads(warehouse, warehouse)
                #expect(read == expectedReads.withLock { $0 }, "the API and retraining read the same from both")
                #expect(read[0].count > 100, "there are training rows")
                #expect(alerts == Int64(try runtime.alertCount()))
                // The log's own offsets followed the sink's (lag, backpressure).
                #expect(try store.processorLag() == 0)
            }
        }
    }

    /// Silver keeps the newest `retainDays` event days: a new day drops the oldest, a late
    /// record of a dropped day is still stored.
    @Test func silverKeepsTheDaysItIsToldTo() throws {
        try withPostgresDatabase { pool in
            let sink = try PostgresWarehouseSink(pool: pool, retainDays: 2)
            let day: Int64 = 86_400_000_000
            func commit(_ offset: Int64, at time: Int64) throws {
                var batch = SinkBatch(group: "g")
                batch.consumed = [
                    ConsumedRange(
                        partition: 0, from: PartitionOffsets(transactions: offset, labels: 0),
                        to: PartitionOffsets(transactions: offset + 1, labels: 0))
                ]
                var d = decided("t\(offset)", partition: 0, offset: offset)
                d.transaction.timestamp = Timestamp(microseconds: time)
                batch.decisions = [d]
                try sink.commit(batch)
            }
            let start: Int64 = 20_000 * day  // 2024-10-04
            for i in 0..<5 { try commit(Int64(i), at: start + Int64(i) * day + 3_600_000_000) }
            func days() throws -> [String] {
                try pool.withSession("listing silver's partitions") { s in
                    try s.query(
                        """
                        SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = 'silver_transactions'::regclass ORDER BY 1
                        """, PostgresBindings()
                    ).rows.map { try $0.decode(String.self) }
                }
            }
            #expect(try days() == ["silver_20241007", "silver_20241008"])
            #expect(try sink.decisionCount() == 2)
            try commit(5, at: start + 1)  // a late record of a dropped day
            #expect(try sink.decisionCount() == 3)
            #expect(try sink.alertCount() == 0)
        }
    }

    @Test func aDatabaseWithANewerSchemaIsRefusedAndMigrationsRunOnce() throws {
        try withPostgresDatabase { pool in
            // Four instances starting at once: one migrates, the others wait and find it done.
            let applied = Mutex<[[Int]]>([])
            let errors = Mutex<[String]>([])
            let threads = (0..<4).map { _ in
                Thread {
                    let own = PostgresPool(pool.endpoint, size: 1)
                    defer { own.close() }
                    do {
                        let versions = try PostgresSchema.migrate(own)
                        applied.withLock { $0.append(versions) }
                    } catch { errors.withLock { $0.append("\(error)") } }
                }
            }
            for thread in threads { thread.start() }
            while applied.withLock({ $0.count }) + errors.withLock({ $0.count }) < 4 { usleep(10_000) }
            #expect(errors.withLock { $0 } == [])
            #expect(applied.withLock { $0.flatMap { $0 } } == Array(1...PostgresSchema.latestVersion))
            #expect(try PostgresSchema.version(pool) == PostgresSchema.latestVersion)
            try pool.withSession("pretending a newer build migrated") { s in
                try s.execute("INSERT INTO cardwatch_schema (version, name) VALUES (9999, 'from the future')")
            }
            do {
                _ = try PostgresWarehouseSink(pool: pool)
                Issue.record("a database with a newer schema was opened")
            } catch let e as PostgresStoreError {
                #expect(e.message.contains("version 9999") && e.message.contains("newer than this build"))
            }
        }
    }

    @Test func anUnreachableServerIsTransientAndBacksOff() throws {
        // A port nothing listens on: refused at once.
        let pool = PostgresPool(PostgresEndpoint(host: "127.0.0.1", port: 1, user: "ci", database: "none"), size: 1)
        defer { pool.close() }
        for attempt in 0..<3 {
            do {
                try pool.withSession("pinging") { try $0.execute("SELECT 1") }
                Issue.record("a query reached no server")
            } catch let e as PostgresStoreError {
                #expect(e.kind == .unavailable)
                #expect(StorageFailure.isTransient(e), "the runtime cools down and retries")
                if attempt > 0 { #expect(e.message.contains("next attempt in"), "calls fail fast while backing off") }
            }
        }
        #expect(pool.lastConnectFailure != nil)
    }
}

/// The log's side, when there is no log: nothing refused, nothing waiting.
struct NoIngestSide: IngestSide {
    func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) { (0, 0) }
    func processorLag() throws -> Int64 { 0 }
    func appendFeedbackLabel(_ label: LabelEvent) throws {}
}

@Suite struct PostgresEndpointTests {
    @Test func theURLAndTheStandardVariablesMakeTheEndpoint() throws {
        let e = try PostgresEndpoint.parse("postgres://alice@db.example:6543/fraud", environment: ["PGPASSWORD": "s3cret"])
        #expect(e == PostgresEndpoint(host: "db.example", port: 6543, user: "alice", database: "fraud", password: "s3cret"))
        #expect(e.description == "postgres://alice@db.example:6543/fraud", "the password is never printed")
        let env = ["PGHOST": "h", "PGPORT": "7000", "PGUSER": "bob", "PGDATABASE": "d"]
        #expect(try PostgresEndpoint.parse("postgresql://", environment: env).description == "postgres://bob@h:7000/d")
        #expect(try PostgresEndpoint.parse("postgres:///w", environment: env).database == "w", "the URL wins")
    }

    @Test func aPasswordFileIsReadAsLibpqReadsIt() throws {
        try withDirectory { dir in
            let file = dir + "/pass"
            try "# comment\nother:5432:*:alice:wrong\ndb:5432:*:alice:a\\:b\\\\c\n*:*:*:*:fallback\n".write(
                toFile: file, atomically: true, encoding: .utf8)
            let env = ["PGPASSFILE": file]
            #expect(try PostgresEndpoint.parse("postgres://alice@db/x", environment: env).password == "a:b\\c")
            #expect(try PostgresEndpoint.parse("postgres://carol@elsewhere/x", environment: env).password == "fallback")
            #expect(throws: PostgresEndpointError.self) {
                try PostgresEndpoint.parse("postgres://alice@db/x", environment: ["PGPASSFILE": dir + "/missing"])
            }
        }
    }

    @Test(arguments: [
        ("postgres://alice:hunter2@db/x", "password in the URL"),
        ("postgres://db/x?sslmode=require", "sslmode=require"),
        ("postgres://db/x?foo=1", "unknown parameter 'foo'"),
        ("postgres://db/a/b", "one database name"),
        ("mysql://db/x", "not a PostgreSQL URL"),
    ])
    func badURLsAreRefusedSayingWhy(_ url: String, _ why: String) throws {
        do {
            _ = try PostgresEndpoint.parse(url, environment: [:])
            Issue.record("\(url) was accepted")
        } catch {
            #expect(error.description.contains(why), "\(error.description)")
            #expect(!error.description.contains("hunter2"), "a password never reaches a message")
        }
    }
}

/// Instances sharing a PostgreSQL registry: promotions announced, retraining leased.
@Suite(.enabled(if: testPostgresURL != nil, "needs the test PostgreSQL (CARDWATCH_TEST_POSTGRES)"))
struct PostgresCoordinationTests {
    /// A promotion made through another connection (another process's registry) rings the
    /// listener's doorbell: the follower looks at once, well within 2 s.
    @Test func aPromotionElsewhereWakesTheListener() async throws {
        // A database of its own, kept while the listener runs.
        let admin = PostgresPool(try PostgresEndpoint.parse(try #require(testPostgresURL)), size: 1)
        defer { admin.close() }
        let name = "cw_notify_\(UInt64.random(in: 0...UInt64.max))"
        try admin.withSession("creating \(name)") { try $0.execute("CREATE DATABASE \(name)") }
        defer { _ = try? admin.withSession("dropping \(name)") { try $0.execute("DROP DATABASE \(name) WITH (FORCE)") } }
        var target = admin.endpoint
        target.database = name
        let pool = PostgresPool(target, size: 2)
        defer { pool.close() }
        let registry = ModelRegistry(store: try PostgresRegistryStore(pool: pool))
        let v = try registry.register(amountModel(pivot: 100))
        let rung = Doorbell()
        let heard = Mutex<[ContinuousClock.Instant]>([])
        let listener = Task {
            try await PostgresModelNotifications(
                endpoint: target, wake: rung, logger: Logger(label: "test")
            ).run()
        }
        try await Task.sleep(for: .milliseconds(800))  // connected and listening
        rung.wait(seconds: 0)  // nothing rung before the promotion counts
        // One long wait: only a ring ends it early.
        let watcher = Thread {
            rung.wait(seconds: 5)
            heard.withLock { $0.append(.now) }
        }
        watcher.start()
        try await Task.sleep(for: .milliseconds(50))
        let promotedAt = ContinuousClock.now
        let other = PostgresPool(target, size: 1)
        defer { other.close() }
        try ModelRegistry(store: try PostgresRegistryStore(pool: other)).setStage(version: v, stage: .production)
        for _ in 0..<60 where heard.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(100)) }
        listener.cancel()
        _ = try? await listener.value
        let woken = try #require(heard.withLock { $0.first })
        #expect(woken - promotedAt < .seconds(1), "woken \(woken - promotedAt) after the promotion (5 s without a ring)")
    }

    @Test func oneInstanceRetrainsAtATime() throws {
        try withPostgresDatabase { pool in
            let other = PostgresPool(pool.endpoint, size: 1)
            defer { other.close() }
            let a = PostgresRetrainingLease(pool: pool)
            let b = PostgresRetrainingLease(pool: other)
            let inner = try a.whileHeld { try b.whileHeld { "b ran" } }
            #expect(inner == .some(nil), "while one holds the lease the other skips its run")
            #expect(try b.whileHeld { "b ran" } == "b ran", "released after the run")
        }
    }
}
