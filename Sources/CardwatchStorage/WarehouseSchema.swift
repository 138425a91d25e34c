import CardwatchFeatures
import CardwatchPipeline
import Foundation
import GRDB

/// The warehouse lives in the log's database file so that a processor batch commits its
/// rows and its input offsets in one SQLite transaction (WAL mode makes a transaction
/// atomic only within one file). Bronze is the `transactions` log itself (a view); silver
/// is one row per decided transaction (the prediction log); gold is kept up to date by
/// every batch. Plain views expose them to any SQLite tool.
enum WarehouseSchema {
    /// The features, `amount` among them (the transaction's amount), one column each.
    static let featureColumns = Feature.names.map { "\"\($0)\" REAL" }.joined(separator: ",\n    ")

    /// The silver table's columns after its `transaction_id` (whose key changed in v4).
    static let silverColumns = """
        card_id TEXT NOT NULL, merchant_id TEXT NOT NULL, merchant_category TEXT, currency TEXT NOT NULL,
        country TEXT, channel TEXT, event_time INTEGER NOT NULL, "timestamp" TEXT NOT NULL, \(featureColumns),
        fraud_probability REAL NOT NULL, risk_tier TEXT NOT NULL, action TEXT NOT NULL, model_version INTEGER NOT NULL,
        rule_hits TEXT, latency_us INTEGER NOT NULL, is_fraud INTEGER, fraud_pattern TEXT, label INTEGER,
        arrival INTEGER NOT NULL, "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL
        """

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
                        \(silverColumns)
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

    /// The silver table as of v4: keyed by arrival, the order the processor decides in, so a
    /// batch appends to the end of one B-tree instead of writing a page per partition or,
    /// keyed by transaction id, a random page per transaction (with 4 KiB pages, what a
    /// small commit wrote was mostly such pages). Lookups by transaction id go through
    /// `seen_transactions`, which holds each id's arrival, partition and offset.
    static let silverV4 = """
        CREATE TABLE silver_transactions (
            transaction_id TEXT NOT NULL,
            \(silverColumns),
            PRIMARY KEY (arrival, "partition", "offset")
        ) WITHOUT ROWID
        """

    /// Registered after v3 (monitoring).
    static func registerV4(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4: silver in arrival order, card profiles folded in behind") { db in
            try db.execute(
                sql: """
                    ALTER TABLE seen_transactions ADD COLUMN arrival INTEGER;
                    ALTER TABLE seen_transactions ADD COLUMN "partition" INTEGER;
                    ALTER TABLE seen_transactions ADD COLUMN "offset" INTEGER;
                    CREATE TEMPORARY TABLE record_arrivals (
                        "partition" INTEGER NOT NULL, "offset" INTEGER NOT NULL, arrival INTEGER NOT NULL,
                        PRIMARY KEY ("partition", "offset")
                    ) WITHOUT ROWID;
                    """)
            // Each record's arrival, as the processor finds it: the arrivals in order, a record of
            // its partition per entry, offsets counted up from 0.
            var next: [Int: Int64] = [:]
            let place = try db.makeStatement(sql: "INSERT INTO record_arrivals VALUES (?, ?, ?)")
            let arrivals = try Row.fetchCursor(db, sql: "SELECT id, entries FROM arrivals ORDER BY id")
            while let row = try arrivals.next() {
                let id: Int64 = row[0]
                let blob: Data = row[1]
                for i in stride(from: 0, to: blob.count - 1, by: 2) {
                    let e = UInt16(blob[blob.startIndex + i]) | UInt16(blob[blob.startIndex + i + 1]) << 8
                    guard e & 0x8000 == 0 else { continue }  // a label (the arrival order's label bit)
                    let partition = Int(e)
                    try place.execute(arguments: [partition, next[partition, default: 0], id])
                    next[partition, default: 0] += 1
                }
            }
            try db.execute(
                sql: """
                    UPDATE seen_transactions SET arrival = r.arrival, "partition" = r."partition", "offset" = r."offset"
                        FROM (SELECT a.arrival, a."partition", a."offset",
                                  json_extract(CAST(records.payload AS TEXT), '$.transaction_id') AS id
                              FROM records JOIN record_arrivals a USING ("partition", "offset")
                              WHERE records.topic = 'transactions') AS r
                        WHERE r.id = seen_transactions.transaction_id;
                    DROP TABLE record_arrivals;
                    ALTER TABLE silver_transactions RENAME TO silver_v2;
                    """)
            try db.execute(sql: silverV4)
            let columns = try db.columns(in: "silver_v2").map { "\"\($0.name)\"" }.joined(separator: ", ")
            try db.execute(
                sql: """
                    INSERT INTO silver_transactions (\(columns)) SELECT \(columns) FROM silver_v2;
                    DROP TABLE silver_v2;
                    -- Per shard of the cards, the last arrival whose silver rows are folded into
                    -- gold_card_profiles (the store folds them in behind, see CardProfiles): here, all of them.
                    CREATE TABLE gold_card_positions (shard INTEGER PRIMARY KEY, arrival INTEGER NOT NULL);
                    """)
            // Arrivals are numbered by the appends themselves (never deleted, so no gaps): without
            // AUTOINCREMENT, whose counter was one more page in every commit.
            try db.execute(
                sql: """
                    CREATE TABLE arrivals_v4 (id INTEGER PRIMARY KEY, entries BLOB NOT NULL);
                    INSERT INTO arrivals_v4 SELECT id, entries FROM arrivals;
                    DROP TABLE arrivals;
                    ALTER TABLE arrivals_v4 RENAME TO arrivals;
                    """)
            let position = try Int64.fetchOne(db, sql: "SELECT arrival FROM processor_position") ?? 0
            for shard in 0..<CardProfiles.shards {
                try db.execute(sql: "INSERT INTO gold_card_positions VALUES (?, ?)", arguments: [shard, position])
            }
        }
    }
}
