public import CardwatchCore
import CardwatchFeatures
public import CardwatchModel
public import CardwatchPipeline
import Foundation
import PostgresNIO

/// What stays with the log when the warehouse is PostgreSQL: the records refused at ingest
/// (dead letters), the runtime's lag, and the labels topic that analyst feedback is appended
/// to (the runtime takes it from there like a chargeback).
public protocol IngestSide: Sendable {
    func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int)
    func processorLag() throws -> Int64
    func appendFeedbackLabel(_ label: LabelEvent) throws
}

/// The HTTP API's, the health check's and retraining's reads from the PostgreSQL warehouse,
/// the same queries as SQLite's (`SQLiteServing`, `SQLiteMonitoring`) in PostgreSQL's dialect.
public final class PostgresWarehouseReads: ServingStore, MonitoringStore, TrainingStore {
    public let pool: PostgresPool
    let ingest: any IngestSide

    public init(pool: PostgresPool, ingest: any IngestSide) {
        self.pool = pool
        self.ingest = ingest
    }

    // MARK: Serving

    static let alertColumns = """
        transaction_id, card_id, merchant_id, amount, "timestamp", fraud_probability, risk_tier, action, model_version,
        reasons::text, fraud_pattern, feedback, decided_at
        """

    private func alerts(_ what: String, _ sql: String, _ binds: PostgresBindings) throws -> [AlertRecord] {
        try pool.withSession(what) { s in
            try s.query("SELECT \(Self.alertColumns) FROM alerts \(sql)", binds).rows.map { row in
                let (id, card, merchant, amount, time, probability, tier, action, version) = try row.decode(
                    (String, String, String, Double, String, Double, String, String, Int32).self)
                let columns = Array(row)
                return AlertRecord(
                    transactionID: id, cardID: card, merchantID: merchant, amount: amount, timestamp: time,
                    fraudProbability: probability, riskTier: tier, action: action, modelVersion: Int(version),
                    reasonsJSON: try columns[9].decode(String.self), fraudPattern: try columns[10].decode(String?.self),
                    feedback: try columns[11].decode(String?.self), decidedAt: try columns[12].decode(Int64.self))
            }
        }
    }

    public func recentAlerts(limit: Int) throws -> [AlertRecord] {
        try alerts("reading recent alerts", "ORDER BY decided_at DESC, arrival DESC LIMIT $1", bindings(Int64(limit)))
    }

    public func alert(transactionID: String) throws -> AlertRecord? {
        try alerts("reading alert \(transactionID)", "WHERE transaction_id = $1", bindings(transactionID)).first
    }

    public func alerts(cardID: String, limit: Int) throws -> [AlertRecord] {
        try alerts(
            "reading the alerts of card \(cardID)", "WHERE card_id = $1 ORDER BY event_time DESC LIMIT $2",
            bindings(cardID, Int64(limit)))
    }

    public func decision(transactionID: String) throws -> StoredDecision? {
        try pool.withSession("reading the decision on \(transactionID)") { s in
            let rows = try s.query(
                """
                SELECT s.transaction_id, s.fraud_probability, s.risk_tier, s.action, s.model_version, s.rule_hits,
                    a.reasons::text, s.latency_us, s.event_time, s.decided_at
                FROM first_decisions f
                JOIN silver_transactions s ON s.stream = f.stream AND s."partition" = f."partition"
                    AND s."offset" = f."offset" AND s.transaction_id = f.transaction_id
                LEFT JOIN alerts a ON a.transaction_id = s.transaction_id
                WHERE f.transaction_id = $1
                """, bindings(transactionID))
            guard let row = rows.rows.first else { return nil }
            let (id, probability, tier, action, version, hits, reasons, latency, time, decided) = try row.decode(
                (String, Double, String, String, Int32, String?, String?, Int64, Int64, Int64).self)
            var stored = StoredDecision(
                transactionID: id, fraudProbability: probability, riskTier: tier, action: action,
                modelVersion: Int(version), ruleHits: hits.map { $0.split(separator: ",").map(String.init) } ?? [],
                reasonsJSON: reasons, latencyMicros: latency)
            stored.eventTime = time
            stored.decidedAt = decided
            return stored
        }
    }

    /// In the warehouse first (the verdict, the alert's feedback), then the label to the log.
    /// Should the append fail after that commit, the call fails and its retry records the
    /// verdict again (a second `feedback` row), and appends the label.
    public func recordFeedback(_ feedback: AnalystFeedback, alertsOnly: Bool) throws -> Bool? {
        let alert: Bool? = try pool.transaction("recording feedback on \(feedback.transactionID)") { s in
            let found = try s.query(
                """
                SELECT EXISTS (SELECT 1 FROM alerts WHERE transaction_id = f.transaction_id)
                FROM first_decisions f WHERE f.transaction_id = $1
                """, bindings(feedback.transactionID))
            guard let alert = try found.rows.first?.decode(Bool.self) else { return nil }
            if alertsOnly && !alert { return nil }
            let label = feedback.fraud ? "fraud" : "legitimate"
            var b = bindings(feedback.transactionID, label)
            b.append(feedback.analyst)
            b.append(feedback.note)
            b.append(feedback.at)
            try s.query(
                "INSERT INTO feedback (transaction_id, label, analyst, note, recorded_at) VALUES ($1, $2, $3, $4, $5)", b)
            if alert {
                try s.query(
                    "UPDATE alerts SET feedback = $1, feedback_at = $2 WHERE transaction_id = $3",
                    bindings(label, feedback.at, feedback.transactionID))
            }
            return alert
        }
        guard let alert else { return nil }
        try ingest.appendFeedbackLabel(
            LabelEvent(
                transactionID: feedback.transactionID, isFraud: feedback.fraud,
                reportedAt: Timestamp(microseconds: feedback.at)))
        return alert
    }

