import CardwatchFeatures
public import CardwatchModel
public import CardwatchPipeline
import Foundation
import GRDB
import GRDBSQLite

/// Health reports, system alerts and training rows, from the same database as the log and
/// the warehouse.
extension SQLiteEventLog {
    static func registerMonitoring(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3: health reports and system alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE health_reports (checked_at INTEGER PRIMARY KEY, healthy INTEGER NOT NULL, report TEXT NOT NULL);
                    CREATE TABLE system_alerts (
                        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, message TEXT NOT NULL, raised_at INTEGER NOT NULL
                    );
                    CREATE INDEX records_by_time ON records (topic, appended_at);
                    """)
        }
    }

    /// v5: the index by time covers the dead letters alone, the only records a query reads by
    /// time (`deadLetterCounts`; the topic stays its first column, so the planner searches it).
    /// Over every record, each commit of the HTTP API's wrote its end pages too: 26.9 pages a
    /// commit of 13 transactions with it, 24.4 without (`cardwatch bench decisions`).
    static func registerDeadLetterIndex(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5: dead letters indexed by time alone") { db in
            try db.execute(
                sql: """
                    DROP INDEX records_by_time;
                    CREATE INDEX dead_letters_by_time ON records (topic, appended_at) WHERE topic = 'transactions.dlq';
                    """)
        }
    }

    /// Pages the writer connection has written since the store opened (each a WAL frame), by
    /// SQLite's own count: what a commit costs the store is mostly its pages.
    public func pagesWritten() throws -> Int {
        try Self.perform("counting the pages written") {
            try pool.writeWithoutTransaction { db in
                var current: Int32 = 0
                var highwater: Int32 = 0
                sqlite3_db_status(db.sqliteConnection, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater, 0)
                return Int(current)
            }
        }
    }

    /// How often the writer connection's cached statement `sql` has run, and how often SQLite
    /// had to prepare it again before a run (a schema change, or a binding the plan depends on).
    func statementRuns(_ sql: String) throws -> (runs: Int, reprepares: Int) {
        try Self.perform("reading the status of a statement") {
            try pool.writeWithoutTransaction { db in
                let statement = try db.cachedStatement(sql: sql).sqliteStatement
                return (
                    Int(sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_RUN, 0)),
                    Int(sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0))
                )
            }
        }
    }

}

/// The registry as the retraining job's catalog.
extension ModelRegistry: ModelCatalog {
    public func register(_ artifact: ModelArtifact) throws -> Int { try register(artifact, stage: .none) }

    public func productionModel() throws -> (version: Int, artifact: ModelArtifact)? {
        guard let record = try production() else { return nil }
        return (record.version, try artifact(version: record.version, expectedFeatures: Feature.names))
    }

    public func promote(version: Int, productionAP: Double?) throws -> (promoted: Bool, reason: String) {
        let decision = try promote(version: version, rule: PromotionRule(), productionAP: productionAP)
        return (decision.promoted, decision.reason)
    }

    public func promoteForced(version: Int) throws -> (promoted: Bool, reason: String) {
        let decision = try promote(version: version, rule: PromotionRule(), force: true)
        return (decision.promoted, decision.reason)
    }
}

extension SQLiteEventLog: AlertCounting {
    /// Alerts in the warehouse.
    public func alertCount() throws -> Int {
        try Self.perform("counting alerts") { try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alerts")! } }
    }
}

extension ModelRegistry: ModelDirectory {
    public func models() throws -> [ModelSummary] {
        try list().map {
            ModelSummary(
                version: $0.version, kind: $0.kind.rawValue, stage: $0.stage.rawValue, createdAt: $0.createdAt,
                rocAUC: $0.rocAUC, averagePrecision: $0.averagePrecision, trainingWindow: $0.trainingWindow,
                testWindow: $0.testWindow)
        }
    }

    public func artifact(of version: Int) throws -> ModelArtifact {
        try artifact(version: version, expectedFeatures: Feature.names, expectedSchemaVersion: Feature.schemaVersion)
    }

    public func productionVersion() throws -> Int? { try productionVersionOnly() }
}

/// Health reports, system alerts and training rows: the health check's and retraining's store,
/// a type of its own over the log's file.
public final class SQLiteMonitoring: MonitoringStore, TrainingStore {
    let log: SQLiteEventLog
    var pool: DatabasePool { log.pool }

    init(log: SQLiteEventLog) { self.log = log }

    public func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) {
        try SQLiteEventLog.perform("counting dead letters") {
            try pool.read { db in
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT COUNT(*), COALESCE(SUM(appended_at >= ?), 0) FROM records WHERE topic = 'transactions.dlq'
                        """, arguments: [since])!
                return (row[0], row[1])
            }
        }
    }

    public func baseline() throws -> (transactions: Int, alerts: Int) {
        try SQLiteEventLog.perform("reading the 7-day baseline") {
            try pool.read { db in
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT COALESCE(SUM(transactions), 0), COALESCE(SUM(alerts), 0) FROM gold_hourly
                        WHERE hour >= (SELECT MAX(hour) FROM gold_hourly) - 7 * 86400000000
                        """)!
                return (row[0], row[1])
            }
        }
    }

    public func processorLag() throws -> Int64 { try log.processorLag() }

    public func record(_ report: HealthReport) throws {
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        try SQLiteEventLog.perform("recording a health report") {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO health_reports (checked_at, healthy, report) VALUES (?, ?, ?)",
                    arguments: [report.checkedAt, report.healthy, json])
            }
        }
    }

    public func record(_ alert: SystemAlert) throws {
        try SQLiteEventLog.perform("recording a system alert") {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT INTO system_alerts (kind, message, raised_at) VALUES (?, ?, ?)",
                    arguments: [alert.kind.rawValue, alert.message, alert.raisedAt])
            }
        }
    }

    public func latestHealth() throws -> HealthReport? {
        let json = try SQLiteEventLog.perform("reading the latest health report") {
            try pool.read { db in
                try String.fetchOne(db, sql: "SELECT report FROM health_reports ORDER BY checked_at DESC LIMIT 1")
            }
        }
        return try json.map { try JSONDecoder().decode(HealthReport.self, from: Data($0.utf8)) }
    }

    public func systemAlerts(limit: Int) throws -> [SystemAlert] {
        try SQLiteEventLog.perform("reading system alerts") {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT kind, message, raised_at FROM system_alerts ORDER BY id DESC LIMIT ?", arguments: [limit]
                ).compactMap { row in
                    SystemAlert.Kind(stored: row[0]).map { SystemAlert(kind: $0, message: row[1], raisedAt: row[2]) }
                }
            }
        }
    }

    public func featureColumns() throws -> [String] {
        try SQLiteEventLog.perform("reading the silver table's columns") {
            try pool.read { db in
                let known = Set(Feature.names)
                return try db.columns(in: "silver_transactions").map(\.name).filter { known.contains($0) }
            }
        }
    }

    /// How many of the latest decided transactions the watermark is taken from.
    static let watermarkSample = 1_001

    /// Where "now" is in event time for the training window: the 90th percentile of the event
    /// times of the latest `watermarkSample` transactions decided (in commit order). Not the
    /// wall clock: the live generator's simulated clock runs ahead of it, an import of history
    /// lies behind it. Not `MAX(event_time)`: one record dated 9999-12-31 would move the window
    /// past all the data. The percentile stands until a tenth of the latest arrivals are
    /// dated wrong, and lags the newest of them by a tenth of their span. Nil: no rows.
    static func eventTimeWatermark(_ db: Database) throws -> Int64? {
        try Int64.fetchOne(
            db,
            sql: """
                WITH latest AS (
                    SELECT event_time FROM silver_transactions ORDER BY arrival DESC, "partition" DESC, "offset" DESC LIMIT ?
                )
                SELECT event_time FROM latest ORDER BY event_time LIMIT 1 OFFSET (SELECT COUNT(*) * 9 / 10 FROM latest)
                """, arguments: [watermarkSample])
    }

    /// Labelled silver rows whose event time lies within `days` days of the event-time
    /// watermark (`eventTimeWatermark`): before it, the window; after it, the newest arrivals
    /// but not a date far ahead of all the data.
    public func trainingRows(days: Double) throws -> TimedDataset {
        let columns = Feature.names.map { "\"\($0)\"" }.joined(separator: ", ")
        return try SQLiteEventLog.perform("reading training rows") {
            try pool.read { db in
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT event_time, card_id, transaction_id, fraud_pattern, COALESCE(label, is_fraud), \(columns)
                        FROM silver_transactions
                        WHERE COALESCE(label, is_fraud) IS NOT NULL AND event_time BETWEEN ?1 - ?2 AND ?1 + ?2
                        ORDER BY event_time, arrival, "partition", "offset"
                        """, arguments: [try Self.eventTimeWatermark(db) ?? 0, Int64(days * 86_400e6)])
                var out = TimedDataset(columns: Feature.count)
                var values = [Double](repeating: .nan, count: Feature.count)
                while let row = try rows.next() {
                    for i in 0..<Feature.count { values[i] = (row[5 + i] as Double?) ?? .nan }
                    out.append(
                        values, label: (row[4] as Int) == 1, time: row[0], card: row[1], transactionID: row[2],
                        pattern: row[3])
                }
                return out
            }
        }
    }
}

extension SQLiteEventLog {
    /// The health check's and retraining's store over this log's file.
    public var monitoring: SQLiteMonitoring { SQLiteMonitoring(log: self) }

    /// Transactions waiting for the runtime (its consumer group's lag), over all partitions.
    public func processorLag() throws -> Int64 {
        var lag: Int64 = 0
        for p in 0..<partitions {
            lag +=
                try endOffset(.transactions, partition: p)
                - (committedOffset(group: PartitionRuntime.defaultGroup, topic: .transactions, partition: p) ?? 0)
        }
        return lag
    }
}
