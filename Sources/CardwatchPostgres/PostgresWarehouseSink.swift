import CardwatchCore
import CardwatchFeatures
public import CardwatchPipeline
import Foundation
import PostgresNIO
import Synchronization

/// The decision sink on PostgreSQL: a batch's silver rows, alerts, gold aggregates, card
/// profiles, labels, repeats and dead letters, its input offsets and where it ended, in one
/// PostgreSQL transaction. A batch that does not start at the stored offsets is refused
/// whole; members of a group that commit into the same partition are serialized by an
/// advisory lock per (group, partition), taken in partition order so two batches never wait
/// on each other. It is also the group's idempotency index (`first_decisions`).
///
/// Rows are written a table at a time from arrays (`INSERT … SELECT FROM unnest(…)`): one
/// statement per table and batch, whatever the batch's size.
public final class PostgresWarehouseSink: DecisionSink, DecisionIndex, AlertCounting {
    public let pool: PostgresPool
    /// Called with each batch as the warehouse holds it, once committed.
    let observer: (@Sendable (ProcessedBatch) -> Void)?
    /// The event days whose silver partition is known to exist.
    private let days = Mutex<Set<Int64>>([])

    /// Silver keeps this many event days, the newest included (nil: all); older days'
    /// partitions are dropped when a newer day's is created.
    public let retainDays: Int?

    /// Opens the sink on `pool`, migrating the schema first.
    public init(pool: PostgresPool, retainDays: Int? = nil, observer: (@Sendable (ProcessedBatch) -> Void)? = nil) throws {
        self.pool = pool
        self.retainDays = retainDays
        self.observer = observer
        try PostgresSchema.migrate(pool)
    }

    public func commit(_ batch: SinkBatch) throws {
        try createDays(batch.decisions.map { $0.transaction.timestamp.microseconds })
        let out = try pool.transaction("committing \(batch.decisions.count) decisions of group \(batch.group)") {
            try write($0, batch)
        }
        observer?(out)
    }

    // MARK: Offsets

