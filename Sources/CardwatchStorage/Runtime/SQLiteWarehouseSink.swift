import CardwatchCore
import CardwatchFeatures
public import CardwatchPipeline
import Foundation
import GRDB

/// The embedded decision sink: the partitioned runtime's batches committed into the
/// warehouse in the log's own file (silver, alerts and the `alerts` topic, gold, card
/// profiles, labels, confirmed outcomes, dead letters), with the batch's input offsets, in
/// one SQLite transaction: the log and the sink are one store, so exactly-once needs no
/// two-phase commit.
///
/// The silver and alert rows' `arrival` is the commit's sequence number (one per batch,
/// continuing the arrival numbers of data directories from before the runtime): the
/// warehouse's tables stay appended to at their end, in the order decisions commit.
///
/// No `DecisionIndex` here: this log records every transaction id at its append and refuses
/// a repeat there (`seen_transactions`), so each id reaches the runtime once.
public final class SQLiteWarehouseSink: DecisionSink {
    public let log: SQLiteEventLog
    /// Called with each batch as the warehouse holds it, once committed (live views, latencies,
    /// synchronous answers).
    let observer: (@Sendable (ProcessedBatch) -> Void)?
    /// Tests: commits counted, and the number of the one that fails after writing everything
    /// (rolled back), as a full disk would fail it.
    let faults = Locked<(commits: Int, failAt: Int?)>((0, nil))

    /// The log is elsewhere (Kafka) and this file is the warehouse only: each decided id is
    /// recorded in `seen_transactions` at its commit (no append recorded it), which makes the
    /// sink the idempotency index too (`firstDecisions`), and the file's own log offsets are left alone.
    public let logElsewhere: Bool

    public init(log: SQLiteEventLog, logElsewhere: Bool = false, observer: (@Sendable (ProcessedBatch) -> Void)? = nil) {
        self.log = log
        self.logElsewhere = logElsewhere
        self.observer = observer
    }

    public func commit(_ batch: SinkBatch) throws {
        let written = try transaction("committing \(batch.decisions.count) decisions of group \(batch.group)") {
            db, cards in try write(db, batch, cards: &cards)
        }
        observer?(written)
    }

    /// A transaction of the warehouse (`SQLiteEventLog.inBatchTransaction`). SQLite's errors
    /// become `EventLogError`s named by `what` and SQLite's extended code (the passing ones
    /// `unavailable`); a refused batch (`DecisionSinkError`) and a moved log
    /// (`IngestPlanConflict`) are thrown as they are.
    func transaction<T>(
        _ what: @autoclosure () -> String, _ body: (Database, inout CardProfiles.Pending) throws -> T
    ) throws -> T {
        do {
            return try log.inBatchTransaction(body)
        } catch let error as DecisionSinkError {
            throw error
        } catch let error as IngestPlanConflict {
            throw error
        } catch let error as EventLogError {
            throw error
        } catch {
            let code = (error as? DatabaseError).map { " (extended code \($0.extendedResultCode.rawValue))" } ?? ""
            throw EventLogError(
                SQLiteEventLog.isTransient(error) ? .unavailable : .storage, "\(what()) failed: \(error)\(code)")
        }
    }

    /// Writes the card profiles folded in behind (at a clean stop), so the warehouse's
    /// aggregates are complete.
    public func flush() throws {
        try transaction("writing the pending card profiles") { db, cards in
            var out = ProcessedBatch(sequence: try Self.lastSequence(db))
            out.final = true
            try log.cardProfiles.fold(db, out, into: &cards)
        }
    }

