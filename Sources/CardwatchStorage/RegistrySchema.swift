package import CardwatchModel
import Foundation
import GRDB

// The registry's SQLite schema, its migrations, and the mapping between rows and
// the public record types. `ModelRegistry.swift` holds the API built on top of it.

package enum RegistrySchema {
    package static let stageCheck = "('none', 'staging', 'production', 'archived')"

    /// Migrations are append-only: a released migration is never edited, a change
    /// to the schema is a new migration registered after the others.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: models and promotions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE models (
                        version INTEGER PRIMARY KEY AUTOINCREMENT,
                        created_at TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        stage TEXT NOT NULL DEFAULT 'none' CHECK (stage IN \(stageCheck)),
                        train_from TEXT,
                        train_to TEXT,
                        test_from TEXT,
                        test_to TEXT,
                        roc_auc REAL,
                        average_precision REAL,
                        metrics_json TEXT,
                        artifact_json TEXT NOT NULL
                    );
                    -- At most one production model, enforced by the database itself.
                    CREATE UNIQUE INDEX models_single_production ON models(stage) WHERE stage = 'production';
                    CREATE TABLE promotions (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        version INTEGER NOT NULL REFERENCES models(version),
                        from_stage TEXT NOT NULL CHECK (from_stage IN \(stageCheck)),
                        to_stage TEXT NOT NULL CHECK (to_stage IN \(stageCheck)),
                        at TEXT NOT NULL,
                        reason TEXT NOT NULL
                    );
                    CREATE INDEX promotions_by_version ON promotions(version, id);
                    -- For people reading the file with the sqlite3 shell: everything but the JSON.
                    CREATE VIEW model_summary AS
                        SELECT version, created_at, kind, stage, train_from, train_to, test_from, test_to,
                               roc_auc, average_precision
                        FROM models;
                    CREATE VIEW promotion_history AS
                        SELECT p.id, p.version, m.kind, p.from_stage, p.to_stage, p.at, p.reason
                        FROM promotions p JOIN models m ON m.version = p.version;
                    """)
        }
        return migrator
    }

    /// Columns of `models` without the (possibly large) artifact JSON.
    static let recordColumns =
        "version, created_at, kind, stage, train_from, train_to, test_from, test_to, roc_auc, average_precision, metrics_json"

    // MARK: Reading

    static func fetchRecord(_ db: Database, version: Int) throws -> ModelRecord? {
        try Row.fetchOne(db, sql: "SELECT \(recordColumns) FROM models WHERE version = ?", arguments: [version])
            .map(record(from:))
    }

    static func fetchProduction(_ db: Database) throws -> ModelRecord? {
        try Row.fetchOne(db, sql: "SELECT \(recordColumns) FROM models WHERE stage = 'production'")
            .map(record(from:))
    }

    static func fetchAll(_ db: Database) throws -> [ModelRecord] {
        try Row.fetchAll(db, sql: "SELECT \(recordColumns) FROM models ORDER BY version DESC").map(record(from:))
    }

    static func fetchArtifactJSON(_ db: Database, version: Int) throws -> String? {
        try String.fetchOne(db, sql: "SELECT artifact_json FROM models WHERE version = ?", arguments: [version])
    }

    static func fetchPromotions(_ db: Database, version: Int?) throws -> [Promotion] {
        let rows: [Row]
        if let version {
            rows = try Row.fetchAll(
                db, sql: "SELECT * FROM promotions WHERE version = ? ORDER BY id", arguments: [version])
        } else {
            rows = try Row.fetchAll(db, sql: "SELECT * FROM promotions ORDER BY id")
        }
        return try rows.map { row in
            try promotion(
                id: row["id"], version: row["version"], from: row["from_stage"], to: row["to_stage"], at: row["at"],
                reason: row["reason"])
        }
    }

    static func record(from row: Row) throws -> ModelRecord {
        try record(
            version: row["version"], createdAt: row["created_at"], kind: row["kind"], stage: row["stage"],
            train: (row["train_from"], row["train_to"]), test: (row["test_from"], row["test_to"]), rocAUC: row["roc_auc"],
            averagePrecision: row["average_precision"], metricsJSON: row["metrics_json"])
    }

    /// A record from its stored columns, whatever the store (SQLite's rows, PostgreSQL's).
    package static func record(
        version: Int, createdAt: String, kind kindText: String, stage stageText: String, train: (String?, String?),
        test: (String?, String?), rocAUC: Double?, averagePrecision: Double?, metricsJSON: String?
    ) throws -> ModelRecord {
        guard let kind = ModelKind(rawValue: kindText) else {
            throw RegistryError.corruptRecord(version: version, reason: "unknown model kind '\(kindText)'")
        }
        var metrics: EvaluationMetrics?
        if let json = metricsJSON {
            do { metrics = try decoder.decode(EvaluationMetrics.self, from: Data(json.utf8)) } catch {
                throw RegistryError.corruptRecord(version: version, reason: "unreadable metrics: \(error)")
            }
        }
        return ModelRecord(
            version: version, createdAt: createdAt, kind: kind, stage: try stage(stageText, what: "model version \(version)"),
            trainingWindow: window(train.0, train.1), testWindow: window(test.0, test.1), rocAUC: rocAUC,
            averagePrecision: averagePrecision, metrics: metrics)
    }

    /// A promotion row from its stored columns.
    package static func promotion(
        id: Int, version: Int, from: String, to: String, at: String, reason: String
    ) throws -> Promotion {
        Promotion(
            id: id, version: version, fromStage: try stage(from, what: "promotion \(id)"),
            toStage: try stage(to, what: "promotion \(id)"), at: at, reason: reason)
    }

    /// The artifact's metrics as stored (`metrics_json`).
    package static func metricsJSON(_ artifact: ModelArtifact) throws -> String? {
        try artifact.metrics.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
    }

    private static func stage(_ text: String, what: String) throws -> ModelStage {
        guard let stage = ModelStage(rawValue: text) else {
            throw RegistryError.database("\(what) has an unknown stage '\(text)'")
        }
        return stage
    }

    private static func window(_ from: String?, _ to: String?) -> TimeWindow? {
        guard let from, let to else { return nil }
        return TimeWindow(from: from, to: to)
    }

    // MARK: Writing

    static func insert(_ db: Database, artifact: ModelArtifact, artifactJSON: String, at: String) throws -> Int {
        let metricsJSON = try metricsJSON(artifact)
        try db.execute(
            sql: """
                INSERT INTO models (created_at, kind, stage, train_from, train_to, test_from, test_to,
                                    roc_auc, average_precision, metrics_json, artifact_json)
                VALUES (?, ?, 'none', ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                at, artifact.kind.rawValue, artifact.trainingWindow?.from, artifact.trainingWindow?.to,
                artifact.testWindow?.from, artifact.testWindow?.to, artifact.metrics?.rocAUC,
                artifact.metrics?.averagePrecision, metricsJSON, artifactJSON,
            ])
        return Int(db.lastInsertedRowID)
    }

    /// Moves one model to `stage` and records the move. Callers keep the
    /// single-production invariant (see `ModelRegistry.makeProduction`).
    static func move(_ db: Database, version: Int, from: ModelStage, to: ModelStage, at: String, reason: String) throws {
        if from != to {
            try db.execute(sql: "UPDATE models SET stage = ? WHERE version = ?", arguments: [to.rawValue, version])
        }
        try db.execute(
            sql: "INSERT INTO promotions (version, from_stage, to_stage, at, reason) VALUES (?, ?, ?, ?, ?)",
            arguments: [version, from.rawValue, to.rawValue, at, reason])
    }

    // MARK: JSON and time

    // `metrics_json` uses EvaluationMetrics' own coding keys, with no key strategy: a
    // snake-case strategy does not round-trip names like `rocAUC` (→ `roc_auc` → `rocAuc`).
    // An undefined figure (the AUC of a test window without both classes, or of a model with
    // no labelled test rows) is NaN, written "nan" as in the artifact.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    /// Now, as RFC 3339 UTC with milliseconds.
    package static func timestamp() -> String {
        Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// The registry in one SQLite file inside a directory.
final class SQLiteRegistryStore: RegistryStore {
    let location: String
    private let pool: DatabasePool

    init(directory: String) throws(RegistryError) {
        location = URL(fileURLWithPath: directory).appendingPathComponent(ModelRegistry.fileName).path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var config = Configuration()
            config.label = "cardwatch.registry"
            config.busyMode = .timeout(10)  // another process (CLI, server) may be writing
            pool = try DatabasePool(path: location, configuration: config)  // a pool is always in WAL mode
            try RegistrySchema.migrator.migrate(pool)
        } catch {
            throw .cannotOpen(path: location, reason: "\(error)")
        }
    }

    func read<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        try pool.read { try body(Transaction(db: $0)) }
    }

    func write<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T {
        try pool.write { try body(Transaction(db: $0)) }
    }

    struct Transaction: RegistryTransaction {
        let db: Database
        func fetchRecord(version: Int) throws -> ModelRecord? { try RegistrySchema.fetchRecord(db, version: version) }
        func fetchProduction() throws -> ModelRecord? { try RegistrySchema.fetchProduction(db) }
        func fetchAll() throws -> [ModelRecord] { try RegistrySchema.fetchAll(db) }
        func fetchArtifactJSON(version: Int) throws -> String? { try RegistrySchema.fetchArtifactJSON(db, version: version) }
        func fetchPromotions(version: Int?) throws -> [Promotion] { try RegistrySchema.fetchPromotions(db, version: version) }
        func productionVersion() throws -> Int? {
            try Int.fetchOne(db, sql: "SELECT version FROM models WHERE stage = 'production'")
        }
        func insert(artifact: ModelArtifact, artifactJSON: String, at: String) throws -> Int {
            try RegistrySchema.insert(db, artifact: artifact, artifactJSON: artifactJSON, at: at)
        }
        func move(version: Int, from: ModelStage, to: ModelStage, at: String, reason: String) throws {
            try RegistrySchema.move(db, version: version, from: from, to: to, at: at, reason: reason)
        }
    }
}
