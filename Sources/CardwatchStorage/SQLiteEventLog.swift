import CardwatchCore
public import CardwatchPipeline
import Foundation
import GRDB

/// The embedded event log: every topic and the consumer groups' offsets in one SQLite
/// file (`log.sqlite`, WAL mode) inside the data directory. Safe to share between
/// threads and between processes; appends are serialized by SQLite's single writer.
///
/// `synchronous = NORMAL`: in WAL mode a committed transaction survives a crash of the
/// process (SIGKILL); only a power loss may drop the last transactions, never corrupt the file.
public final class SQLiteEventLog: EventLog {
    public static let fileName = "log.sqlite"
    /// The database file.
    public let path: String
    public let partitions: Int
    public let partitioner: KeyPartitioner
    let pool: DatabasePool
    private let checkpointer: WALCheckpointer
    /// The newest transactions this process appended, for reads right behind the appends.
    let tail: TailCache
    /// The card profiles not yet in `gold_card_profiles`.
    let cardProfiles: CardProfiles

    /// Partitions of a new log when none are asked for. In this store partitions buy no
    /// parallelism (one runtime holds them all, on one writer) and each one costs the end
    /// page of its B-trees in every small commit (BENCHMARKS.md, issue 6).
    public static let defaultPartitions = 1

    /// Opens (or creates) the log in `directory`: a new one with `partitions` (default
    /// `defaultPartitions`), an existing one with its own. Asking an existing log for another
    /// count is refused: the keys already written would no longer be found in their partitions.
    public convenience init(directory: String, partitions: Int? = nil) throws(EventLogError) {
        try self.init(directory: directory, partitions: partitions, cardFlush: CardProfiles.Schedule())
    }

