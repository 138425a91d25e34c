import CardwatchCore
import CardwatchPipeline
import GRDB
import Synchronization

/// `gold_card_profiles`, folded in behind the batches. Upserting each batch's cards wrote
/// one random page of the table per transaction, a third of what a small commit (the HTTP
/// API's) wrote; instead the store keeps the aggregates of the silver rows not folded in
/// yet and upserts them together, a log partition at a time (a card lives in one): each
/// partition once a second or once 4,096 of its cards wait, and all of them with a batch
/// that carries a feature checkpoint or is the last before a clean stop. One
/// partition at a time keeps each upsert run, which holds the store's single writer, short.
///
/// Nothing is lost in a crash: `gold_card_positions` says, per partition, the last arrival
/// whose silver rows are folded in, and the pending aggregates are rebuilt from the rows after
/// when the store opens or after a failed commit. Sums are integers and "last" is decided
/// by event time, later rows winning ties, so the table ends the same however the rows
/// were grouped into upserts.
final class CardProfiles: Sendable {
    struct Card {
        var transactions = 0
        var amount: Int64 = 0
        var alerts = 0
        var declines = 0
        var maxProbability = 0.0
        var last: Int64 = .min
        var lastTier = RiskTier.low

        mutating func add(amount: Int64, alert: Bool, decline: Bool, probability: Double, time: Int64, tier: RiskTier) {
            transactions += 1
            self.amount += amount
            alerts += alert ? 1 : 0
            declines += decline ? 1 : 0
            maxProbability = max(maxProbability, probability)
            if time >= last {
                last = time
                lastTier = tier
            }
        }
    }

    struct Pending {
        /// Per partition, its cards' aggregates.
        var cards: [[String: Card]]
        /// Per partition, when its cards were last written (µs since 1970).
        var written: [Int64]
        /// The partition whose turn it is to be written next.
        var next = 0
    }

    /// When a partition's cards are written: once this many wait, or this long after the last time.
    struct Schedule: Sendable {
        var cards = 4_096
        var micros: Int64 = 1_000_000
    }

    let partitions: Int
    let schedule: Schedule
    /// nil while unknown: when the store has just opened, while a commit is under way, and
    /// after one failed.
    private let pending = Mutex<Pending?>(nil)

    init(partitions: Int, schedule: Schedule) {
        self.partitions = partitions
        self.schedule = schedule
    }

    /// The pending aggregates, taken for a commit (rebuilt from silver when unknown). Call in
    /// the writer's turn, and `put` them back after the commit, in the same turn.
    func take(_ db: Database) throws -> Pending {
        if let p = pending.withLock({ p in
            defer { p = nil }
            return p
        }) {
            return p
        }
        // Turns start spread over the second, so the partitions are not all due at once.
        let now = Timestamp.now.microseconds
        var p = Pending(
            cards: Array(repeating: [:], count: partitions),
            written: (0..<partitions).map { now - schedule.micros * Int64($0) / Int64(partitions) })
        var folded = [Int64](repeating: 0, count: partitions)
        for row in try Row.fetchAll(db, sql: #"SELECT "partition", arrival FROM gold_card_positions"#) {
            let partition: Int = row[0]
            if partition < partitions { folded[partition] = row[1] }
        }
        // In arrival order, so each card's rows (a card lives in one partition) come in processing order.
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT "partition", arrival, card_id, amount, fraud_probability, risk_tier, action, event_time
                    FROM silver_transactions WHERE arrival > ? ORDER BY arrival, "partition", "offset"
                    """),
            arguments: [folded.min() ?? 0])
        while let row = try rows.next() {
            let partition: Int = row[0]
            let arrival: Int64 = row[1]
            guard partition < partitions, arrival > folded[partition] else { continue }
            let tier = RiskTier(rawValue: row[5]) ?? .low
            let action: String = row[6]
            p.cards[partition][row[2], default: Card()].add(
                amount: SQLiteEventLog.micros(row[3]), alert: tier >= .high, decline: action == Action.decline.rawValue,
                probability: row[4], time: row[7], tier: tier)
        }
        return p
    }

    func put(_ p: Pending) { pending.withLock { $0 = p } }

    /// Folds a batch in, and writes what is due (in the caller's transaction).
    func fold(_ db: Database, _ batch: ProcessedBatch, into p: inout Pending) throws {
        for t in batch.transactions {
            let d = t.decision
            p.cards[t.partition][t.transaction.cardID, default: Card()].add(
                amount: SQLiteEventLog.micros(t.transaction.amount), alert: d.isAlert, decline: d.action == .decline,
                probability: d.probability, time: t.transaction.timestamp.microseconds, tier: d.tier)
        }
        let now = Timestamp.now.microseconds
        if batch.checkpoint != nil || batch.final {
            for partition in 0..<partitions { try write(db, partition, through: batch, &p, now) }
            return
        }
        let partition = p.next
        if p.cards[partition].count >= schedule.cards || now - p.written[partition] >= schedule.micros {
            try write(db, partition, through: batch, &p, now)
            p.next = (partition + 1) % partitions
        }
    }

    /// Upserts a partition's pending cards and moves its offset past the batch.
    private func write(_ db: Database, _ partition: Int, through batch: ProcessedBatch, _ p: inout Pending, _ now: Int64)
        throws
    {
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO gold_card_profiles (card_id, transactions, amount_micros, alerts, declines, max_probability,
                    last_event_time, last_risk_tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (card_id) DO UPDATE SET transactions = transactions + excluded.transactions,
                    amount_micros = amount_micros + excluded.amount_micros, alerts = alerts + excluded.alerts,
                    declines = declines + excluded.declines,
                    max_probability = MAX(max_probability, excluded.max_probability),
                    last_risk_tier = CASE WHEN excluded.last_event_time >= last_event_time
                        THEN excluded.last_risk_tier ELSE last_risk_tier END,
                    last_event_time = MAX(last_event_time, excluded.last_event_time)
                """)
        var row = RowBinder(upsert)
        for (card, c) in p.cards[partition].sorted(by: { $0.key < $1.key }) {  // in key order: neighbours share pages
            row.text(card)
            row.int(c.transactions)
            row.int(c.amount)
            row.int(c.alerts)
            row.int(c.declines)
            row.double(c.maxProbability)
            row.int(c.last)
            row.text(c.lastTier.rawValue)
            try row.run(db)
        }
        var position = RowBinder(
            try db.cachedStatement(
                sql: """
                    INSERT INTO gold_card_positions ("partition", arrival) VALUES (?, ?)
                    ON CONFLICT ("partition") DO UPDATE SET arrival = excluded.arrival
                    """))
        position.int(partition)
        position.int(batch.arrivals.upperBound)
        try position.run(db)
        p.cards[partition].removeAll(keepingCapacity: true)
        p.written[partition] = now
    }
}
