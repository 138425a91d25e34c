import CardwatchFeatures
import GRDB

/// The warehouse lives in the log's database file so that a processor batch commits its
/// rows and its input offsets in one SQLite transaction (WAL mode makes a transaction
/// atomic only within one file). Bronze is the `transactions` log itself (a view); silver
/// is one row per decided transaction (the prediction log); gold is kept up to date by
/// every batch. Plain views expose them to any SQLite tool.
enum WarehouseSchema {
    /// The features, `amount` among them (the transaction's amount), one column each.
    static let featureColumns = Feature.names.map { "\"\($0)\" REAL" }.joined(separator: ",\n    ")

    static func register(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2: warehouse") { db in
            try db.execute(
                sql: """
                    -- Every transaction id ever appended: duplicates are found here.
                    CREATE TABLE seen_transactions (transaction_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
                    CREATE TABLE duplicates (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        transaction_id TEXT NOT NULL,
                        source TEXT NOT NULL,
                        line INTEGER,
                        detected_at INTEGER NOT NULL,
                        record TEXT NOT NULL
                    );
                    -- Where each source (an imported file) resumes.
                    CREATE TABLE ingest_sources (
                        source TEXT PRIMARY KEY NOT NULL, resume_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE silver_transactions (
                        transaction_id TEXT PRIMARY KEY NOT NULL,
                        card_id TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        merchant_category TEXT,
                        currency TEXT NOT NULL,
                        country TEXT,
                        channel TEXT,
                        event_time INTEGER NOT NULL,
                        "timestamp" TEXT NOT NULL,
                        \(featureColumns),
                        fraud_probability REAL NOT NULL,
                        risk_tier TEXT NOT NULL,
                        action TEXT NOT NULL,
                        model_version INTEGER NOT NULL,
                        rule_hits TEXT,
                        latency_us INTEGER NOT NULL,
                        is_fraud INTEGER,
                        fraud_pattern TEXT,
                        label INTEGER,
                        arrival INTEGER NOT NULL,
                        "partition" INTEGER NOT NULL,
                        "offset" INTEGER NOT NULL
                    ) WITHOUT ROWID;  -- one B-tree, keyed by transaction: labels and feedback find rows by id
                    CREATE TABLE alerts (
                        transaction_id TEXT PRIMARY KEY NOT NULL,
                        card_id TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        amount REAL NOT NULL,
                        event_time INTEGER NOT NULL,
                        "timestamp" TEXT NOT NULL,
                        fraud_probability REAL NOT NULL,
                        risk_tier TEXT NOT NULL,
                        action TEXT NOT NULL,
                        model_version INTEGER NOT NULL,
                        reasons TEXT NOT NULL,
                        fraud_pattern TEXT,
                        arrival INTEGER NOT NULL,
                        decided_at INTEGER NOT NULL,
                        feedback TEXT,
                        feedback_at INTEGER
                    ) WITHOUT ROWID;
                    CREATE INDEX alerts_by_decision_time ON alerts (decided_at);
                    CREATE INDEX alerts_by_card ON alerts (card_id, event_time);
                    CREATE INDEX alerts_by_arrival ON alerts (arrival);
                    CREATE TABLE labels (
                        transaction_id TEXT NOT NULL,
                        is_fraud INTEGER NOT NULL,
                        reported_at INTEGER NOT NULL,
                        matched INTEGER NOT NULL,
                        arrival INTEGER NOT NULL
                    );
                    CREATE INDEX labels_by_transaction ON labels (transaction_id);
                    CREATE TABLE gold_hourly (
                        hour INTEGER PRIMARY KEY,
                        transactions INTEGER NOT NULL,
                        amount_micros INTEGER NOT NULL,
                        alerts INTEGER NOT NULL,
                        reviews INTEGER NOT NULL,
                        declines INTEGER NOT NULL,
                        probability_nanos INTEGER NOT NULL,
                        latency_sum_us INTEGER NOT NULL,
                        latency_max_us INTEGER NOT NULL
                    );
                    -- The same per minute of processing (wall-clock) time: the live views' source.
                    CREATE TABLE gold_minutes (
                        minute INTEGER PRIMARY KEY,
                        transactions INTEGER NOT NULL,
                        alerts INTEGER NOT NULL,
                        reviews INTEGER NOT NULL,
                        declines INTEGER NOT NULL,
                        probability_nanos INTEGER NOT NULL,
                        latency_sum_us INTEGER NOT NULL,
                        latency_max_us INTEGER NOT NULL
                    );
                    CREATE TABLE gold_card_profiles (
                        card_id TEXT PRIMARY KEY NOT NULL,
                        transactions INTEGER NOT NULL,
                        amount_micros INTEGER NOT NULL,
                        alerts INTEGER NOT NULL,
                        declines INTEGER NOT NULL,
                        max_probability REAL NOT NULL,
                        last_event_time INTEGER NOT NULL,
                        last_risk_tier TEXT NOT NULL
                    ) WITHOUT ROWID;
                    -- Arrival order: one row per append to transactions or labels, the partition of each record
                    -- (two bytes each, little-endian, 0x8000 set for labels). The processor reads in this order,
                    -- so every run and every replay processes the same input in the same order.
                    CREATE TABLE arrivals (id INTEGER PRIMARY KEY AUTOINCREMENT, entries BLOB NOT NULL);
                    -- The last arrival the processor committed.
                    CREATE TABLE processor_position (id INTEGER PRIMARY KEY CHECK (id = 1), arrival INTEGER NOT NULL);
                    -- The feature state after an arrival, in parts of at most 64 MiB (a blob holds at most 1 GB).
                    CREATE TABLE checkpoints (
                        arrival INTEGER NOT NULL, part INTEGER NOT NULL, state BLOB NOT NULL, created_at INTEGER NOT NULL,
                        PRIMARY KEY (arrival, part)
                    );

                    CREATE VIEW bronze_transactions AS
                        SELECT "partition", "offset", key AS card_id, CAST(payload AS TEXT) AS record, appended_at
                        FROM records WHERE topic = 'transactions';
                    CREATE VIEW dead_letters AS
                        SELECT "partition", "offset",
                            json_extract(CAST(payload AS TEXT), '$.source') AS source,
                            json_extract(CAST(payload AS TEXT), '$.line') AS line,
                            json_extract(CAST(payload AS TEXT), '$.reasons') AS reasons,
                            json_extract(CAST(payload AS TEXT), '$.raw') AS raw,
                            json_extract(CAST(payload AS TEXT), '$.raw_base64') AS raw_base64,
                            appended_at
                        FROM records WHERE topic = 'transactions.dlq';
                    CREATE VIEW hourly_metrics AS
                        SELECT strftime('%Y-%m-%dT%H:00:00Z', hour / 1000000, 'unixepoch') AS hour, transactions,
                            amount_micros / 1e6 AS amount, alerts, reviews, declines,
                            CAST(alerts AS REAL) / transactions AS alert_rate,
                            probability_nanos / 1e9 / transactions AS mean_probability,
                            CAST(latency_sum_us AS REAL) / transactions AS mean_latency_us, latency_max_us
                        FROM gold_hourly ORDER BY 1;
                    CREATE VIEW card_risk AS
                        SELECT card_id, transactions, amount_micros / 1e6 AS amount, alerts, declines, max_probability,
                            strftime('%Y-%m-%dT%H:%M:%SZ', last_event_time / 1000000, 'unixepoch') AS last_seen, last_risk_tier
                        FROM gold_card_profiles;
                    """)
        }
    }
}