    public func stats(from: Int64) throws -> WindowStats {
        try pool.withSession("reading statistics") { s in
            var w = WindowStats()
            let sums = try s.query(
                """
                SELECT COALESCE(SUM(transactions), 0)::int8, COALESCE(SUM(alerts), 0)::int8, COALESCE(SUM(reviews), 0)::int8,
                    COALESCE(SUM(declines), 0)::int8, SUM(probability_nanos)::float8, SUM(latency_sum_us)::float8,
                    COALESCE(MAX(latency_max_us), 0), COALESCE(SUM(labelled), 0)::int8,
                    COALESCE(SUM(confirmed_frauds), 0)::int8, COALESCE(SUM(fraud_amount_micros), 0)::int8,
                    COALESCE(SUM(alerts_labelled), 0)::int8, COALESCE(SUM(alerts_confirmed), 0)::int8
                FROM gold_minutes WHERE minute >= $1
                """, bindings(from - from % 60_000_000)
            ).rows.first!
            let (n, alerts, reviews, declines, probability, latency, latencyMax) = try sums.decode(
                (Int64, Int64, Int64, Int64, Double?, Double?, Int64).self)
            let c = Array(sums)
            w.transactions = Int(n)
            w.alerts = Int(alerts)
            w.reviews = Int(reviews)
            w.declines = Int(declines)
            w.labelled = Int(try c[7].decode(Int64.self))
            w.confirmedFrauds = Int(try c[8].decode(Int64.self))
            w.fraudAmountMicros = try c[9].decode(Int64.self)
            w.alertsLabelled = Int(try c[10].decode(Int64.self))
            w.alertsConfirmed = Int(try c[11].decode(Int64.self))
            if n > 0 {
                w.meanProbability = probability.map { $0 / 1e9 / Double(n) }
                w.meanLatencyMicros = latency.map { $0 / Double(n) }
            }
            w.maxLatencyMicros = latencyMax
            for r in try s.query(
                "SELECT risk_tier, COUNT(*) FROM alerts WHERE decided_at >= $1 GROUP BY 1", bindings(from)
            ).rows {
                let (tier, count) = try r.decode((String, Int64).self)
                w.alertsByTier[tier] = Int(count)
            }
            for r in try s.query(
                "SELECT COALESCE(fraud_pattern, 'unknown'), COUNT(*) FROM alerts WHERE decided_at >= $1 GROUP BY 1",
                bindings(from)
            ).rows {
                let (pattern, count) = try r.decode((String, Int64).self)
                w.alertsByPattern[pattern] = Int(count)
            }
            return w
        }
    }

    public func timeseries(from: Int64, bucketMicros: Int64) throws -> [TimeBucket] {
        try pool.withSession("reading the time series") { s in
            try s.query(
                """
                SELECT (minute / $1) * $1 AS bucket, SUM(transactions)::int8, SUM(alerts)::int8, SUM(latency_sum_us)::float8
                FROM gold_minutes WHERE minute >= $2 GROUP BY bucket ORDER BY bucket
                """, bindings(bucketMicros, from - from % 60_000_000)
            ).rows.map { r in
                let (start, n, alerts, latency) = try r.decode((Int64, Int64, Int64, Double?).self)
                return TimeBucket(
                    start: start, transactions: Int(n), alerts: Int(alerts),
                    meanLatencyMicros: n > 0 ? latency.map { $0 / Double(n) } : nil)
            }
        }
    }

    // MARK: Monitoring

