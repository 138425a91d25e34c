import CardwatchPipeline
import GRDB

/// The decision sink's offsets and batch ends, shared by the sinks on SQLite (the runtime's
/// own file, and the embedded warehouse in the log's file): a batch is checked against the
/// stored offsets and moves them, in the caller's transaction.
enum SinkOffsetsTable {
    static let schema = """
        CREATE TABLE sink_offsets (
            "group" TEXT NOT NULL, "partition" INTEGER NOT NULL,
            transactions_offset INTEGER NOT NULL, labels_offset INTEGER NOT NULL,
            PRIMARY KEY ("group", "partition")
        ) WITHOUT ROWID;
        CREATE TABLE sink_batch_ends (
            "group" TEXT NOT NULL, "partition" INTEGER NOT NULL,
            transactions_offset INTEGER NOT NULL, labels_offset INTEGER NOT NULL,
            PRIMARY KEY ("group", "partition", transactions_offset, labels_offset)
        ) WITHOUT ROWID;
        """

    /// Refuses the whole batch unless every range starts at the stored offsets; then moves
    /// them and records where each partition's batch ended.
    static func advance(_ db: Database, _ batch: SinkBatch) throws {
        for range in batch.consumed {
            let stored = try offsets(db, group: batch.group, partition: range.partition) ?? .start
            guard stored == range.from else {
                throw DecisionSinkError(
                    .offsetConflict,
                    "group \(batch.group) partition \(range.partition) is at \(stored), the batch starts at \(range.from)")
            }
        }
        for range in batch.consumed where range.from != range.to {
            try db.cachedStatement(
                sql: """
                    INSERT INTO sink_offsets ("group", "partition", transactions_offset, labels_offset) VALUES (?, ?, ?, ?)
                    ON CONFLICT ("group", "partition") DO UPDATE SET
                        transactions_offset = excluded.transactions_offset, labels_offset = excluded.labels_offset
                    """
            ).execute(arguments: [batch.group, range.partition, range.to.transactions, range.to.labels])
            try db.cachedStatement(
                sql: """
                    INSERT INTO sink_batch_ends ("group", "partition", transactions_offset, labels_offset) VALUES (?, ?, ?, ?)
                    """
            ).execute(arguments: [batch.group, range.partition, range.to.transactions, range.to.labels])
        }
    }

    static func offsets(_ db: Database, group: String, partition: Int) throws -> PartitionOffsets? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: #"SELECT transactions_offset, labels_offset FROM sink_offsets WHERE "group" = ? AND "partition" = ?"#),
            arguments: [group, partition]
        ).map { PartitionOffsets(transactions: $0[0], labels: $0[1]) }
    }

    /// Both offsets only grow, so their order is the order of the commits.
    static func batchEnds(_ db: Database, group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT transactions_offset, labels_offset FROM sink_batch_ends
                WHERE "group" = ? AND "partition" = ? AND transactions_offset >= ? AND labels_offset >= ?
                    AND (transactions_offset > ? OR labels_offset > ?)
                ORDER BY transactions_offset, labels_offset
                """,
            arguments: [group, partition, after.transactions, after.labels, after.transactions, after.labels]
        ).map { PartitionOffsets(transactions: $0[0], labels: $0[1]) }
    }
}
