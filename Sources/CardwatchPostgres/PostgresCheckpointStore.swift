public import CardwatchPipeline
import PostgresNIO

/// Per-partition checkpoints of the feature state in the shared database, so an instance
/// assigned a partition another one held restores it from there (the latest per group and
/// partition; one row each, replaced).
public final class PostgresCheckpointStore: CheckpointStore {
    public let pool: PostgresPool

    /// Opens the store on `pool`, migrating the schema first.
    public init(pool: PostgresPool) throws {
        self.pool = pool
        try PostgresSchema.migrate(pool)
    }

    public func save(_ checkpoint: PartitionCheckpoint, group: String) throws {
        try pool.withSession("saving group \(group)'s checkpoint of partition \(checkpoint.partition)") { s in
            var b = bindings(
                group, Int32(checkpoint.partition), checkpoint.offsets.transactions, checkpoint.offsets.labels)
            b.append(ByteBuffer(bytes: checkpoint.state))
            try s.query(
                """
                INSERT INTO partition_checkpoints ("group", "partition", transactions_offset, labels_offset, state)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT ("group", "partition") DO UPDATE SET transactions_offset = excluded.transactions_offset,
                    labels_offset = excluded.labels_offset, state = excluded.state, saved_at = now()
                """, b)
        }
    }

    public func latest(group: String, partition: Int) throws -> PartitionCheckpoint? {
        try pool.withSession("reading group \(group)'s checkpoint of partition \(partition)") { s in
            let rows = try s.query(
                """
                SELECT transactions_offset, labels_offset, state FROM partition_checkpoints
                WHERE "group" = $1 AND "partition" = $2
                """,
                bindings(group, Int32(partition)))
            return try rows.rows.first.map {
                let (t, l, state) = try $0.decode((Int64, Int64, ByteBuffer).self)
                return PartitionCheckpoint(
                    partition: partition, offsets: PartitionOffsets(transactions: t, labels: l),
                    state: Array(state.readableBytesView))
            }
        }
    }
}
