import CardwatchCore
public import CardwatchPipeline
import Foundation
import GRDB

/// What is known afterwards about decided transactions: label events (chargebacks, analyst
/// feedback) and the aggregates built from them. A transaction's outcome is its latest
/// label; every label the runtime commits moves the aggregates by the difference between
/// the transaction's previous outcome and its new one, in the batch's transaction, so they
/// always equal a count over the silver rows' current labels:
///
/// - `labelled`: transactions with a known outcome; `confirmed_frauds` and
///   `fraud_amount_micros`: those whose outcome is fraud, and their amount;
/// - `alerts_labelled` and `alerts_confirmed`: the same among alerts (alert precision is
///   `alerts_confirmed / alerts_labelled`: confirmed frauds among alerts with a known outcome).
///
/// They are kept per event hour (`gold_hourly`), per minute of decision time (`gold_minutes`,
/// for `/stats/summary`) and per card (`gold_card_labels`). The analyst's name and note of
/// every feedback are in `feedback`.
enum ConfirmedOutcomes {
    static let columns = ["labelled", "confirmed_frauds", "fraud_amount_micros", "alerts_labelled", "alerts_confirmed"]

    /// Registered after v5.
    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6: confirmed outcomes and analyst feedback") { db in
            for table in ["gold_hourly", "gold_minutes"] {
                for column in columns {
                    try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(column) INTEGER NOT NULL DEFAULT 0")
                }
            }
            try db.execute(
                sql: """
                    CREATE TABLE gold_card_labels (
                        card_id TEXT PRIMARY KEY NOT NULL,
                        labelled INTEGER NOT NULL,
                        confirmed_frauds INTEGER NOT NULL,
                        fraud_amount_micros INTEGER NOT NULL,
                        alerts_labelled INTEGER NOT NULL,
                        alerts_confirmed INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Every analyst verdict, with who gave it and why (the label itself goes to the labels log).
                    CREATE TABLE feedback (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        transaction_id TEXT NOT NULL,
                        label TEXT NOT NULL,
                        analyst TEXT,
                        note TEXT,
                        recorded_at INTEGER NOT NULL
                    );
                    CREATE INDEX feedback_by_transaction ON feedback (transaction_id, id);
                    -- The silver rows' current labels, summed once; from here on every label moves them.
                    CREATE TEMPORARY TABLE outcomes AS
                        SELECT s.card_id, s.event_time, s.risk_tier IN ('high', 'critical') AS alert, s.label,
                            CAST(ROUND(s.amount * 1e6) AS INTEGER) AS amount_micros,
                            r.appended_at + s.latency_us AS decided_at
                        FROM silver_transactions s
                        LEFT JOIN records r ON r.topic = 'transactions' AND r."partition" = s."partition"
                            AND r."offset" = s."offset"
                        WHERE s.label IS NOT NULL;
                    UPDATE gold_hourly SET labelled = o.labelled, confirmed_frauds = o.frauds,
                        fraud_amount_micros = o.amount, alerts_labelled = o.alerts, alerts_confirmed = o.confirmed
                    FROM (SELECT event_time - ((event_time % 3600000000) + 3600000000) % 3600000000 AS hour,
                              COUNT(*) AS labelled, SUM(label) AS frauds, SUM(label * amount_micros) AS amount,
                              SUM(alert) AS alerts, SUM(alert * label) AS confirmed
                          FROM outcomes GROUP BY 1) AS o
                    WHERE o.hour = gold_hourly.hour;
                    INSERT INTO gold_minutes (minute, transactions, alerts, reviews, declines, probability_nanos,
                        latency_sum_us, latency_max_us, labelled, confirmed_frauds, fraud_amount_micros, alerts_labelled,
                        alerts_confirmed)
                    SELECT decided_at - decided_at % 60000000, 0, 0, 0, 0, 0, 0, 0, COUNT(*), SUM(label),
                        SUM(label * amount_micros), SUM(alert), SUM(alert * label)
                    FROM outcomes WHERE decided_at IS NOT NULL GROUP BY 1 ORDER BY 1
                    ON CONFLICT (minute) DO UPDATE SET labelled = excluded.labelled,
                        confirmed_frauds = excluded.confirmed_frauds, fraud_amount_micros = excluded.fraud_amount_micros,
                        alerts_labelled = excluded.alerts_labelled, alerts_confirmed = excluded.alerts_confirmed;
                    INSERT INTO gold_card_labels
                    SELECT card_id, COUNT(*), SUM(label), SUM(label * amount_micros), SUM(alert), SUM(alert * label)
                    FROM outcomes GROUP BY card_id;
                    DROP TABLE outcomes;

                    DROP VIEW hourly_metrics;
                    CREATE VIEW hourly_metrics AS
                        SELECT strftime('%Y-%m-%dT%H:00:00Z', hour / 1000000, 'unixepoch') AS hour, transactions,
                            amount_micros / 1e6 AS amount, alerts, reviews, declines,
                            CAST(alerts AS REAL) / transactions AS alert_rate,
                            probability_nanos / 1e9 / transactions AS mean_probability,
                            CAST(latency_sum_us AS REAL) / transactions AS mean_latency_us, latency_max_us,
                            labelled, confirmed_frauds, CAST(confirmed_frauds AS REAL) / transactions AS confirmed_fraud_rate,
                            fraud_amount_micros / 1e6 AS fraud_amount, alerts_labelled, alerts_confirmed,
                            CASE WHEN alerts_labelled > 0 THEN CAST(alerts_confirmed AS REAL) / alerts_labelled END
                                AS alert_precision
                        FROM gold_hourly ORDER BY 1;
                    DROP VIEW card_risk;
                    CREATE VIEW card_risk AS
                        SELECT p.card_id, p.transactions, p.amount_micros / 1e6 AS amount, p.alerts, p.declines,
                            p.max_probability,
                            strftime('%Y-%m-%dT%H:%M:%SZ', p.last_event_time / 1000000, 'unixepoch') AS last_seen,
                            p.last_risk_tier, CAST(p.alerts AS REAL) / p.transactions AS alert_rate,
                            COALESCE(l.labelled, 0) AS labelled, COALESCE(l.confirmed_frauds, 0) AS confirmed_frauds,
                            CAST(COALESCE(l.confirmed_frauds, 0) AS REAL) / p.transactions AS confirmed_fraud_rate,
                            COALESCE(l.fraud_amount_micros, 0) / 1e6 AS fraud_amount,
                            COALESCE(l.alerts_labelled, 0) AS alerts_labelled,
                            COALESCE(l.alerts_confirmed, 0) AS alerts_confirmed,
                            CASE WHEN l.alerts_labelled > 0 THEN CAST(l.alerts_confirmed AS REAL) / l.alerts_labelled END
                                AS alert_precision
                        FROM gold_card_profiles p LEFT JOIN gold_card_labels l USING (card_id);
                    """)
        }
    }

    /// Applies one label to its transaction's silver row and to the aggregates, in the batch's
    /// transaction. A label for a transaction not decided (yet) changes nothing here.
    static func apply(_ db: Database, transactionID: String, isFraud: Bool) throws {
        let current = try db.cachedStatement(
            sql: """
                SELECT s.label, s.event_time, s.amount, s.risk_tier IN ('high', 'critical'), s.card_id,
                    r.appended_at + s.latency_us, s.arrival, s."partition", s."offset"
                FROM seen_transactions t
                JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                LEFT JOIN records r ON r.topic = 'transactions' AND r."partition" = s."partition" AND r."offset" = s."offset"
                WHERE t.transaction_id = ?
                """)
        guard let row = try Row.fetchOne(current, arguments: [transactionID]) else { return }
        let new: Int64 = isFraud ? 1 : 0
        let old: Int64? = row[0]
        let eventTime: Int64 = row[1]
        let amount: Double = row[2] ?? 0
        let delta = OutcomeDelta(old: old, new: new, alert: row[3], amountMicros: WarehouseRows.micros(amount))
        try db.cachedStatement(
            sql: #"UPDATE silver_transactions SET label = ? WHERE arrival = ? AND "partition" = ? AND "offset" = ?"#
        ).execute(arguments: [new, row[6], row[7], row[8]])
        guard !delta.isZero else { return }
        let hour = eventTime - ((eventTime % 3_600_000_000) + 3_600_000_000) % 3_600_000_000
        let moves = delta.moves
        let set = columns.map { "\($0) = \($0) + ?" }.joined(separator: ", ")
        try db.cachedStatement(sql: "UPDATE gold_hourly SET \(set) WHERE hour = ?").execute(
            arguments: StatementArguments(moves + [hour]))
        if let decided: Int64 = row[5] {
            try db.cachedStatement(
                sql: """
                    INSERT INTO gold_minutes (minute, transactions, alerts, reviews, declines, probability_nanos,
                        latency_sum_us, latency_max_us, \(columns.joined(separator: ", ")))
                    VALUES (?, 0, 0, 0, 0, 0, 0, 0, ?, ?, ?, ?, ?)
                    ON CONFLICT (minute) DO UPDATE SET \(columns.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "))
                    """
            ).execute(arguments: StatementArguments([decided - decided % 60_000_000] + moves))
        }
        let card: String = row[4]
        try db.cachedStatement(
            sql: """
                INSERT INTO gold_card_labels (card_id, \(columns.joined(separator: ", "))) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (card_id) DO UPDATE SET \(columns.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", "))
                """
        ).execute(arguments: StatementArguments([card as any DatabaseValueConvertible] + moves))
    }
}

