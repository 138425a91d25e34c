public import CardwatchPipeline
import Foundation
import GRDB

/// Per-partition feature-state checkpoints in a SQLite file of their own: the latest per
/// group and partition, replaced in one transaction (a crash leaves the old one or the new
/// one). A checkpoint is megabytes, written every so many batches, off the log's file so
/// that it never holds the log's write lock.
public final class SQLiteCheckpointStore: CheckpointStore {
    let queue: DatabasePool
    public let path: String

    public init(path: String) throws(EventLogError) {
        self.path = path
        queue = try openRuntimeDatabase(
            path: path, label: "cardwatch.checkpoints", what: "checkpoint store", migrator: Self.migrator)
    }

    public func save(_ checkpoint: PartitionCheckpoint, group: String) throws {
        try SQLiteEventLog.perform("writing the checkpoint of partition \(checkpoint.partition) for group \(group)") {
            try queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO partition_checkpoints
                            ("group", "partition", transactions_offset, labels_offset, state) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT ("group", "partition") DO UPDATE SET
                            transactions_offset = excluded.transactions_offset,
                            labels_offset = excluded.labels_offset, state = excluded.state
                        """,
                    arguments: [
                        group, checkpoint.partition, checkpoint.offsets.transactions, checkpoint.offsets.labels,
                        Data(checkpoint.state),
                    ])
            }
        }
    }

    public func latest(group: String, partition: Int) throws -> PartitionCheckpoint? {
        try SQLiteEventLog.perform("reading the checkpoint of partition \(partition) for group \(group)") {
            try queue.read { db in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT transactions_offset, labels_offset, state FROM partition_checkpoints
                            WHERE "group" = ? AND "partition" = ?
                            """,
                        arguments: [group, partition])
                else { return nil }
                let state: Data = row[2]
                return PartitionCheckpoint(
                    partition: partition, offsets: PartitionOffsets(transactions: row[0], labels: row[1]),
                    state: [UInt8](state))
            }
        }
    }

    /// Migrations are append-only: a released migration is never edited.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: partition checkpoints") { db in
            try db.execute(
                sql: """
                    CREATE TABLE partition_checkpoints (
                        "group" TEXT NOT NULL,
                        "partition" INTEGER NOT NULL,
                        transactions_offset INTEGER NOT NULL,
                        labels_offset INTEGER NOT NULL,
                        state BLOB NOT NULL,
                        PRIMARY KEY ("group", "partition")
                    ) WITHOUT ROWID
                    """)
        }
        return migrator
    }
}
