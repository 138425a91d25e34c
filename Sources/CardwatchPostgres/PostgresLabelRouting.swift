public import CardwatchCore
public import CardwatchPipeline
import PostgresNIO

/// Where labels go when the log is Kafka, which cannot be asked for a transaction by id: the
/// warehouse's first decision of each transaction gives its card, merchant and time
/// (`RoutedLabel`). A label whose transaction is not decided yet is not routed by it.
public struct PostgresLabelRouting: Sendable {
    public let pool: PostgresPool
    /// Ids asked per query.
    static let chunk = 1000

    public init(pool: PostgresPool) { self.pool = pool }

    /// The decided transactions among `ids`, by id.
    public func targets(_ ids: [String]) throws -> [String: LabelTarget] {
        var found: [String: LabelTarget] = [:]
        for start in stride(from: 0, to: ids.count, by: Self.chunk) {
            let part = Array(ids[start..<min(start + Self.chunk, ids.count)])
            try pool.withSession("finding the transactions of \(part.count) labels") { s in
                let rows = try s.query(
                    """
                    SELECT s.transaction_id, s.card_id, s.merchant_id, s.event_time
                    FROM first_decisions f
                    JOIN silver_transactions s ON s.stream = f.stream AND s."partition" = f."partition"
                        AND s."offset" = f."offset" AND s.transaction_id = f.transaction_id
                    WHERE f.transaction_id = ANY($1)
                    """, bindings(part))
                for row in rows.rows {
                    let (id, card, merchant, time) = try row.decode((String, String, String, Int64).self)
                    found[id] = LabelTarget(cardID: card, merchantID: merchant, time: Timestamp(microseconds: time))
                }
            }
        }
        return found
    }
}
