import ArgumentParser
import CardwatchPipeline
import CardwatchPostgres
import CardwatchStorage
import Foundation

/// `cardwatch warehouse …`: the warehouse's own chores.
struct Warehouse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work on the warehouse itself.", subcommands: [MigrateFromSQLite.self])

    struct MigrateFromSQLite: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate-from-sqlite",
            abstract: "Copy an embedded data directory's warehouse, registry and checkpoints into PostgreSQL.",
            discussion: """
                The target database must hold no decisions or models yet. Afterwards `cardwatch run` or `import` \
                with the same --data-dir and this --warehouse goes on where the embedded pipeline stopped: the \
                decisions, aggregates, labels, feedback, dead letters and duplicates are there, the model registry \
                (same versions, same production model), and the offsets and checkpoints the runtime resumes from. \
                The data directory's log stays where it is, and is locked while the copy runs.
                  cardwatch warehouse migrate-from-sqlite ./cardwatch-data --warehouse postgres://cw@db:5432/fraud
                """)
        @Argument(help: "The data directory to copy from.") var dataDir: String
        @Option(help: "The PostgreSQL database to copy into (postgres://USER@HOST:PORT/DB; password as for run).")
        var warehouse: String
        @Flag(help: "Print the summary as one JSON object.") var json = false

        func run() throws {
            guard PostgresEndpoint.isURL(warehouse) else {
                throw ValidationError("--warehouse \(warehouse): expected postgres://USER@HOST:PORT/DATABASE")
            }
            guard FileManager.default.fileExists(atPath: dataDir + "/" + SQLiteEventLog.fileName) else {
                throw ValidationError("\(dataDir) holds no embedded log and warehouse (\(SQLiteEventLog.fileName))")
            }
            let lock: DataDirectoryLock
            do { lock = try DataDirectoryLock(directory: dataDir, command: "cardwatch warehouse migrate-from-sqlite") } catch {
                throw CLIError("\(error)")
            }
            defer { withExtendedLifetime(lock) {} }
            let endpoint: PostgresEndpoint
            do { endpoint = try PostgresEndpoint.parse(warehouse) } catch { throw ValidationError("--warehouse: \(error)") }
            let began = monotonicSeconds()
            let copied: [(table: String, rows: Int)]
            do {
                let log = try SQLiteEventLog(directory: dataDir)
                let stream = "\(PartitionRuntime.defaultGroup)@\(try log.logID())"
                let checkpointStore = try SQLiteCheckpointStore(
                    path: URL(fileURLWithPath: dataDir).appendingPathComponent(EmbeddedRuntime.checkpointFile).path)
                let checkpoints = try (0..<log.partitions).compactMap {
                    try checkpointStore.latest(group: PartitionRuntime.defaultGroup, partition: $0)
                }
                let pool = PostgresPool(endpoint, size: 2)
                defer { pool.close() }
                copied = try SQLiteMigration.run(
                    WarehouseExport(log: log, directory: dataDir), into: pool, stream: stream, checkpoints: checkpoints)
            } catch { throw CLIError("migrating \(dataDir) into \(endpoint): \(error)") }
            let seconds = monotonicSeconds() - began
            if json {
                var object: [String: Any] = ["seconds": (seconds * 1000).rounded() / 1000, "warehouse": "\(endpoint)"]
                object["rows"] = Dictionary(copied.map { ($0.table, $0.rows) }, uniquingKeysWith: +)
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for (table, rows) in copied where rows > 0 { print("\(table): \(grouped(rows)) rows") }
                print("copied \(dataDir) into \(endpoint) in \(format1(seconds)) s")
            }
        }
    }
}