    /// `cardFlush`: when card profiles are folded in (tests make it often).
    init(directory: String, partitions asked: Int?, cardFlush: CardProfiles.Schedule) throws(EventLogError) {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
        if let asked, asked <= 0 {
            throw EventLogError(.invalidArgument, "a log needs at least one partition, not \(asked)")
        }
        let pool: DatabasePool
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var config = Configuration()
            config.label = "cardwatch.log"
            config.busyMode = .timeout(10)  // another process (CLI, server) may be writing
            config.prepareDatabase { db in
                // Takes effect only when the file is created. A commit writes every page it
                // touched to the WAL whole, and each transaction touches a page of its own in the
                // tree of seen transaction ids: small commits (the HTTP API's, a handful of
                // transactions each) wrote 45 KB per transaction with 16 KiB pages.
                try db.execute(sql: "PRAGMA page_size = 4096")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                // Each connection keeps up to 64 MiB of pages: the B-trees the pipeline appends to
                // (log, seen ids, silver) stay in memory instead of being read back from the file.
                try db.execute(sql: "PRAGMA cache_size = -65536")
                // No checkpoint inside a commit: `WALCheckpointer` does them on its own thread.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            }
            pool = try DatabasePool(path: path, configuration: config)  // a pool is always in WAL mode
            try Self.migrator.migrate(pool)
        } catch {
            throw EventLogError(.cannotOpen, "cannot open the log at \(path): \(error)")
        }
        let (stored, partitioner) = try Self.perform("reading the partition count of \(path)") {
            try pool.write { db -> (Int, KeyPartitioner) in
                let name = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'partitioner'")
                if let stored = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'partitions'") {
                    // A log from before the partitioner was recorded hashed its keys with FNV-1a.
                    guard let name else {
                        try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('partitioner', 'fnv1a64')")
                        return (stored, .fnv1a64)
                    }
                    guard let known = KeyPartitioner(rawValue: name) else {
                        throw EventLogError(
                            .cannotOpen, "the log at \(path) partitions keys by '\(name)', which this version does not know")
                    }
                    return (stored, known)
                }
                let count = asked ?? Self.defaultPartitions
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('partitions', ?)", arguments: [count])
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('partitioner', 'murmur2')")
                return (count, .murmur2)
            }
        }
        if let asked, stored != asked {
            throw EventLogError(
                .partitionCountMismatch,
                "the log at \(path) has \(stored) partitions and cannot be opened with \(asked): "
                    + "keys would move to other partitions")
        }
        self.path = path
        self.pool = pool
        partitions = stored
        self.partitioner = partitioner
        tail = TailCache(partitions: stored)
        cardProfiles = CardProfiles(schedule: cardFlush)
        do {
            checkpointer = try WALCheckpointer(path: path, writer: pool)
        } catch {
            throw EventLogError(.cannotOpen, "cannot open the log at \(path): \(error)")
        }
    }

    deinit { checkpointer.stop() }

    // MARK: EventLog

    /// Appends the batch in one transaction; see `EventLog.append`.
    public func append(_ topic: Topic, _ records: [(key: String, payload: [UInt8])]) throws(EventLogError) -> [LogPosition] {
        guard !records.isEmpty else { return [] }
        return try Self.perform("appending \(records.count) records to \(topic.rawValue)") {
            try pool.write { db in try insert(db, topic, records) }
        }
    }

    public func read(_ topic: Topic, partition: Int, from offset: Int64, limit: Int) throws(EventLogError) -> [LogRecord] {
        try checkPartition(partition, of: topic)
        guard offset >= 0 else { throw EventLogError(.invalidArgument, "cannot read from negative offset \(offset)") }
        guard limit >= 0 else { throw EventLogError(.invalidArgument, "cannot read a negative number (\(limit)) of records") }
        guard limit > 0 else { return [] }
        if topic == .transactions, let cached = tail.read(partition: partition, from: offset, limit: limit) { return cached }
        return try Self.perform("reading \(topic.rawValue)[\(partition)] from offset \(offset)") {
            try pool.read { db in
                let rows = try Row.fetchCursor(
                    db.cachedStatement(sql: Self.readSQL[topic]!), arguments: [partition, offset, limit])
                var records: [LogRecord] = []
                records.reserveCapacity(min(limit, 10_000))
                while let row = try rows.next() {
                    let payload: Data = row[2]
                    records.append(
                        LogRecord(
                            topic: topic, partition: partition, offset: row[0], key: row[1], payload: [UInt8](payload),
                            appendedAt: row[3]))
                }
                return records
            }
        }
    }

    public func endOffset(_ topic: Topic, partition: Int) throws(EventLogError) -> Int64 {
        try checkPartition(partition, of: topic)
        return try Self.perform("reading the end of \(topic.rawValue)[\(partition)]") {
            try pool.read { db in try Self.endOffset(db, topic, partition) }
        }
    }

    public func committedOffset(group: String, topic: Topic, partition: Int) throws(EventLogError) -> Int64? {
        try checkPartition(partition, of: topic)
        return try Self.perform("reading the offset of group '\(group)' on \(topic.rawValue)[\(partition)]") {
            try pool.read { db in try Self.committedOffset(db, group, topic, partition) }
        }
    }

    public func commit(
        group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool
    ) throws(EventLogError) {
        try Self.perform("committing offset \(offset) of group '\(group)' on \(topic.rawValue)[\(partition)]") {
            try pool.write { db in
                try commit(db, group: group, topic: topic, partition: partition, offset: offset, allowBackwards: allowBackwards)
            }
        }
    }

    // MARK: Exactly-once

    /// Appends `records` to `topic` and commits `group`'s next offset on `consumed[partition]`
    /// in ONE transaction: either the outputs are written and the input is marked consumed,
    /// or neither. This is how a stage publishes what it made from its input and commits
    /// that input together, so a crash between the two cannot duplicate or lose outputs.
    /// The commit refuses to move backwards, as `commit` does.
    ///
    /// It belongs to this type, not to `EventLog`: in Kafka the same guarantee needs a
    /// transactional producer (`sendOffsetsToTransaction`), which comes with the Kafka backend.
    public func appendAndCommit(
        _ topic: Topic, _ records: [(key: String, payload: [UInt8])], group: String, consumed: Topic, partition: Int,
        offset: Int64
    ) throws(EventLogError) -> [LogPosition] {
        try Self.perform(
            "appending \(records.count) records to \(topic.rawValue) and committing \(consumed.rawValue)[\(partition)]"
        ) {
            try pool.write { db in
                let positions = try insert(db, topic, records)
                try commit(db, group: group, topic: consumed, partition: partition, offset: offset, allowBackwards: false)
                return positions
            }
        }
    }

    // MARK: Internals

    private func checkPartition(_ partition: Int, of topic: Topic) throws(EventLogError) {
        guard (0..<partitions).contains(partition) else {
            throw EventLogError(
                .invalidArgument,
                "\(topic.rawValue) has no partition \(partition) (the log has partitions 0..<\(partitions))")
        }
    }

    /// Inserts the records with one prepared statement, in the caller's transaction.
    func insert(
        _ db: Database, _ topic: Topic, _ records: [(key: String, payload: [UInt8])],
        appendedAt: Int64 = Timestamp.now.microseconds
    ) throws -> [LogPosition] {
        guard !records.isEmpty else { return [] }
        var next = [Int64?](repeating: nil, count: partitions)  // each partition's end, read on first use
        var positions: [LogPosition] = []
        positions.reserveCapacity(records.count)
        for record in records {
            let partition = partition(forKey: record.key)
            let offset = try next[partition] ?? Self.endOffset(db, topic, partition)
            next[partition] = offset + 1
            positions.append(LogPosition(partition: partition, offset: offset))
        }
        try insertRecords(db, topic, records, at: positions, appendedAt: appendedAt)
        return positions
    }

    /// Inserts the records at the given places (the next ones of their partitions, as the
    /// caller counted them), in the caller's transaction.
    func insertRecords(
        _ db: Database, _ topic: Topic, _ records: [(key: String, payload: [UInt8])], at positions: [LogPosition],
        appendedAt: Int64
    ) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO records (topic, "partition", "offset", key, payload, appended_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
        var row = RowBinder(statement)
        for (record, position) in zip(records, positions) {
            row.text(topic.rawValue)
            row.int(position.partition)
            row.int(position.offset)
            row.text(record.key)
            row.blob(record.payload[...])
            row.int(appendedAt)
            try row.run(db)
        }
    }

    /// Moves a group's offset, in the caller's transaction.
    func commit(
        _ db: Database, group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool
    ) throws {
        try checkPartition(partition, of: topic)
        guard !group.isEmpty else { throw EventLogError(.invalidArgument, "a consumer group needs a name") }
        let current = try Self.committedOffset(db, group, topic, partition)
        if current == offset { return }  // most partitions of a small batch: nothing moved
        let end = try Self.endOffset(db, topic, partition)
        guard (0...end).contains(offset) else {
            throw EventLogError(
                .invalidArgument,
                "group '\(group)' cannot commit offset \(offset) on \(topic.rawValue)[\(partition)], "
                    + "which holds offsets 0..<\(end)")
        }
        if let current, offset < current, !allowBackwards {
            throw EventLogError(
                .offsetBackwards,
                "group '\(group)' has committed offset \(current) on \(topic.rawValue)[\(partition)] and cannot "
                    + "move back to \(offset) (pass allowBackwards to rewind)")
        }
        try moveOffset(db, group: group, topic: topic, partition: partition, to: offset)
    }

    /// Writes a group's offset as given, in the caller's transaction.
    func moveOffset(_ db: Database, group: String, topic: Topic, partition: Int, to offset: Int64) throws {
        var row = RowBinder(
            try db.cachedStatement(
                sql: """
                    INSERT INTO offsets (group_name, topic, "partition", next_offset) VALUES (?, ?, ?, ?)
                    ON CONFLICT (group_name, topic, "partition") DO UPDATE SET next_offset = excluded.next_offset
                    """))
        row.text(group)
        row.text(topic.rawValue)
        row.int(partition)
        row.int(offset)
        try row.run(db)
    }

    static func endOffset(_ db: Database, _ topic: Topic, _ partition: Int) throws -> Int64 {
        let last = try Int64.fetchOne(db.cachedStatement(sql: endOffsetSQL[topic]!), arguments: [partition])
        return last.map { $0 + 1 } ?? 0
    }

    /// Statements that read `records` by topic name the topic in their text, one statement a
    /// topic. Bound as a parameter, the topic decides whether the partial index
    /// `dead_letters_by_time` could serve the query, and SQLite prepared the statement anew
    /// at every run with a new binding: 24 µs of an end-offset lookup's 32 (Python's sqlite3
    /// on a server's log), 5 % of `cardwatch bench decisions`.
    private static func byTopic(_ sql: (String) -> String) -> [Topic: String] {
        Dictionary(
            uniqueKeysWithValues: Topic.allCases.map { ($0, sql("'\($0.rawValue.replacingOccurrences(of: "'", with: "''"))'")) })
    }
    static let endOffsetSQL = byTopic { #"SELECT MAX("offset") FROM records WHERE topic = \#($0) AND "partition" = ?"# }
    static let readSQL = byTopic {
        """
        SELECT "offset", key, payload, appended_at FROM records WHERE topic = \($0) AND "partition" = ? AND "offset" >= ?
        ORDER BY "offset" LIMIT ?
        """
    }

    private static func committedOffset(_ db: Database, _ group: String, _ topic: Topic, _ partition: Int) throws -> Int64? {
        try Int64.fetchOne(
            db.cachedStatement(sql: #"SELECT next_offset FROM offsets WHERE group_name = ? AND topic = ? AND "partition" = ?"#),
            arguments: [group, topic.rawValue, partition])
    }

    /// Runs a database operation, turning any error that is not already an `EventLogError` into one.
    static func perform<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws(EventLogError) -> T {
        do { return try body() } catch let error as EventLogError { throw error } catch {
            throw EventLogError(isTransient(error) ? .unavailable : .storage, "\(what()) failed: \(error)")
        }
    }

    /// SQLite's answers that pass by themselves: the disk or the database is full, an I/O
    /// error, the file is read-only or cannot be opened for now, another connection holds a
    /// lock past the busy timeout. The transaction was rolled back; the same write may succeed later.
    static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        switch error.resultCode.primaryResultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_BUSY, .SQLITE_LOCKED: return true
        default: return false
        }
    }

    /// How an existing log in `directory` partitions its keys, read without writing anything
    /// (`--print-topology`); nil when there is no log there yet.
    public static func partitioning(directory: String) throws(EventLogError) -> (partitions: Int, partitioner: KeyPartitioner)? {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try perform("reading how the log at \(path) is partitioned") {
            var config = Configuration()
            config.readonly = true
            config.busyMode = .timeout(10)
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            return try queue.read { db -> (Int, KeyPartitioner)? in
                guard try db.tableExists("meta"),
                    let partitions = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'partitions'")
                else { return nil }
                // A log from before the partitioner was recorded hashed its keys with FNV-1a.
                let name = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'partitioner'") ?? "fnv1a64"
                guard let partitioner = KeyPartitioner(rawValue: name) else {
                    throw EventLogError(
                        .cannotOpen, "the log at \(path) partitions keys by '\(name)', which this version does not know")
                }
                return (partitions, partitioner)
            }
        }
    }

    /// This log's identity, made at its first use (a random UUID kept in `meta`): what names
    /// its stream among the streams of one shared warehouse.
    public func logID() throws -> String {
        try Self.perform("reading the log's identity") {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('log_id', ?)",
                    arguments: [UUID().uuidString.lowercased()])
                return try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_id'")!
            }
        }
    }

    /// Migrations are append-only: a released migration is never edited.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: records, offsets and meta") { db in
            try db.execute(
                sql: """
                    CREATE TABLE records (
                        topic TEXT NOT NULL,
                        "partition" INTEGER NOT NULL,
                        "offset" INTEGER NOT NULL,
                        key TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        appended_at INTEGER NOT NULL,
                        PRIMARY KEY (topic, "partition", "offset")
                    ) WITHOUT ROWID;
                    -- The next offset each consumer group will read, per topic-partition.
                    CREATE TABLE offsets (
                        group_name TEXT NOT NULL,
                        topic TEXT NOT NULL,
                        "partition" INTEGER NOT NULL,
                        next_offset INTEGER NOT NULL,
                        PRIMARY KEY (group_name, topic, "partition")
                    ) WITHOUT ROWID;
                    -- Fixed properties of the log, e.g. its partition count.
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
                    """)
        }
        WarehouseSchema.register(&migrator)
        registerMonitoring(&migrator)
        WarehouseSchema.registerV4(&migrator)
        registerDeadLetterIndex(&migrator)
        ConfirmedOutcomes.register(&migrator)
        SQLiteWarehouseSink.register(&migrator)
        return migrator
    }
}
