import CardwatchCore
public import CardwatchPipeline
import Foundation
import GRDB

/// The HTTP API's reads against the warehouse, and the analyst feedback (appended to the log's
/// `labels` topic by the log itself): a type of its own over the log's file.
public final class SQLiteServing: ServingStore {
    let log: SQLiteEventLog
    var pool: DatabasePool { log.pool }

    init(log: SQLiteEventLog) { self.log = log }

    public func recordFeedback(_ feedback: AnalystFeedback, alertsOnly: Bool) throws -> Bool? {
        try log.recordFeedback(feedback, alertsOnly: alertsOnly)
    }

    static let alertColumns = """
        transaction_id, card_id, merchant_id, amount, "timestamp", fraud_probability, risk_tier, action, model_version,
        reasons, fraud_pattern, feedback, decided_at
        """

    static func alert(_ row: Row) -> AlertRecord {
        AlertRecord(
            transactionID: row[0], cardID: row[1], merchantID: row[2], amount: row[3], timestamp: row[4],
            fraudProbability: row[5], riskTier: row[6], action: row[7], modelVersion: row[8], reasonsJSON: row[9],
            fraudPattern: row[10], feedback: row[11], decidedAt: row[12])
    }

    public func recentAlerts(limit: Int) throws -> [AlertRecord] {
        try SQLiteEventLog.perform("reading recent alerts") {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT \(Self.alertColumns) FROM alerts ORDER BY decided_at DESC, arrival DESC LIMIT ?",
                    arguments: [limit]
                ).map(Self.alert)
            }
        }
    }

    public func alert(transactionID: String) throws -> AlertRecord? {
        try SQLiteEventLog.perform("reading alert \(transactionID)") {
            try pool.read { db in
                try Row.fetchOne(
                    db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE transaction_id = ?", arguments: [transactionID]
                ).map(Self.alert)
            }
        }
    }

    public func alerts(cardID: String, limit: Int) throws -> [AlertRecord] {
        try SQLiteEventLog.perform("reading the alerts of card \(cardID)") {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT \(Self.alertColumns) FROM alerts WHERE card_id = ? ORDER BY event_time DESC LIMIT ?",
                    arguments: [cardID, limit]
                ).map(Self.alert)
            }
        }
    }

    public func decision(transactionID: String) throws -> StoredDecision? {
        try SQLiteEventLog.perform("reading the decision on \(transactionID)") {
            try pool.read { db in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT s.transaction_id, s.fraud_probability, s.risk_tier, s.action, s.model_version, s.rule_hits,
                                a.reasons, s.latency_us, s.event_time, r.appended_at + s.latency_us
                            FROM seen_transactions t
                            JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                            LEFT JOIN alerts a ON a.transaction_id = s.transaction_id
                            LEFT JOIN records r ON r.topic = 'transactions' AND r."partition" = s."partition"
                                AND r."offset" = s."offset"
                            WHERE t.transaction_id = ?
                            """, arguments: [transactionID])
                else { return nil }
                let hits: String? = row[5]
                var stored = StoredDecision(
                    transactionID: row[0], fraudProbability: row[1], riskTier: row[2], action: row[3], modelVersion: row[4],
                    ruleHits: hits.map { $0.split(separator: ",").map(String.init) } ?? [], reasonsJSON: row[6],
                    latencyMicros: row[7])
                stored.eventTime = row[8]
                stored.decidedAt = row[9] ?? 0
                return stored
            }
        }
    }

    public func stats(from: Int64) throws -> WindowStats {
        try SQLiteEventLog.perform("reading statistics") {
            try pool.read { db in
                var s = WindowStats()
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT COALESCE(SUM(transactions), 0), COALESCE(SUM(alerts), 0), COALESCE(SUM(reviews), 0),
                            COALESCE(SUM(declines), 0), SUM(probability_nanos), SUM(latency_sum_us),
                            COALESCE(MAX(latency_max_us), 0), COALESCE(SUM(labelled), 0), COALESCE(SUM(confirmed_frauds), 0),
                            COALESCE(SUM(fraud_amount_micros), 0), COALESCE(SUM(alerts_labelled), 0),
                            COALESCE(SUM(alerts_confirmed), 0)
                        FROM gold_minutes WHERE minute >= ?
                        """, arguments: [from - from % 60_000_000])!
                s.transactions = row[0]
                s.alerts = row[1]
                s.reviews = row[2]
                s.declines = row[3]
                s.labelled = row[7]
                s.confirmedFrauds = row[8]
                s.fraudAmountMicros = row[9]
                s.alertsLabelled = row[10]
                s.alertsConfirmed = row[11]
                if s.transactions > 0 {
                    s.meanProbability = (row[4] as Double?).map { $0 / 1e9 / Double(s.transactions) }
                    s.meanLatencyMicros = (row[5] as Double?).map { $0 / Double(s.transactions) }
                }
                s.maxLatencyMicros = row[6]
                for r in try Row.fetchAll(
                    db, sql: "SELECT risk_tier, COUNT(*) FROM alerts WHERE decided_at >= ? GROUP BY 1", arguments: [from])
                {
                    s.alertsByTier[r[0]] = r[1]
                }
                for r in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT COALESCE(fraud_pattern, 'unknown'), COUNT(*) FROM alerts WHERE decided_at >= ? GROUP BY 1
                        """, arguments: [from])
                {
                    s.alertsByPattern[r[0]] = r[1]
                }
                return s
            }
        }
    }

    public func timeseries(from: Int64, bucketMicros: Int64) throws -> [TimeBucket] {
        try SQLiteEventLog.perform("reading the time series") {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT (minute / ?) * ? AS bucket, SUM(transactions), SUM(alerts), SUM(latency_sum_us)
                        FROM gold_minutes WHERE minute >= ? GROUP BY bucket ORDER BY bucket
                        """, arguments: [bucketMicros, bucketMicros, from - from % 60_000_000]
                ).map { r in
                    let n: Int = r[1]
                    let latency: Double? = r[3]
                    return TimeBucket(
                        start: r[0], transactions: n, alerts: r[2],
                        meanLatencyMicros: n > 0 ? latency.map { $0 / Double(n) } : nil)
                }
            }
        }
    }
}

extension SQLiteEventLog {
    /// The API's reads over this log's file.
    public var serving: SQLiteServing { SQLiteServing(log: self) }
}
