import Foundation
import GRDB

/// An embedded data directory's warehouse and registry read table by table, as text, for
/// `cardwatch warehouse migrate-from-sqlite`: each table as the query that reads it in the
/// target's columns (the stream its rows were decided under, decision times from the log),
/// the rows in chunks.
public struct WarehouseExport: Sendable {
    /// One table to copy: the target's name and columns, and the SQLite query yielding them.
    public struct Table: Sendable {
        public var name: String
        public var columns: [String]
        public var query: String
        /// Read from the registry's file, not the log's.
        public var fromRegistry = false
    }

    public let log: SQLiteEventLog
    public let registryPath: String

    public init(log: SQLiteEventLog, directory: String) {
        self.log = log
        registryPath = URL(fileURLWithPath: directory).appendingPathComponent(ModelRegistry.fileName).path
    }

    /// The tables in the order they are copied; silver's rows under `stream`.
    public func tables(stream: String) throws -> [Table] {
        let quotedStream = "'" + stream.replacingOccurrences(of: "'", with: "''") + "'"
        let silver = try log.pool.read { db in try db.columns(in: "silver_transactions").map(\.name) }
        let silverColumns = ["stream"] + silver + ["decided_at"]
        let silverSelect =
            [quotedStream] + silver.map { "s.\"\($0)\"" } + ["COALESCE(r.appended_at + s.latency_us, s.latency_us)"]
        let outcomes = "labelled, confirmed_frauds, fraud_amount_micros, alerts_labelled, alerts_confirmed"
        func table(_ name: String, _ columns: String, from: String? = nil) -> Table {
            Table(
                name: name,
                columns: columns.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"")) },
                query: "SELECT \(columns) FROM \(from ?? name)")
        }
        return [
            Table(
                name: "silver_transactions", columns: silverColumns,
                query: """
                    SELECT \(silverSelect.joined(separator: ", ")) FROM silver_transactions s
                    LEFT JOIN records r ON r.topic = 'transactions' AND r."partition" = s."partition"
                        AND r."offset" = s."offset"
                    """),
            Table(
                name: "first_decisions",
                columns: [
                    "transaction_id", "stream", "partition", "offset", "fraud_probability", "risk_tier", "action",
                    "model_version",
                ],
                query: """
                    SELECT t.transaction_id, \(quotedStream), s."partition", s."offset", s.fraud_probability, s.risk_tier,
                        s.action, s.model_version
                    FROM seen_transactions t
                    JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                    """),
            table(
                "alerts",
                "transaction_id, card_id, merchant_id, amount, event_time, \"timestamp\", fraud_probability, risk_tier, "
                    + "action, model_version, reasons, fraud_pattern, arrival, decided_at, feedback, feedback_at"),
            Table(
                name: "labels", columns: ["transaction_id", "is_fraud", "reported_at", "matched", "arrival", "stream"],
                query: "SELECT transaction_id, is_fraud, reported_at, matched, arrival, \(quotedStream) FROM labels"),
            table("feedback", "id, transaction_id, label, analyst, note, recorded_at"),
            table("duplicates", "id, transaction_id, source, line, detected_at, record"),
            Table(
                name: "dead_letters", columns: ["source", "line", "reasons", "raw", "raw_base64", "recorded_at"],
                query: "SELECT source, line, reasons, raw, raw_base64, appended_at FROM dead_letters"),
            table(
                "gold_hourly",
                "hour, transactions, amount_micros, alerts, reviews, declines, probability_nanos, latency_sum_us, "
                    + "latency_max_us, \(outcomes)"),
            table(
                "gold_minutes",
                "minute, transactions, alerts, reviews, declines, probability_nanos, latency_sum_us, latency_max_us, "
                    + outcomes),
            table(
                "gold_card_profiles",
                "card_id, transactions, amount_micros, alerts, declines, max_probability, last_event_time, last_risk_tier"),
            table("gold_card_labels", "card_id, \(outcomes)"),
            table("health_reports", "checked_at, healthy, report"),
            table("system_alerts", "id, kind, message, raised_at"),
            Table(
                name: "sink_offsets", columns: ["group", "partition", "transactions_offset", "labels_offset"],
                query: """
                    SELECT \(quotedStream), "partition", transactions_offset, labels_offset FROM sink_offsets
                    WHERE "group" = 'processor'
                    """),
            Table(
                name: "sink_batch_ends", columns: ["group", "partition", "transactions_offset", "labels_offset"],
                query: """
                    SELECT \(quotedStream), "partition", transactions_offset, labels_offset FROM sink_batch_ends
                    WHERE "group" = 'processor'
                    """),
            Table(
                name: "models",
                columns: [
                    "version", "created_at", "kind", "stage", "train_from", "train_to", "test_from", "test_to", "roc_auc",
                    "average_precision", "metrics_json", "artifact_json",
                ],
                query: """
                    SELECT version, created_at, kind, stage, train_from, train_to, test_from, test_to, roc_auc,
                        average_precision, metrics_json, artifact_json FROM models
                    """, fromRegistry: true),
            Table(
                name: "promotions", columns: ["id", "version", "from_stage", "to_stage", "at", "reason"],
                query: "SELECT id, version, from_stage, to_stage, at, reason FROM promotions", fromRegistry: true),
        ]
    }

    /// The rows of `table` as text (numbers in their shortest exact form; NULL as nil), in
    /// chunks of at most `chunk` rows.
    public func rows(_ table: Table, chunk: Int, _ body: ([[String?]]) throws -> Void) throws {
        let read = { (db: Database) throws in
            let cursor = try Row.fetchCursor(db, sql: table.query)
            var rows: [[String?]] = []
            rows.reserveCapacity(chunk)
            while let row = try cursor.next() {
                rows.append(
                    (0..<row.count).map { i -> String? in
                        switch row[i] as DatabaseValue {
                        case let v where v.isNull: nil
                        case let v: Self.text(v)
                        }
                    })
                if rows.count == chunk {
                    try body(rows)
                    rows.removeAll(keepingCapacity: true)
                }
            }
            if !rows.isEmpty { try body(rows) }
        }
        if table.fromRegistry {
            guard FileManager.default.fileExists(atPath: registryPath) else { return }
            try DatabaseQueue(path: registryPath).read(read)
        } else {
            try log.pool.read(read)
        }
    }

    static func text(_ v: DatabaseValue) -> String? {
        switch v.storage {
        case .null: nil
        case .int64(let i): String(i)
        case .double(let d): d.isNaN ? "NaN" : d.isInfinite ? (d > 0 ? "Infinity" : "-Infinity") : "\(d)"
        case .string(let s): s
        case .blob(let data): String(decoding: data, as: UTF8.self)
        }
    }
}