    public func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        try SQLiteEventLog.perform("reading group \(group)'s offsets in partition \(partition)") {
            try log.pool.read { try SinkOffsetsTable.offsets($0, group: group, partition: partition) }
        }
    }

    public func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try SQLiteEventLog.perform("reading group \(group)'s batch ends in partition \(partition)") {
            try log.pool.read { try SinkOffsetsTable.batchEnds($0, group: group, partition: partition, after: after) }
        }
    }

    /// The last commit's sequence number (0: none).
    static func lastSequence(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT arrival FROM processor_position WHERE id = 1")) ?? 0
    }

    /// A batch's writes, in the caller's transaction; what the warehouse now holds of it.
    func write(_ db: Database, _ batch: SinkBatch, cards: inout CardProfiles.Pending) throws -> ProcessedBatch {
        try SinkOffsetsTable.advance(db, batch)
        let sequence = try Self.lastSequence(db) + 1
        let out = ProcessedBatch(committing: batch, sequence: sequence)
        try log.writeSilverAndAlerts(db, out)
        try log.writeGold(db, out)
        try log.cardProfiles.fold(db, out, into: &cards)
        try log.writeLabels(db, out)
        _ = try log.insert(db, .transactionsDLQ, batch.deadLetters.map { ($0.source, WarehouseRows.deadLetterJSON($0)) })
        for r in batch.repeats {
            try db.execute(
                sql: "INSERT INTO duplicates (transaction_id, source, line, detected_at, record) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    r.transactionID, "log:transactions[\(r.partition)]", r.offset, Timestamp.now.microseconds,
                    #"{"first_partition":\#(r.first.partition),"first_offset":\#(r.first.offset)}"#,
                ])
        }
        if logElsewhere { try recordDecided(db, batch, sequence: sequence) }
        // The log's own offsets of the group follow the sink's: what `processorLag` and the
        // monitoring read.
        for range in batch.consumed where range.from != range.to && !logElsewhere {
            if range.to.transactions != range.from.transactions {
                try log.moveOffset(
                    db, group: batch.group, topic: .transactions, partition: range.partition, to: range.to.transactions)
            }
            if range.to.labels != range.from.labels {
                try log.moveOffset(db, group: batch.group, topic: .labels, partition: range.partition, to: range.to.labels)
            }
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO processor_position (id, arrival) VALUES (1, ?)
                ON CONFLICT (id) DO UPDATE SET arrival = excluded.arrival
                """
        ).execute(arguments: [sequence])
        let fails = faults.withLock {
            $0.commits += 1
            return $0.commits == $0.failAt
        }
        if fails { throw InjectedCommitFailure(commit: faults.withLock { $0.commits }) }
        return out
    }

    /// The batch's decided ids with their places (the first place of an id stays).
    func recordDecided(_ db: Database, _ batch: SinkBatch, sequence: Int64) throws {
        var row = RowBinder(
            try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO seen_transactions (transaction_id, arrival, "partition", "offset") VALUES (?, ?, ?, ?)
                    """))
        for d in batch.decisions {
            row.text(d.transaction.transactionID)
            row.int(sequence)
            row.int(d.partition)
            row.int(d.offset)
            try row.run(db)
        }
    }

    /// The sink's tables in the log's file, for data directories old and new: the offsets and
    /// batch ends, and silver found by its place in the log. A data directory whose processor
    /// committed before the runtime continues from that processor's offsets: its state is
    /// rebuilt from the log up to them (the labels it stored keyed by transaction name no
    /// card, and count in no merchant's fraud rate until retraining reads them).
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v7: the partitioned runtime's sink in the warehouse") { db in
            try db.execute(sql: SinkOffsetsTable.schema)
            try db.execute(
                sql: """
                    CREATE INDEX silver_by_place ON silver_transactions ("partition", "offset");
                    INSERT INTO sink_offsets ("group", "partition", transactions_offset, labels_offset)
                        SELECT 'processor', p, MAX(t), MAX(l) FROM (
                            SELECT "partition" AS p, next_offset AS t, 0 AS l FROM offsets
                                WHERE group_name = 'processor' AND topic = 'transactions'
                            UNION ALL
                            SELECT "partition", 0, next_offset FROM offsets
                                WHERE group_name = 'processor' AND topic = 'labels'
                        ) GROUP BY p;
                    INSERT INTO sink_batch_ends SELECT * FROM sink_offsets;
                    """)
        }
    }
}

/// The failure a test asked a commit for (`SQLiteWarehouseSink.faults`).
struct InjectedCommitFailure: Error, CustomStringConvertible {
    var commit: Int
    var description: String { "commit \(commit) failed (injected by a test)" }
}

/// With the log elsewhere (`SQLiteWarehouseSink.logElsewhere`): the first decision of each id,
/// found by its place in silver. A type of its own: the embedded sink is no index (its log
/// refuses repeats at append), and the sink contracts ask any sink that is one.
public struct SQLiteDecidedIndex: DecisionIndex {
    public let log: SQLiteEventLog

    public init(sink: SQLiteWarehouseSink) { log = sink.log }

    public func firstDecisions(_ transactionIDs: [String]) throws -> [String: FirstDecision] {
        guard !transactionIDs.isEmpty else { return [:] }
        return try SQLiteEventLog.perform("looking up \(transactionIDs.count) transaction ids") {
            try log.pool.read { db in
                let find = try db.cachedStatement(
                    sql: """
                        SELECT t."partition", t."offset", s.fraud_probability, s.risk_tier, s.action, s.model_version
                        FROM seen_transactions t
                        JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                        WHERE t.transaction_id = ?
                        """)
                var out: [String: FirstDecision] = [:]
                for id in Set(transactionIDs) {
                    guard let row = try Row.fetchOne(find, arguments: [id]) else { continue }
                    let tier: String = row[3]
                    let action: String = row[4]
                    out[id] = FirstDecision(
                        partition: row[0], offset: row[1],
                        decision: Decision(
                            probability: row[2], tier: RiskTier(rawValue: tier) ?? .low,
                            action: Action(rawValue: action) ?? .approve, reasons: [], modelVersion: row[5]))
                }
                return out
            }
        }
    }

    /// The decided transactions among `ids`, by id (labels routed to their cards' partitions).
    public func labelTargets(_ ids: [String]) throws -> [String: LabelTarget] {
        try SQLiteEventLog.perform("finding the transactions of \(ids.count) labels") {
            try log.pool.read { db in
                let find = try db.cachedStatement(
                    sql: """
                        SELECT s.card_id, s.merchant_id, s.event_time FROM seen_transactions t
                        JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                        WHERE t.transaction_id = ?
                        """)
                var out: [String: LabelTarget] = [:]
                for id in Set(ids) {
                    guard let row = try Row.fetchOne(find, arguments: [id]) else { continue }
                    out[id] = LabelTarget(cardID: row[0], merchantID: row[1], time: Timestamp(microseconds: row[2]))
                }
                return out
            }
        }
    }
}
