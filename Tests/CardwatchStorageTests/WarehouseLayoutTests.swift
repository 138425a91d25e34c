import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import Foundation
import GRDB
import Testing

@testable import CardwatchStorage

@Suite struct CardProfileTests {
    /// A card's aggregate as the silver rows give it, folded the plain way: in processing
    /// order, "last" the row with the greatest event time (the later of equal ones).
    struct Profile: Equatable, CustomStringConvertible {
        var transactions = 0
        var amountMicros: Int64 = 0
        var alerts = 0
        var declines = 0
        var maxProbability = 0.0
        var lastTime = Int64.min
        var lastTier = ""
        var description: String {
            "\(transactions) tx, \(amountMicros) µ$, \(alerts) alerts, \(declines) declines, max \(maxProbability), last \(lastTier)"
        }
    }

    static func reference(_ dir: String) throws -> [String: Profile] {
        let db = try DatabaseQueue(path: dir + "/log.sqlite")
        return try db.read { db in
            var out: [String: Profile] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT card_id, amount, fraud_probability, risk_tier, action, event_time FROM silver_transactions
                    ORDER BY arrival, "partition", "offset"
                    """)
            for row in rows {
                var p = out[row[0], default: Profile()]
                let amount: Double = row[1]
                let probability: Double = row[2]
                let tier: String = row[3]
                let action: String = row[4]
                let time: Int64 = row[5]
                p.transactions += 1
                p.amountMicros += Int64((amount * 1e6).rounded())
                p.alerts += tier == "high" || tier == "critical" ? 1 : 0
                p.declines += action == "decline" ? 1 : 0
                p.maxProbability = max(p.maxProbability, probability)
                if time >= p.lastTime {
                    p.lastTime = time
                    p.lastTier = tier
                }
                out[row[0]] = p
            }
            return out
        }
    }

    static func table(_ dir: String) throws -> [String: Profile] {
        let db = try DatabaseQueue(path: dir + "/log.sqlite")
        return try db.read { db in
            var out: [String: Profile] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM gold_card_profiles") {
                out[row["card_id"]] = Profile(
                    transactions: row["transactions"], amountMicros: row["amount_micros"], alerts: row["alerts"],
                    declines: row["declines"], maxProbability: row["max_probability"], lastTime: row["last_event_time"],
                    lastTier: row["last_risk_tier"])
            }
            return out
        }
    }

    /// Processes lifetimes that end without a clean stop (the pending aggregates lost with
    /// them, to be rebuilt by the next), each with random batch sizes, checkpoint intervals,
    /// flush schedules, and appends decided inline or left to the runtime's loop; after a
    /// last, clean stop the table equals the plain aggregate of every silver row.
    @Test(arguments: [1, 2, 3, 4] as [UInt64]) func foldedInBehindTheyEqualTheAggregateOfSilver(seed: UInt64) throws {
        try withDirectory { dir in
            let txs = try history(days: 4, cards: 60, seed: 40 + seed)
            var rng = SplitMix(seed: seed)
            let scorer = try Scorer(artifact: amountModel(pivot: 300), version: 1)
            var i = 0
            var lifetimes = 0
            while i < txs.count {
                let schedule = CardProfiles.Schedule(
                    cards: Int.random(in: 1...40, using: &rng),
                    micros: [0, 1_000, 1_000_000_000][Int.random(in: 0..<3, using: &rng)])
                let store = try SQLiteEventLog(directory: dir, partitions: 3, cardFlush: schedule)
                let runtime = try embeddedRuntime(
                    store, scorer, batch: Int.random(in: 1...200, using: &rng),
                    checkpointEvery: Int.random(in: 1...30, using: &rng))
                for _ in 0..<Int.random(in: 1...6, using: &rng) where i < txs.count {
                    let end = min(txs.count, i + Int.random(in: 1...80, using: &rng))
                    var batch = IngestBatch(source: "t")
                    batch.records = txs[i..<end].map { IngestRecord(transaction: $0) }
                    if Bool.random(using: &rng) {
                        _ = try runtime.ingestAndDecide(batch)
                    } else {
                        _ = try store.ingest(batch)
                        try runtime.drain()
                    }
                    i = end
                }
                lifetimes += 1
            }
            #expect(lifetimes >= 3)
            let store = try SQLiteEventLog(directory: dir, partitions: 3)
            let runtime = try embeddedRuntime(store, scorer)
            try runtime.drain()
            try runtime.stop()
            let reference = try Self.reference(dir)
            let table = try Self.table(dir)
            #expect(reference.values.reduce(0) { $0 + $1.transactions } == txs.count)
            #expect(reference.values.contains { $0.alerts > 0 })
            let wrong = reference.filter { table[$0.key] != $0.value }.prefix(3).map {
                "\($0.key): \($0.value) vs \(table[$0.key].map(String.init(describing:)) ?? "none")"
            }
            #expect(table.count == reference.count && wrong.isEmpty, "cards differing: \(wrong)")
        }
    }
}

@Suite struct MigrationTests {
    /// A data directory written by the schema before v4 (silver keyed by transaction id,
    /// seen ids without their place in the log), one transaction still unprocessed: after
    /// the migration every id knows its place, silver rows are found by id, the card
    /// profiles count as folded in, and the runtime goes on where it was.
    @Test func aV3DataDirectoryIsMigrated() throws {
        try withDirectory { dir in
            let path = dir + "/log.sqlite"
            let txs = try history(days: 1, cards: 4, seed: 9).prefix(5).map { $0 }
            do {
                let db = try DatabaseQueue(path: path)
                try SQLiteEventLog.migrator.migrate(db, upTo: "v3: health reports and system alerts")
                try db.write { db in
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('partitions', 2)")
                    // Two appends: arrival 1 holds txs 0–2, arrival 2 holds txs 3–4, in partitions 0, 1, 0 | 1, 0.
                    let partitions = [0, 1, 0, 1, 0]
                    var next = [0, 0]
                    for (k, t) in txs.enumerated() {
                        let p = partitions[k]
                        try db.execute(
                            sql: "INSERT INTO records VALUES ('transactions', ?, ?, ?, ?, 0)",
                            arguments: [p, next[p], t.cardID, Data(TransactionEncoder.jsonLine(t).utf8)])
                        try db.execute(
                            sql: "INSERT INTO seen_transactions (transaction_id) VALUES (?)", arguments: [t.transactionID])
                        next[p] += 1
                    }
                    try db.execute(sql: "INSERT INTO arrivals (id, entries) VALUES (1, x'000001000000'), (2, x'01000000')")
                    // The first arrival was processed: silver rows, offsets, position, a card profile.
                    let features = (0..<Feature.count).map { _ in "0" }.joined(separator: ", ")
                    for k in 0..<3 {
                        let t = txs[k]
                        try db.execute(
                            sql: """
                                INSERT INTO silver_transactions VALUES (?, ?, ?, NULL, 'USD', NULL, NULL, ?, 't', \(features),
                                    0.25, 'low', 'approve', 1, NULL, 10, NULL, NULL, NULL, 1, ?, ?)
                                """,
                            arguments: [
                                t.transactionID, t.cardID, t.merchantID, t.timestamp.microseconds, partitions[k], [0, 0, 1][k],
                            ])
                    }
                    try db.execute(
                        sql: """
                            INSERT INTO offsets VALUES ('processor', 'transactions', 0, 2), ('processor', 'transactions', 1, 1);
                            INSERT INTO processor_position VALUES (1, 1);
                            """)
                }
            }
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let places: [String] = try query(
                dir, "SELECT transaction_id || ':' || arrival || ':' || \"partition\" || ':' || \"offset\" FROM seen_transactions"
            )
            #expect(
                Set(places)
                    == Set(
                        ["0:1:0:0", "1:1:1:0", "2:1:0:1", "3:2:1:1", "4:2:0:2"].map { k in
                            let parts = k.split(separator: ":")
                            return txs[Int(parts[0])!].transactionID + ":" + parts.dropFirst().joined(separator: ":")
                        }))
            #expect(try store.serving.decision(transactionID: txs[1].transactionID)?.fraudProbability == 0.25)
            #expect(try store.serving.decision(transactionID: txs[3].transactionID) == nil)
            let positions: [Int64] = try query(dir, "SELECT arrival FROM gold_card_positions ORDER BY shard")
            #expect(positions == [Int64](repeating: 1, count: CardProfiles.shards))
            // The runtime picks up arrival 2.
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 300), version: 1))
            #expect(try runtime.step() == 2)
            try runtime.flush()
            #expect(try store.serving.decision(transactionID: txs[4].transactionID) != nil)
            let silver: [Int] = try query(dir, "SELECT COUNT(*) FROM silver_transactions")
            #expect(silver == [5])
        }
    }
}

@Suite struct DeadLetterIndexTests {
    /// Random mixes of transactions and dead letters: the counts by time equal a plain count
    /// over the records, and are read through the dead letters' own index, the only one on
    /// the records (a transaction's append writes none of its pages).
    /// Appends `txs` in random batches of 1–40, each with 0–3 dead letters; returns how many
    /// dead letters there were and how many batches had any.
    static func appendMixed(_ store: SQLiteEventLog, _ txs: [Transaction], seed: UInt64) throws -> (
        letters: Int, batchesWithLetters: Int
    ) {
        var rng = SplitMix(seed: seed)
        var i = 0
        var letters = 0
        var batchesWithLetters = 0
        while i < txs.count {
            var batch = IngestBatch(source: "t")
            let end = min(txs.count, i + Int.random(in: 1...40, using: &rng))
            batch.records = txs[i..<end].map { IngestRecord(transaction: $0) }
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                letters += 1
                batch.deadLetters.append(
                    DeadLetter(source: "t", line: letters, issues: [FieldIssue(field: "amount", problem: "x")], raw: [1]))
            }
            if !batch.deadLetters.isEmpty { batchesWithLetters += 1 }
            _ = try store.ingest(batch)
            i = end
        }
        return (letters, batchesWithLetters)
    }

    @Test func deadLettersAreCountedByTimeThroughTheirOwnIndex() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir)
            let letters = try Self.appendMixed(store, try history(days: 1, cards: 200, seed: 12), seed: 12).letters
            #expect(letters > 10)
            let times: [Int64] = try query(dir, "SELECT appended_at FROM records WHERE topic = 'transactions.dlq' ORDER BY 1")
            #expect(times.count == letters)
            for since in [0, times[times.count / 3], times[times.count - 1], times[times.count - 1] + 1] {
                let counts = try store.monitoring.deadLetterCounts(since: since)
                #expect(counts.total == letters)
                #expect(counts.recent == times.filter { $0 >= since }.count, "since \(since)")
            }
            let indexes: [String] = try query(
                dir, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' AND sql IS NOT NULL")
            #expect(indexes == ["dead_letters_by_time"])
            // The count reads the dead letters' index (the planner's choice, not forced).
            let plan = try DatabaseQueue(path: dir + "/log.sqlite").read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        EXPLAIN QUERY PLAN SELECT COUNT(*), COALESCE(SUM(appended_at >= 0), 0) FROM records
                        WHERE topic = 'transactions.dlq'
                        """
                ).map { $0["detail"] as String }
            }
            #expect(plan.contains { $0.contains("dead_letters_by_time") }, "\(plan)")
            #expect(try store.pagesWritten() > 0)
        }
    }

    /// The end-offset lookup of every append names its topic in the statement's text: with the
    /// topic bound as a parameter (the control, on the same connection), the partial index makes
    /// SQLite prepare the statement again at each run with a new binding.
    @Test func appendsDoNotPrepareTheirLookupsAgain() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir)
            let mixed = try Self.appendMixed(store, Array(try history(days: 1, cards: 50, seed: 3).prefix(400)), seed: 3)
            #expect(mixed.batchesWithLetters > 5)
            for topic in [Topic.transactions, .transactionsDLQ] {
                let status = try store.statementRuns(SQLiteEventLog.endOffsetSQL[topic]!)
                #expect(status.runs >= mixed.batchesWithLetters, "\(topic)")
                #expect(status.reprepares == 0, "\(topic)")
            }
            let bound = #"SELECT MAX("offset") FROM records WHERE topic = ? AND "partition" = ?"#
            try store.pool.writeWithoutTransaction { db in
                for topic in [Topic.transactions, .transactionsDLQ, .transactions] {
                    _ = try Int64.fetchOne(db.cachedStatement(sql: bound), arguments: [topic.rawValue, 0])
                }
            }
            #expect(try store.statementRuns(bound).reprepares > 0, "the control: a bound topic is prepared again")
        }
    }
}