    public func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) {
        let logged = try ingest.deadLetterCounts(since: since)
        // Records of the log that did not decode when the runtime read them.
        let decoded = try pool.withSession("counting dead letters") { s in
            try s.query(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE recorded_at >= $1) FROM dead_letters", bindings(since)
            ).rows.first!.decode((Int64, Int64).self)
        }
        return (logged.total + Int(decoded.0), logged.recent + Int(decoded.1))
    }

    public func baseline() throws -> (transactions: Int, alerts: Int) {
        try pool.withSession("reading the 7-day baseline") { s in
            let (n, alerts) = try s.query(
                """
                SELECT COALESCE(SUM(transactions), 0)::int8, COALESCE(SUM(alerts), 0)::int8 FROM gold_hourly
                WHERE hour >= (SELECT MAX(hour) FROM gold_hourly) - 7 * 86400000000
                """, PostgresBindings()
            ).rows.first!.decode((Int64, Int64).self)
            return (Int(n), Int(alerts))
        }
    }

    public func processorLag() throws -> Int64 { try ingest.processorLag() }

    public func record(_ report: HealthReport) throws {
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        try pool.withSession("recording a health report") { s in
            try s.query(
                """
                INSERT INTO health_reports (checked_at, healthy, report) VALUES ($1, $2, $3::jsonb)
                ON CONFLICT (checked_at) DO UPDATE SET healthy = excluded.healthy, report = excluded.report
                """, bindings(report.checkedAt, report.healthy, json))
        }
    }

    public func record(_ alert: SystemAlert) throws {
        try pool.withSession("recording a system alert") { s in
            try s.query(
                "INSERT INTO system_alerts (kind, message, raised_at) VALUES ($1, $2, $3)",
                bindings(alert.kind.rawValue, alert.message, alert.raisedAt))
        }
    }

    public func latestHealth() throws -> HealthReport? {
        let json = try pool.withSession("reading the latest health report") { s in
            try s.query("SELECT report::text FROM health_reports ORDER BY checked_at DESC LIMIT 1", PostgresBindings())
                .rows.first?.decode(String.self)
        }
        return try json.map { try JSONDecoder().decode(HealthReport.self, from: Data($0.utf8)) }
    }

    public func systemAlerts(limit: Int) throws -> [SystemAlert] {
        try pool.withSession("reading system alerts") { s in
            try s.query(
                "SELECT kind, message, raised_at FROM system_alerts ORDER BY id DESC LIMIT $1", bindings(Int64(limit))
            ).rows.compactMap { row in
                let (kind, message, at) = try row.decode((String, String, Int64).self)
                return SystemAlert.Kind(stored: kind).map { SystemAlert(kind: $0, message: message, raisedAt: at) }
            }
        }
    }

    // MARK: Training

    public func featureColumns() throws -> [String] {
        let known = Set(Feature.names)
        return try pool.withSession("reading the silver table's columns") { s in
            try s.query(
                """
                SELECT column_name::text FROM information_schema.columns
                WHERE table_name = 'silver_transactions' AND table_schema = current_schema() ORDER BY ordinal_position
                """, PostgresBindings()
            ).rows.map { try $0.decode(String.self) }.filter { known.contains($0) }
        }
    }

    /// The 90th percentile of the event times of the latest 1,001 decided rows (as SQLite's
    /// `eventTimeWatermark`). Found through the commit sequence: the latest commits' rows,
    /// taken back a doubling number of commits until there are enough (silver's arrival index
    /// is a BRIN, which finds a range of commits but sorts nothing).
    static func watermark(_ s: PostgresSession) throws -> Int64 {
        let last =
            try s.query("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM commit_sequence", PostgresBindings())
            .rows.first?.decode(Int64.self) ?? 0
        guard last > 0 else { return 0 }
        var back: Int64 = 1
        while true {
            let rows = try s.query(
                """
                WITH latest AS (
                    SELECT event_time FROM silver_transactions WHERE arrival > $1
                    ORDER BY arrival DESC, "partition" DESC, "offset" DESC LIMIT 1001
                )
                SELECT COUNT(*) OVER (), event_time FROM latest ORDER BY event_time
                """, bindings(last - back))
            let times = try rows.rows.map { try $0.decode((Int64, Int64).self) }
            if times.count >= 1001 || back >= last {
                guard !times.isEmpty else { return 0 }
                return times[times.count * 9 / 10].1
            }
            back *= 4
        }
    }

    /// As SQLite's (`SQLiteMonitoring.trainingRows`): labelled rows within `days` of the
    /// event-time watermark, the 90th percentile of the latest 1,001 decided rows' event times.
    public func trainingRows(days: Double) throws -> TimedDataset {
        let columns = Feature.names.map { "\"\($0)\"" }.joined(separator: ", ")
        return try pool.withSession("reading training rows") { s in
            let watermark = try Self.watermark(s)
            let span = Int64(days * 86_400e6)
            var out = TimedDataset(columns: Feature.count)
            var values = [Double](repeating: .nan, count: Feature.count)
            let rows = try s.query(
                """
                SELECT event_time, card_id, transaction_id, fraud_pattern, COALESCE(label, is_fraud)::int4, \(columns)
                FROM silver_transactions
                WHERE COALESCE(label, is_fraud) IS NOT NULL AND event_time BETWEEN $1 - $2 AND $1 + $2
                ORDER BY event_time, arrival, "partition", "offset"
                """, bindings(watermark, span))
            for row in rows.rows {
                let c = Array(row)
                for i in 0..<Feature.count { values[i] = try c[5 + i].decode(Double?.self) ?? .nan }
                let (time, card, id, pattern, label) = try row.decode((Int64, String, String, String?, Int32).self)
                out.append(values, label: label == 1, time: time, card: card, transactionID: id, pattern: pattern)
            }
            return out
        }
    }
}
