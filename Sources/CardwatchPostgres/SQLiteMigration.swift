public import CardwatchPipeline
public import CardwatchStorage
import Foundation
import PostgresNIO

/// `cardwatch warehouse migrate-from-sqlite`: an embedded data directory's warehouse,
/// registry, sink offsets and checkpoints copied into an empty PostgreSQL database, in one
/// transaction (silver's day partitions excepted, created first), so that `run` or `import`
/// with `--warehouse` on that data directory goes on where the embedded pipeline stopped:
/// same decisions, same offsets, the same model in production.
public enum SQLiteMigration {
    /// Rows per statement.
    static let chunk = 5_000

    /// Copies `export` into `pool`'s database under `stream` (the consumer group the data
    /// directory's log decides under there) with `checkpoints`; the rows copied per table.
    public static func run(
        _ export: WarehouseExport, into pool: PostgresPool, stream: String, checkpoints: [PartitionCheckpoint]
    ) throws -> [(table: String, rows: Int)] {
        let sink = try PostgresWarehouseSink(pool: pool)
        let used = try pool.withSession("checking that the target is empty") { s in
            try s.query(
                """
                SELECT (SELECT COUNT(*) FROM sink_offsets) + (SELECT COUNT(*) FROM silver_transactions)
                    + (SELECT COUNT(*) FROM models) + (SELECT COUNT(*) FROM alerts)
                """, PostgresBindings()
            ).rows.first!.decode(Int64.self)
        }
        guard used == 0 else {
            throw PostgresStoreError(
                .storage, "the warehouse at \(pool.endpoint) already holds decisions or models: migrate into an empty database")
        }
        let tables = try export.tables(stream: stream)
        // Silver's days first, each partition in a transaction of its own.
        if let silver = tables.first(where: { $0.name == "silver_transactions" }),
            let at = silver.columns.firstIndex(of: "event_time")
        {
            try export.rows(silver, chunk: 50_000) { rows in try sink.createDays(rows.compactMap { $0[at].flatMap(Int64.init) }) }
        }
        var copied: [(table: String, rows: Int)] = []
        try pool.transaction("copying the embedded warehouse into \(pool.endpoint)") { s in
            for table in tables {
                let types = try columnTypes(s, table.name)
                let casts = try table.columns.enumerated().map { i, column -> String in
                    guard let type = types[column] else {
                        throw PostgresStoreError(.storage, "\(table.name) in PostgreSQL has no column \(column)")
                    }
                    return "c\(i)::\(type)"
                }
                let sql = """
                    INSERT INTO \(table.name) (\(table.columns.map { "\"\($0)\"" }.joined(separator: ", ")))
                    SELECT \(casts.joined(separator: ", "))
                    FROM unnest(\((1...table.columns.count).map { "$\($0)::text[]" }.joined(separator: ", ")))
                        AS u(\((0..<table.columns.count).map { "c\($0)" }.joined(separator: ", ")))
                    """
                var n = 0
                try export.rows(table, chunk: chunk) { rows in
                    var b = PostgresBindings(capacity: table.columns.count)
                    for c in 0..<table.columns.count { b.append(NullableTextArray(values: rows.map { $0[c] })) }
                    try s.query(sql, b)
                    n += rows.count
                }
                copied.append((table.name, n))
            }
            // Numbering goes on after the copied rows.
            try s.execute(
                """
                SELECT setval('commit_sequence', GREATEST(1, (SELECT MAX(a) FROM (
                    SELECT MAX(arrival) AS a FROM silver_transactions UNION ALL SELECT MAX(arrival) FROM alerts
                    UNION ALL SELECT MAX(arrival) FROM labels) m)),
                    (SELECT COUNT(*) FROM silver_transactions) > 0)
                """)
            for (table, column) in [
                ("models", "version"), ("promotions", "id"), ("feedback", "id"), ("duplicates", "id"),
                ("system_alerts", "id"), ("dead_letters", "id"),
            ] {
                try s.execute(
                    """
                    SELECT setval(pg_get_serial_sequence('\(table)', '\(column)'), COALESCE(MAX(\(column)), 1),
                        MAX(\(column)) IS NOT NULL) FROM \(table)
                    """)
            }
        }
        let store = try PostgresCheckpointStore(pool: pool)
        for checkpoint in checkpoints { try store.save(checkpoint, group: stream) }
        copied.append(("partition_checkpoints", checkpoints.count))
        return copied
    }

    /// Each column's type, as a cast names it.
    static func columnTypes(_ s: PostgresSession, _ table: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for row in try s.query(
            """
            SELECT column_name::text, udt_name::text FROM information_schema.columns
            WHERE table_name = $1 AND table_schema = current_schema()
            """, bindings(table)
        ).rows {
            let (name, type) = try row.decode((String, String).self)
            out[name] = type
        }
        return out
    }
}
