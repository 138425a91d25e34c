import CardwatchFeatures
import CardwatchStorage
import Foundation
import PostgresNIO

/// The warehouse's schema on PostgreSQL, as numbered migrations applied at start.
///
/// One instance migrates at a time: the migrator holds a session-level advisory lock while
/// it reads the version and applies what is missing, each migration in its own transaction
/// with its version row. A database whose version is newer than this build knows is refused
/// (an older binary must not write into tables it does not understand).
///
/// The silver columns come from the same definition as SQLite's (`Feature.names`, the
/// transaction's fields); the types are PostgreSQL's. Migrations are append-only: a released
/// one is never edited.
public enum PostgresSchema {
    /// The advisory lock key of the migrator ("cardwatch" in ASCII, folded into 63 bits).
    static let migrationLock: Int64 = 0x63_61_72_64_77_61_74

    struct Migration {
        var version: Int
        var name: String
        var sql: String
    }

    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// What labels and feedback add to the aggregates (as `ConfirmedOutcomes.columns`).
    static let outcomes = ["labelled", "confirmed_frauds", "fraud_amount_micros", "alerts_labelled", "alerts_confirmed"]
    static let outcomeColumns = outcomes.map { "\($0) BIGINT NOT NULL DEFAULT 0" }.joined(separator: ", ")

    static let featureColumns = Feature.names.map { "\"\($0)\" DOUBLE PRECISION" }.joined(separator: ",\n    ")

