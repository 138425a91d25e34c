import CardwatchCore
import CardwatchFeatures
public import CardwatchPipeline
import Foundation
import GRDB

/// The partitioned runtime's decision sink, idempotency index and checkpoints on SQLite:
/// a batch's decisions, labels, repeats and dead letters, its input offsets and where it
/// ended, written in one transaction (a batch that does not start at the stored offsets is
/// refused whole). One file, WAL mode; several runtimes of one process share it.
///
/// A sink of its own file, with its own idempotency index: for runtimes whose log is not the
/// embedded one (the embedded `run` and `import` commit into the warehouse in the log's file,
/// `SQLiteWarehouseSink`). The contract suites hold it to the same rules as every sink.
public final class SQLiteDecisionSink: DecisionSink, DecisionIndex {
    private let pool: DatabasePool
    public let path: String

    public init(path: String) throws(EventLogError) {
        self.path = path
        pool = try openRuntimeDatabase(path: path, label: "cardwatch.sink", what: "decision sink", migrator: Self.migrator)
    }

    public func commit(_ batch: SinkBatch) throws {
        let ranges = batch.consumed.map { "\($0.partition)" }.joined(separator: ", ")
        do {
            try pool.write { db in try write(db, batch) }
        } catch let error as DecisionSinkError {
            throw error
        } catch {
            throw DecisionSinkError(
                .storage, "committing group \(batch.group)'s batch of partitions \(ranges) failed: \(error)")
        }
    }

    private func write(_ db: Database, _ batch: SinkBatch) throws {
        try SinkOffsetsTable.advance(db, batch)
        let decision = try db.cachedStatement(
            sql: """
                INSERT INTO decisions ("partition", "offset", transaction_id, card_id, merchant_id, event_time, amount,
                    features, fraud_probability, risk_tier, action, model_version, reasons, appended_at, decided_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let first = try db.cachedStatement(
            sql: #"INSERT OR IGNORE INTO first_decisions (transaction_id, "partition", "offset") VALUES (?, ?, ?)"#)
        for d in batch.decisions {
            let t = d.transaction
            var values = d.features.values
            let features = withUnsafeBytes(of: &values) { Data($0) }
            try decision.execute(arguments: [
                d.partition, d.offset, t.transactionID, t.cardID, t.merchantID, t.timestamp.microseconds, t.amount,
                features, d.decision.probability, d.decision.tier.rawValue, d.decision.action.rawValue,
                d.decision.modelVersion, WarehouseRows.reasonsJSON(d.decision.reasons), d.appendedAt,
                d.decision.decidedAt,
            ])
            try first.execute(arguments: [t.transactionID, d.partition, d.offset])
        }
        for l in batch.labels {
            try db.execute(
                sql: """
                    INSERT INTO applied_labels ("partition", "offset", transaction_id, is_fraud, reported_at, matched)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    l.partition, l.offset, l.label.transactionID, l.label.isFraud, l.label.reportedAt.microseconds,
                    l.matched,
                ])
        }
        for r in batch.repeats {
            try db.execute(
                sql: """
                    INSERT INTO repeated_transactions ("partition", "offset", transaction_id, first_partition, first_offset)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [r.partition, r.offset, r.transactionID, r.first.partition, r.first.offset])
        }
        for d in batch.deadLetters {
            try db.execute(
                sql: "INSERT INTO sink_dead_letters (record) VALUES (?)",
                arguments: [String(decoding: WarehouseRows.deadLetterJSON(d), as: UTF8.self)])
        }
    }

    public func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        try read("reading group \(group)'s offsets in partition \(partition)") {
            try SinkOffsetsTable.offsets($0, group: group, partition: partition)
        }
    }

    public func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try read("reading group \(group)'s batch ends in partition \(partition)") {
            try SinkOffsetsTable.batchEnds($0, group: group, partition: partition, after: after)
        }
    }

    public func firstDecisions(_ transactionIDs: [String]) throws -> [String: FirstDecision] {
        guard !transactionIDs.isEmpty else { return [:] }
        let ids = Array(Set(transactionIDs))
        return try read("looking up \(ids.count) transaction ids") { db in
            var out: [String: FirstDecision] = [:]
            // A batch's ids in a few statements, not one each (SQLite binds at most 32,766 values).
            for start in stride(from: 0, to: ids.count, by: 500) {
                let chunk = Array(ids[start..<min(ids.count, start + 500)])
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT f.transaction_id, d."partition", d."offset", d.fraud_probability, d.risk_tier, d.action,
                            d.model_version
                        FROM first_decisions f JOIN decisions d USING ("partition", "offset")
                        WHERE f.transaction_id IN (\(databaseQuestionMarks(count: chunk.count)))
                        """,
                    arguments: StatementArguments(chunk))
                for row in rows {
                    out[row[0]] = FirstDecision(
                        partition: row[1], offset: row[2],
                        decision: Decision(
                            probability: row[3], tier: RiskTier(rawValue: row[4]) ?? .low,
                            action: Action(rawValue: row[5]) ?? .approve, reasons: [], modelVersion: row[6]))
                }
            }
            return out
        }
    }

    /// Decided transactions, in commit order (for tests and tools).
    public func decisionCount() throws -> Int {
        try read("counting decisions") { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM decisions") ?? 0 }
    }

    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch {
            throw DecisionSinkError(.storage, "\(what) failed: \(error)")
        }
    }

    /// Migrations are append-only: a released migration is never edited.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: the partitioned runtime's sink") { db in
            try db.execute(
                sql: """
                    \(SinkOffsetsTable.schema)
                    CREATE TABLE decisions (
                        "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL, transaction_id TEXT NOT NULL,
                        card_id TEXT NOT NULL, merchant_id TEXT NOT NULL, event_time INTEGER NOT NULL, amount REAL NOT NULL,
                        features BLOB NOT NULL, fraud_probability REAL NOT NULL, risk_tier TEXT NOT NULL,
                        action TEXT NOT NULL, model_version INTEGER NOT NULL, reasons TEXT NOT NULL,
                        appended_at INTEGER NOT NULL, decided_at INTEGER NOT NULL,
                        PRIMARY KEY ("partition", "offset")
                    );
                    CREATE TABLE first_decisions (
                        transaction_id TEXT PRIMARY KEY, "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE VIEW sink_alerts AS SELECT * FROM decisions WHERE risk_tier IN ('high', 'critical');
                    CREATE TABLE applied_labels (
                        "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL, transaction_id TEXT NOT NULL,
                        is_fraud INTEGER NOT NULL, reported_at INTEGER NOT NULL, matched INTEGER NOT NULL,
                        PRIMARY KEY ("partition", "offset")
                    );
                    CREATE TABLE repeated_transactions (
                        "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL, transaction_id TEXT NOT NULL,
                        first_partition INTEGER NOT NULL, first_offset INTEGER NOT NULL,
                        PRIMARY KEY ("partition", "offset")
                    );
                    CREATE TABLE sink_dead_letters (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
                    """)
        }
        return migrator
    }
}
