import CardwatchModel
public import CardwatchStorage
import Foundation
import PostgresNIO

/// The model registry in a PostgreSQL database (tables `models` and `promotions`, views
/// `model_summary` and `promotion_history`, as in SQLite), shared by every instance.
///
/// Writers are serialized by an advisory lock taken in each write transaction (two
/// promotions at once cannot both archive the same production model), and a write that
/// changes a stage sends `NOTIFY cardwatch_models` with the new production version on
/// commit: `PostgresModelNotifications` wakes each running instance's model follower.
public final class PostgresRegistryStore: RegistryStore {
    public let pool: PostgresPool
    public var location: String { pool.endpoint.description }
    /// The channel promotions are announced on.
    public static let channel = "cardwatch_models"
    static let writeLock = PostgresSchema.migrationLock + 2

    /// Opens the registry on `pool`, migrating the schema first.
    public init(pool: PostgresPool) throws {
        self.pool = pool
        try PostgresSchema.migrate(pool)
    }

    public func read<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        try pool.transaction("reading the model registry") { try body(Transaction(s: $0)) }
    }

    public func write<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        try pool.transaction("writing the model registry") { s in
            try s.query("SELECT pg_advisory_xact_lock($1)", bindings(Self.writeLock))
            let result = try body(Transaction(s: s))
            // Delivered at commit, to every listening instance (none if this rolls back).
            let production = try Transaction(s: s).productionVersion()
            try s.query("SELECT pg_notify($1, $2)", bindings(Self.channel, production.map(String.init) ?? ""))
            return result
        }
    }

    struct Transaction: RegistryTransaction {
        let s: PostgresSession
        static let recordColumns = """
            version, created_at, kind, stage, train_from, train_to, test_from, test_to, roc_auc, average_precision,
            metrics_json
            """

        func records(_ sql: String, _ b: PostgresBindings) throws -> [ModelRecord] {
            try s.query("SELECT \(Self.recordColumns) FROM models \(sql)", b).rows.map { row in
                let (version, created, kind, stage, trainFrom, trainTo, testFrom, testTo, auc, ap, metrics) =
                    try row.decode(
                        (Int64, String, String, String, String?, String?, String?, String?, Double?, Double?, String?)
                            .self)
                return try RegistrySchema.record(
                    version: Int(version), createdAt: created, kind: kind, stage: stage, train: (trainFrom, trainTo),
                    test: (testFrom, testTo), rocAUC: auc, averagePrecision: ap, metricsJSON: metrics)
            }
        }

        func fetchRecord(version: Int) throws -> ModelRecord? {
            try records("WHERE version = $1", bindings(Int64(version))).first
        }
        func fetchProduction() throws -> ModelRecord? {
            try records("WHERE stage = 'production'", PostgresBindings()).first
        }
        func fetchAll() throws -> [ModelRecord] { try records("ORDER BY version DESC", PostgresBindings()) }
        func fetchArtifactJSON(version: Int) throws -> String? {
            try s.query("SELECT artifact_json FROM models WHERE version = $1", bindings(Int64(version))).rows.first?
                .decode(String.self)
        }
        func fetchPromotions(version: Int?) throws -> [Promotion] {
            let columns = "id, version, from_stage, to_stage, at, reason"
            let rows =
                try version.map {
                    try s.query("SELECT \(columns) FROM promotions WHERE version = $1 ORDER BY id", bindings(Int64($0)))
                } ?? s.query("SELECT \(columns) FROM promotions ORDER BY id", PostgresBindings())
            return try rows.rows.map { row in
                let (id, version, from, to, at, reason) = try row.decode((Int64, Int64, String, String, String, String).self)
                return try RegistrySchema.promotion(
                    id: Int(id), version: Int(version), from: from, to: to, at: at, reason: reason)
            }
        }
        func productionVersion() throws -> Int? {
            try s.query("SELECT version FROM models WHERE stage = 'production'", PostgresBindings()).rows.first
                .map { Int(try $0.decode(Int64.self)) }
        }
        func insert(artifact: ModelArtifact, artifactJSON: String, at: String) throws -> Int {
            var b = bindings(at, artifact.kind.rawValue)
            b.append(artifact.trainingWindow?.from)
            b.append(artifact.trainingWindow?.to)
            b.append(artifact.testWindow?.from)
            b.append(artifact.testWindow?.to)
            b.append(artifact.metrics?.rocAUC)
            b.append(artifact.metrics?.averagePrecision)
            b.append(try RegistrySchema.metricsJSON(artifact))
            b.append(artifactJSON)
            let rows = try s.query(
                """
                INSERT INTO models (created_at, kind, stage, train_from, train_to, test_from, test_to, roc_auc,
                    average_precision, metrics_json, artifact_json)
                VALUES ($1, $2, 'none', $3, $4, $5, $6, $7, $8, $9, $10) RETURNING version
                """, b)
            return Int(try rows.rows.first!.decode(Int64.self))
        }
        func move(version: Int, from: ModelStage, to: ModelStage, at: String, reason: String) throws {
            if from != to {
                try s.query("UPDATE models SET stage = $1 WHERE version = $2", bindings(to.rawValue, Int64(version)))
            }
            try s.query(
                "INSERT INTO promotions (version, from_stage, to_stage, at, reason) VALUES ($1, $2, $3, $4, $5)",
                bindings(Int64(version), from.rawValue, to.rawValue, at, reason))
        }
    }
}