    public func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        try pool.withSession("reading group \(group)'s offsets in partition \(partition)") { s in
            let rows = try s.query(
                #"SELECT transactions_offset, labels_offset FROM sink_offsets WHERE "group" = $1 AND "partition" = $2"#,
                bindings(group, Int32(partition)))
            return try rows.rows.first.map {
                let (t, l) = try $0.decode((Int64, Int64).self)
                return PartitionOffsets(transactions: t, labels: l)
            }
        }
    }

    public func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try pool.withSession("reading group \(group)'s batch ends in partition \(partition)") { s in
            let rows = try s.query(
                """
                SELECT transactions_offset, labels_offset FROM sink_batch_ends
                WHERE "group" = $1 AND "partition" = $2 AND transactions_offset >= $3 AND labels_offset >= $4
                    AND (transactions_offset > $3 OR labels_offset > $4)
                ORDER BY transactions_offset, labels_offset
                """,
                bindings(group, Int32(partition), after.transactions, after.labels))
            return try rows.rows.map {
                let (t, l) = try $0.decode((Int64, Int64).self)
                return PartitionOffsets(transactions: t, labels: l)
            }
        }
    }

    public func firstDecisions(_ transactionIDs: [String]) throws -> [String: FirstDecision] {
        guard !transactionIDs.isEmpty else { return [:] }
        let ids = Array(Set(transactionIDs))
        return try pool.withSession("looking up \(ids.count) transaction ids") { s in
            let rows = try s.query(
                """
                SELECT transaction_id, "partition", "offset", fraud_probability, risk_tier, action, model_version
                FROM first_decisions WHERE transaction_id = ANY($1)
                """,
                bindings(ids))
            var out: [String: FirstDecision] = [:]
            for row in rows.rows {
                let (id, p, o, probability, tier, action, version) = try row.decode(
                    (String, Int32, Int64, Double, String, String, Int32).self)
                out[id] = FirstDecision(
                    partition: Int(p), offset: o,
                    decision: Decision(
                        probability: probability, tier: RiskTier(rawValue: tier) ?? .low,
                        action: Action(rawValue: action) ?? .approve, reasons: [], modelVersion: Int(version)))
            }
            return out
        }
    }

    /// Decided transactions in the warehouse (for tests and tools).
    public func decisionCount() throws -> Int {
        try pool.withSession("counting decisions") { s in
            Int(try s.query("SELECT COUNT(*) FROM silver_transactions", PostgresBindings()).rows.first?.decode(Int64.self) ?? 0)
        }
    }

    public func alertCount() throws -> Int {
        try pool.withSession("counting alerts") { s in
            Int(try s.query("SELECT COUNT(*) FROM alerts", PostgresBindings()).rows.first?.decode(Int64.self) ?? 0)
        }
    }

    // MARK: The batch

    /// Refuses the batch unless each partition's stored offsets are where it starts; moves them.
    private func advance(_ s: PostgresSession, _ batch: SinkBatch) throws {
        guard !batch.consumed.isEmpty else { return }
        let partitions = batch.consumed.map { Int32($0.partition) }
        // In partition order (the OFFSET 0 keeps the sort below the locks): no two batches
        // wait on each other.
        try s.query(
            """
            SELECT pg_advisory_xact_lock(hashtext($1), p)
            FROM (SELECT p FROM unnest($2::int4[]) AS p ORDER BY p OFFSET 0) AS sorted
            """,
            bindings(batch.group, partitions))
        let rows = try s.query(
            #"SELECT "partition", transactions_offset, labels_offset FROM sink_offsets WHERE "group" = $1 AND "partition" = ANY($2)"#,
            bindings(batch.group, partitions))
        var stored: [Int: PartitionOffsets] = [:]
        for row in rows.rows {
            let (p, t, l) = try row.decode((Int32, Int64, Int64).self)
            stored[Int(p)] = PartitionOffsets(transactions: t, labels: l)
        }
        for range in batch.consumed {
            let at = stored[range.partition] ?? .start
            guard at == range.from else {
                throw DecisionSinkError(
                    .offsetConflict,
                    "group \(batch.group) partition \(range.partition) is at \(at), the batch starts at \(range.from)")
            }
        }
        let moved = batch.consumed.filter { $0.from != $0.to }
        guard !moved.isEmpty else { return }
        let b = bindings(
            batch.group, moved.map { Int32($0.partition) }, moved.map(\.to.transactions), moved.map(\.to.labels))
        try s.query(
            """
            INSERT INTO sink_offsets ("group", "partition", transactions_offset, labels_offset)
            SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[])
            ON CONFLICT ("group", "partition") DO UPDATE SET
                transactions_offset = excluded.transactions_offset, labels_offset = excluded.labels_offset
            """, b)
        try s.query(
            """
            INSERT INTO sink_batch_ends ("group", "partition", transactions_offset, labels_offset)
            SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::int8[])
            """, b)
    }

    private func write(_ s: PostgresSession, _ batch: SinkBatch) throws -> ProcessedBatch {
        try advance(s, batch)
        let sequence = try s.query("SELECT nextval('commit_sequence')", PostgresBindings()).rows.first?.decode(Int64.self) ?? 0
        let out = ProcessedBatch(committing: batch, sequence: sequence)
        let decidedAt = batch.decisions.first?.decision.decidedAt ?? Timestamp.now.microseconds
        try PostgresRows.silver(s, out.transactions, stream: batch.group)
        try PostgresRows.firstDecisions(s, out.transactions, stream: batch.group)
        try PostgresRows.alerts(s, out.transactions, decidedAt: decidedAt)
        try PostgresRows.gold(s, out.transactions, decidedAt: decidedAt)
        try PostgresRows.cardProfiles(s, out.transactions)
        try PostgresRows.labels(s, batch.labels, sequence: sequence, stream: batch.group)
        try PostgresRows.repeats(s, batch.repeats)
        try PostgresRows.deadLetters(s, batch.deadLetters)
        return out
    }

    // MARK: Silver's partitions

    static let dayMicros: Int64 = 86_400_000_000

    /// Creates the silver partition of each event day in `times` not known yet, each in its
    /// own short transaction (so a batch that fails later leaves an empty day, nothing else);
    /// then, with `retainDays`, drops the days that fell out of the window.
    func createDays(_ times: [Int64]) throws {
        let wanted = Set(times.map { $0 >= 0 ? $0 / Self.dayMicros : ($0 + 1) / Self.dayMicros - 1 })
        let missing = days.withLock { wanted.subtracting($0) }
        guard !missing.isEmpty else { return }
        for day in missing.sorted() {
            let name = Self.dayTable(day)
            try pool.transaction("creating silver partition \(name)") { s in
                // Two instances creating the same day wait for each other here.
                try s.query("SELECT pg_advisory_xact_lock($1)", bindings(PostgresSchema.migrationLock + 1))
                try s.execute(
                    """
                    CREATE TABLE IF NOT EXISTS "\(name)" PARTITION OF silver_transactions
                    FOR VALUES FROM (\(day * Self.dayMicros)) TO (\((day + 1) * Self.dayMicros))
                    """)
            }
            _ = days.withLock { $0.insert(day) }
        }
        if let retainDays, let newest = missing.max() { try dropDays(before: newest - Int64(retainDays) + 1) }
    }

    /// Drops silver's partitions of the days before `day` (the newest partitions are never
    /// dropped by a late record: only a new day moves the window). Their rows' decisions stay
    /// in `first_decisions`, alerts and the gold aggregates.
    func dropDays(before day: Int64) throws {
        try pool.transaction("dropping silver partitions before \(Self.dayTable(day))") { s in
            try s.query("SELECT pg_advisory_xact_lock($1)", bindings(PostgresSchema.migrationLock + 1))
            let names = try s.query(
                """
                SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'silver_transactions'::regclass
                """, PostgresBindings()
            ).rows.map { try $0.decode(String.self) }
            let cut = Self.dayTable(day)
            // silver_YYYYMMDD sorts as its day does.
            for name in names where name.hasPrefix("silver_") && name.count == cut.count && name < cut {
                try s.execute("DROP TABLE \"\(name)\"")
            }
        }
        days.withLock { $0 = $0.filter { $0 >= day } }
    }

    /// `silver_YYYYMMDD` of a day since 1970 (UTC).
    static func dayTable(_ day: Int64) -> String {
        let date = Timestamp(microseconds: day * dayMicros).rfc3339.prefix(10).replacingOccurrences(of: "-", with: "")
        return "silver_\(date)"
    }
}