    static let migrations: [Migration] = [
        Migration(
            version: 1, name: "the warehouse and the runtime's sink",
            sql: """
                CREATE TABLE sink_offsets (
                    "group" TEXT NOT NULL, "partition" INTEGER NOT NULL,
                    transactions_offset BIGINT NOT NULL, labels_offset BIGINT NOT NULL,
                    PRIMARY KEY ("group", "partition")
                );
                CREATE TABLE sink_batch_ends (
                    "group" TEXT NOT NULL, "partition" INTEGER NOT NULL,
                    transactions_offset BIGINT NOT NULL, labels_offset BIGINT NOT NULL,
                    PRIMARY KEY ("group", "partition", transactions_offset, labels_offset)
                );
                -- Each commit's number: the silver and alert rows' arrival, in commit order.
                CREATE SEQUENCE commit_sequence;
                -- The prediction log, one partition per event day (created as the days come).
                -- stream: the consumer group that decided the row, which names its log (instances with
                -- logs of their own share one warehouse); partition and offset are its place there.
                CREATE TABLE silver_transactions (
                    stream TEXT NOT NULL, transaction_id TEXT NOT NULL, card_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
                    merchant_category TEXT, currency TEXT NOT NULL, country TEXT, channel TEXT,
                    event_time BIGINT NOT NULL, "timestamp" TEXT NOT NULL,
                    \(featureColumns),
                    fraud_probability DOUBLE PRECISION NOT NULL, risk_tier TEXT NOT NULL, action TEXT NOT NULL,
                    model_version INTEGER NOT NULL, rule_hits TEXT, latency_us BIGINT NOT NULL, is_fraud SMALLINT,
                    fraud_pattern TEXT, label SMALLINT, arrival BIGINT NOT NULL, "partition" INTEGER NOT NULL,
                    "offset" BIGINT NOT NULL, decided_at BIGINT NOT NULL,
                    PRIMARY KEY (stream, "partition", "offset", event_time)
                ) PARTITION BY RANGE (event_time);
                -- Found by place (the key, through first_decisions for an id) and, for the training
                -- window's watermark, by commit order: arrival only grows, so a BRIN index (a few
                -- pages) serves. Nothing else is indexed: each index is paid at every insert.
                CREATE INDEX silver_by_arrival ON silver_transactions USING brin (arrival);
                -- The idempotency index: each transaction id's first decision.
                CREATE TABLE first_decisions (
                    transaction_id TEXT PRIMARY KEY, stream TEXT NOT NULL, "partition" INTEGER NOT NULL,
                    "offset" BIGINT NOT NULL,
                    fraud_probability DOUBLE PRECISION NOT NULL, risk_tier TEXT NOT NULL, action TEXT NOT NULL,
                    model_version INTEGER NOT NULL
                );
                CREATE TABLE alerts (
                    transaction_id TEXT PRIMARY KEY, card_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
                    amount DOUBLE PRECISION NOT NULL, event_time BIGINT NOT NULL, "timestamp" TEXT NOT NULL,
                    fraud_probability DOUBLE PRECISION NOT NULL, risk_tier TEXT NOT NULL, action TEXT NOT NULL,
                    model_version INTEGER NOT NULL, reasons JSONB NOT NULL, fraud_pattern TEXT, arrival BIGINT NOT NULL,
                    decided_at BIGINT NOT NULL, feedback TEXT, feedback_at BIGINT
                );
                CREATE INDEX alerts_by_decision_time ON alerts (decided_at);
                CREATE INDEX alerts_by_card ON alerts (card_id, event_time);
                CREATE INDEX alerts_by_arrival ON alerts (arrival);
                CREATE TABLE labels (
                    transaction_id TEXT NOT NULL, is_fraud SMALLINT NOT NULL, reported_at BIGINT NOT NULL,
                    matched SMALLINT NOT NULL, arrival BIGINT NOT NULL, stream TEXT NOT NULL, "partition" INTEGER,
                    "offset" BIGINT
                );
                CREATE INDEX labels_by_transaction ON labels (transaction_id);
                -- Records whose transaction id had a decision already (answered with that first one).
                CREATE TABLE duplicates (
                    id BIGSERIAL PRIMARY KEY, transaction_id TEXT NOT NULL, source TEXT NOT NULL, line BIGINT,
                    detected_at BIGINT NOT NULL, record TEXT NOT NULL
                );
                -- Records of the log that do not decode, with every reason.
                CREATE TABLE dead_letters (
                    id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, line BIGINT, reasons JSONB NOT NULL, raw TEXT,
                    raw_base64 TEXT, recorded_at BIGINT NOT NULL
                );
                -- The gold aggregates. labelled … alerts_confirmed: what is known afterwards (labels,
                -- feedback), moved by each label as in SQLite's warehouse (ConfirmedOutcomes).
                CREATE TABLE gold_hourly (
                    hour BIGINT PRIMARY KEY, transactions BIGINT NOT NULL, amount_micros BIGINT NOT NULL,
                    alerts BIGINT NOT NULL, reviews BIGINT NOT NULL, declines BIGINT NOT NULL,
                    probability_nanos BIGINT NOT NULL, latency_sum_us BIGINT NOT NULL, latency_max_us BIGINT NOT NULL,
                    \(outcomeColumns)
                );
                CREATE TABLE gold_minutes (
                    minute BIGINT PRIMARY KEY, transactions BIGINT NOT NULL, alerts BIGINT NOT NULL,
                    reviews BIGINT NOT NULL, declines BIGINT NOT NULL, probability_nanos BIGINT NOT NULL,
                    latency_sum_us BIGINT NOT NULL, latency_max_us BIGINT NOT NULL,
                    \(outcomeColumns)
                );
                CREATE TABLE gold_card_profiles (
                    card_id TEXT PRIMARY KEY, transactions BIGINT NOT NULL, amount_micros BIGINT NOT NULL,
                    alerts BIGINT NOT NULL, declines BIGINT NOT NULL, max_probability DOUBLE PRECISION NOT NULL,
                    last_event_time BIGINT NOT NULL, last_risk_tier TEXT NOT NULL
                );
                CREATE TABLE gold_card_labels (card_id TEXT PRIMARY KEY, \(outcomeColumns));
                -- Every analyst verdict, with who gave it and why (the label itself goes to the labels log).
                CREATE TABLE feedback (
                    id BIGSERIAL PRIMARY KEY, transaction_id TEXT NOT NULL, label TEXT NOT NULL, analyst TEXT, note TEXT,
                    recorded_at BIGINT NOT NULL
                );
                CREATE INDEX feedback_by_transaction ON feedback (transaction_id, id);
                CREATE TABLE health_reports (checked_at BIGINT PRIMARY KEY, healthy BOOLEAN NOT NULL, report JSONB NOT NULL);
                CREATE TABLE system_alerts (
                    id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, message TEXT NOT NULL, raised_at BIGINT NOT NULL
                );
                -- Each partition's feature state, as of its offsets (the latest per group and partition).
                CREATE TABLE partition_checkpoints (
                    "group" TEXT NOT NULL, "partition" INTEGER NOT NULL, transactions_offset BIGINT NOT NULL,
                    labels_offset BIGINT NOT NULL, state BYTEA NOT NULL, saved_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY ("group", "partition")
                );
                CREATE VIEW hourly_metrics AS
                    SELECT to_char(to_timestamp(hour / 1e6) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"') AS hour,
                        transactions, amount_micros / 1e6 AS amount, alerts, reviews, declines,
                        alerts::float8 / transactions AS alert_rate,
                        probability_nanos / 1e9 / transactions AS mean_probability,
                        latency_sum_us::float8 / transactions AS mean_latency_us, latency_max_us,
                        labelled, confirmed_frauds, confirmed_frauds::float8 / transactions AS confirmed_fraud_rate,
                        fraud_amount_micros / 1e6 AS fraud_amount, alerts_labelled, alerts_confirmed,
                        CASE WHEN alerts_labelled > 0 THEN alerts_confirmed::float8 / alerts_labelled END AS alert_precision
                    FROM gold_hourly ORDER BY 1;
                CREATE VIEW card_risk AS
                    SELECT p.card_id, p.transactions, p.amount_micros / 1e6 AS amount, p.alerts, p.declines,
                        p.max_probability,
                        to_char(to_timestamp(p.last_event_time / 1e6) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                            AS last_seen, p.last_risk_tier, p.alerts::float8 / p.transactions AS alert_rate,
                        COALESCE(l.labelled, 0) AS labelled, COALESCE(l.confirmed_frauds, 0) AS confirmed_frauds,
                        COALESCE(l.confirmed_frauds, 0)::float8 / p.transactions AS confirmed_fraud_rate,
                        COALESCE(l.fraud_amount_micros, 0) / 1e6 AS fraud_amount,
                        COALESCE(l.alerts_labelled, 0) AS alerts_labelled, COALESCE(l.alerts_confirmed, 0) AS alerts_confirmed,
                        CASE WHEN l.alerts_labelled > 0 THEN l.alerts_confirmed::float8 / l.alerts_labelled END
                            AS alert_precision
                    FROM gold_card_profiles p LEFT JOIN gold_card_labels l USING (card_id);
                -- The bronze layer's rejects, as SQLite's view has them.
                CREATE VIEW dead_letter_reasons AS
                    SELECT d.id, d.source, d.line, r ->> 'field' AS field, r ->> 'problem' AS problem, d.recorded_at
                    FROM dead_letters d, jsonb_array_elements(d.reasons) AS r;
                """),
        Migration(
            version: 2, name: "the model registry",
            sql: """
                CREATE TABLE models (
                    version BIGSERIAL PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL,
                    stage TEXT NOT NULL DEFAULT 'none' CHECK (stage IN \(RegistrySchema.stageCheck)),
                    train_from TEXT, train_to TEXT, test_from TEXT, test_to TEXT, roc_auc DOUBLE PRECISION,
                    average_precision DOUBLE PRECISION, metrics_json TEXT, artifact_json TEXT NOT NULL
                );
                -- At most one production model, enforced by the database itself.
                CREATE UNIQUE INDEX models_single_production ON models (stage) WHERE stage = 'production';
                CREATE TABLE promotions (
                    id BIGSERIAL PRIMARY KEY, version BIGINT NOT NULL REFERENCES models (version),
                    from_stage TEXT NOT NULL CHECK (from_stage IN \(RegistrySchema.stageCheck)),
                    to_stage TEXT NOT NULL CHECK (to_stage IN \(RegistrySchema.stageCheck)),
                    at TEXT NOT NULL, reason TEXT NOT NULL
                );
                CREATE INDEX promotions_by_version ON promotions (version, id);
                CREATE VIEW model_summary AS
                    SELECT version, created_at, kind, stage, train_from, train_to, test_from, test_to, roc_auc,
                        average_precision
                    FROM models;
                CREATE VIEW promotion_history AS
                    SELECT p.id, p.version, m.kind, p.from_stage, p.to_stage, p.at, p.reason
                    FROM promotions p JOIN models m ON m.version = p.version;
                """),
    ]

