import CardwatchPipeline
import Foundation
import GRDB

/// Opens (creating it and its directory when needed) one of the partitioned runtime's SQLite
/// files in WAL mode and brings its schema up to date; `what` names it in the error.
func openRuntimeDatabase(
    path: String, label: String, what: String, migrator: DatabaseMigrator
) throws(EventLogError) -> DatabasePool {
    do {
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        var config = Configuration()
        config.label = label
        config.busyMode = .timeout(10)  // another runtime of the process may be writing
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        let pool = try DatabasePool(path: path, configuration: config)
        try migrator.migrate(pool)
        return pool
    } catch {
        throw EventLogError(.cannotOpen, "cannot open the \(what) at \(path): \(error)")
    }
}
