import CardwatchCore
import CardwatchPipeline
import GRDB
import Synchronization

/// `gold_card_profiles`, folded in behind the batches. Upserting each batch's cards wrote
/// one random page of the table per transaction, a third of what a small commit (the HTTP
/// API's) wrote; instead the store keeps the aggregates of the silver rows not folded in
/// yet and upserts them together, one of 64 shards of the cards at a time (by the key hash that
/// partitions the log): each shard once a second or once 256 of its cards wait, and all
/// of them with the last batch before a clean stop. A shard at a time keeps each upsert
/// run, which holds the store's single writer and so every request waiting on a commit,
/// short. (Batches with a feature checkpoint wrote all of them too, which the rebuild does
/// not need: with 20,000 cards that commit held the HTTP API's requests for 14–20 ms.)
///
/// Nothing is lost in a crash: `gold_card_positions` says, per shard, the last arrival
/// whose silver rows are folded in, and the pending aggregates are rebuilt from the rows
/// after it when the store opens or after a failed commit. Sums are integers and "last" is
/// decided by event time, later rows winning ties, so the table ends the same however the
/// rows were grouped into upserts.
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
        /// Per shard, its cards' aggregates.
        var cards: [[String: Card]]
        /// Per shard, when its cards were last written (µs since 1970).
        var written: [Int64]
        /// The shard whose turn it is to be written next.
        var next = 0
    }

    /// When a shard's cards are written: once this many wait, or this long after the last time.
    struct Schedule: Sendable {
        var cards = 256
        var micros: Int64 = 1_000_000
    }

    static let shards = 64
    let schedule: Schedule
    /// nil while unknown: when the store has just opened, while a commit is under way, and
    /// after one failed.
    private let pending = Mutex<Pending?>(nil)

    init(schedule: Schedule) { self.schedule = schedule }

    static func shard(_ card: String) -> Int { KeyHash.partition(forKey: card, partitions: shards) }

    /// The pending aggregates, taken for a commit (rebuilt from silver when unknown). Call in
    /// the writer's turn, and `put` them back after the commit, in the same turn.
    func take(_ db: Database) throws -> Pending {
        if let p = pending.withLock({ p in
            defer { p = nil }
            return p
        }) {
            return p
        }
        // Turns start spread over the interval, so the shards are not all due at once.
        let now = Timestamp.now.microseconds
        var p = Pending(
            cards: Array(repeating: [:], count: Self.shards),
            written: (0..<Self.shards).map { now - schedule.micros * Int64($0) / Int64(Self.shards) })
        var folded = [Int64](repeating: 0, count: Self.shards)
        for row in try Row.fetchAll(db, sql: "SELECT shard, arrival FROM gold_card_positions") {
            let shard: Int = row[0]
            if (0..<Self.shards).contains(shard) { folded[shard] = row[1] }
        }
        // In commit order (a card lives in one log partition, so its rows come in processing order).
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT arrival, card_id, amount, fraud_probability, risk_tier, action, event_time
                    FROM silver_transactions WHERE arrival > ? ORDER BY arrival, "partition", "offset"
                    """),
            arguments: [folded.min() ?? 0])
        while let row = try rows.next() {
            let arrival: Int64 = row[0]
            let card: String = row[1]
            let shard = Self.shard(card)
            guard arrival > folded[shard] else { continue }
            let tier = RiskTier(rawValue: row[4]) ?? .low
            let action: String = row[5]
            p.cards[shard][card, default: Card()].add(
                amount: WarehouseRows.micros(row[2]), alert: tier >= .high, decline: action == Action.decline.rawValue,
                probability: row[3], time: row[6], tier: tier)
        }
        return p
    }

    func put(_ p: Pending) { pending.withLock { $0 = p } }

    /// Folds a batch in, and writes what is due (in the caller's transaction).
    func fold(_ db: Database, _ batch: ProcessedBatch, into p: inout Pending) throws {
        for t in batch.transactions {
            let d = t.decision
            p.cards[Self.shard(t.transaction.cardID)][t.transaction.cardID, default: Card()].add(
                amount: WarehouseRows.micros(t.transaction.amount), alert: d.isAlert, decline: d.action == .decline,
                probability: d.probability, time: t.transaction.timestamp.microseconds, tier: d.tier)
        }
        let now = Timestamp.now.microseconds
        if batch.final {
            for shard in 0..<Self.shards { try write(db, shard, through: batch, &p, now) }
            return
        }
        let shard = p.next
        if p.cards[shard].count >= schedule.cards || now - p.written[shard] >= schedule.micros {
            try write(db, shard, through: batch, &p, now)
            p.next = (shard + 1) % Self.shards
        }
    }

    /// Upserts a shard's pending cards and moves its position past the batch.
    private func write(_ db: Database, _ shard: Int, through batch: ProcessedBatch, _ p: inout Pending, _ now: Int64) throws {
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
        for (card, c) in p.cards[shard].sorted(by: { $0.key < $1.key }) {  // in key order: neighbours share pages
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
                    INSERT INTO gold_card_positions (shard, arrival) VALUES (?, ?)
                    ON CONFLICT (shard) DO UPDATE SET arrival = excluded.arrival
                    """))
        position.int(shard)
        position.int(batch.sequence)
        try position.run(db)
        p.cards[shard].removeAll(keepingCapacity: true)
        p.written[shard] = now
    }
}