    /// Brings the database to `latestVersion`, under the migration lock; refuses a newer one.
    /// Returns the versions it applied.
    @discardableResult
    public static func migrate(_ pool: PostgresPool) throws -> [Int] {
        try pool.withSession("migrating the warehouse schema at \(pool.endpoint)") { s in
            try s.query("SELECT pg_advisory_lock($1)", bindings(migrationLock))
            defer { _ = try? s.query("SELECT pg_advisory_unlock($1)", bindings(migrationLock)) }
            try s.execute(
                """
                CREATE TABLE IF NOT EXISTS cardwatch_schema (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """)
            let current = try version(s)
            if current > latestVersion {
                throw PostgresStoreError(
                    .storage,
                    "the database \(pool.endpoint) has warehouse schema version \(current), newer than this build's "
                        + "\(latestVersion): run the cardwatch that migrated it, or a newer one")
            }
            var applied: [Int] = []
            for m in migrations where m.version > current {
                try s.execute("BEGIN")
                do {
                    // One statement at a time: the extended protocol takes no lists.
                    for statement in m.sql.components(separatedBy: ";\n") where !statement.allSatisfy(\.isWhitespace) {
                        try s.execute(statement)
                    }
                    try s.query(
                        "INSERT INTO cardwatch_schema (version, name) VALUES ($1, $2)", bindings(Int64(m.version), m.name))
                    try s.execute("COMMIT")
                } catch {
                    try? s.execute("ROLLBACK")
                    throw PostgresStoreError.from(error, "applying warehouse migration \(m.version) (\(m.name))")
                }
                applied.append(m.version)
            }
            return applied
        }
    }

    /// The database's schema version (0: none yet).
    public static func version(_ pool: PostgresPool) throws -> Int {
        try pool.withSession("reading the warehouse schema version") { s in
            let exists = try s.query("SELECT to_regclass('cardwatch_schema') IS NOT NULL", PostgresBindings())
            guard try exists.rows.first?.decode(Bool.self) == true else { return 0 }
            return try version(s)
        }
    }

    private static func version(_ s: PostgresSession) throws -> Int {
        let rows = try s.query("SELECT COALESCE(MAX(version), 0) FROM cardwatch_schema", PostgresBindings())
        return Int(try rows.rows.first?.decode(Int32.self) ?? 0)
    }
}

/// Bindings of `values`, in order.
func bindings(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
    var b = PostgresBindings(capacity: values.count)
    for v in values { b.append(v) }
    return b
}