extension SQLiteEventLog {
    /// Decided transactions whose ids start with `prefix`, marked `is_fraud` by their source,
    /// at or after `since` (event time), that no label has confirmed and no label waiting in
    /// the log names, in event-time order: the chargebacks a source (the live generator) still
    /// owes. The source's appends must follow each other in event time, as the live
    /// generator's do (across restarts too): the newest silver rows are read backwards, to the
    /// end of the first append holding one of its rows older than `since`, so the cost is the
    /// rows since then, and no index is kept (one on every insert cost the HTTP path's small
    /// commits a WAL page in two).
    public func unconfirmedFrauds(idPrefix prefix: String, since: Int64) throws -> [(id: String, eventTime: Int64)] {
        try Self.perform("reading the unconfirmed frauds of \(prefix)…") {
            try pool.read { db in
                var waiting = Set<String>()
                for p in 0..<partitions {
                    let next = try Self.committedOffsetForLabels(db, partition: p)
                    waiting.formUnion(
                        try String.fetchAll(
                            db, sql: #"SELECT key FROM records WHERE topic = 'labels' AND "partition" = ? AND "offset" >= ?"#,
                            arguments: [p, next]))
                }
                var owed: [(id: String, eventTime: Int64)] = []
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT transaction_id, event_time, is_fraud = 1 AND label IS NULL, arrival FROM silver_transactions
                        ORDER BY arrival DESC, "partition" DESC, "offset" DESC
                        """)
                var lastArrival: Int64?  // the append that reached back past `since`
                while let row = try rows.next() {
                    let arrival: Int64 = row[3]
                    if let lastArrival, arrival < lastArrival { break }  // earlier appends are older still
                    let id: String = row[0]
                    guard id.hasPrefix(prefix) else { continue }
                    let time: Int64 = row[1]
                    if time < since {
                        lastArrival = arrival
                        continue
                    }
                    if row[2], !waiting.contains(id) { owed.append((id, time)) }
                }
                return owed.sorted { $0.eventTime < $1.eventTime }
            }
        }
    }

    private static func committedOffsetForLabels(_ db: Database, partition: Int) throws -> Int64 {
        try Int64.fetchOne(
            db,
            sql: #"SELECT next_offset FROM offsets WHERE group_name = ? AND topic = 'labels' AND "partition" = ?"#,
            arguments: [PartitionRuntime.defaultGroup, partition]) ?? 0
    }

    /// Records `feedback` on a decided transaction (in `feedback`, and on its alert when it
    /// raised one) and appends it to the `labels` log, where the runtime takes it like a
    /// chargeback (silver label, aggregates, merchant fraud rates, training). Returns whether
    /// the transaction raised an alert; nil when it was never decided (or, `alertsOnly`, raised
    /// no alert), and then nothing is written.
    public func recordFeedback(_ feedback: AnalystFeedback, alertsOnly: Bool) throws -> Bool? {
        try Self.perform("recording feedback on \(feedback.transactionID)") {
            try pool.write { db -> Bool? in
                guard
                    let alert = try Bool.fetchOne(
                        db,
                        sql: """
                            SELECT EXISTS (SELECT 1 FROM alerts WHERE transaction_id = t.transaction_id)
                            FROM seen_transactions t JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                            WHERE t.transaction_id = ?
                            """, arguments: [feedback.transactionID])
                else { return nil }
                if alertsOnly && !alert { return nil }
                let label = feedback.fraud ? "fraud" : "legitimate"
                try db.execute(
                    sql: "INSERT INTO feedback (transaction_id, label, analyst, note, recorded_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [feedback.transactionID, label, feedback.analyst, feedback.note, feedback.at])
                if alert {
                    try db.execute(
                        sql: "UPDATE alerts SET feedback = ?, feedback_at = ? WHERE transaction_id = ?",
                        arguments: [label, feedback.at, feedback.transactionID])
                }
                // The verdict is a label event like a chargeback: same log, same routing, same processing, same training.
                let event = LabelEvent(
                    transactionID: feedback.transactionID, isFraud: feedback.fraud,
                    reportedAt: Timestamp(microseconds: feedback.at))
                _ = try insert(db, .labels, try route(db, [event]).map { ($0.key, $0.payload) })
                return alert
            }
        }
    }
}
