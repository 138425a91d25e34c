// The durable log the pipeline's stages read from and write to (ARCHITECTURE.md, "Data
// flow"). Stages see only this protocol: the embedded SQLite log
// (`CardwatchStorage.SQLiteEventLog`) implements it today, a Kafka log can follow
// without touching them. Like Kafka, a log is a set of topics, each split into
// partitions; a record's partition is chosen by its key (the card_id for
// `transactions`), so all the records of one card are read in order by one consumer.

/// The topics of the pipeline; the raw values are also the Kafka topic names.
public enum Topic: String, Sendable, CaseIterable {
    case transactions
    case transactionsDLQ = "transactions.dlq"
    case alerts
    case labels
}

/// Where a record was written: its partition and its offset within that partition.
public struct LogPosition: Sendable, Equatable, Hashable {
    public var partition: Int
    public var offset: Int64

    public init(partition: Int, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }
}

/// One record of a topic, as read back from the log.
public struct LogRecord: Sendable, Equatable {
    public var topic: Topic
    public var partition: Int
    /// Dense within the topic-partition, from 0.
    public var offset: Int64
    public var key: String
    public var payload: [UInt8]
    /// When the record was appended, in microseconds since 1970-01-01 UTC (the same for a whole batch).
    public var appendedAt: Int64

    public init(topic: Topic, partition: Int, offset: Int64, key: String, payload: [UInt8], appendedAt: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.payload = payload
        self.appendedAt = appendedAt
    }
}

/// A failure of the log, with a message that says what was asked and why it was refused.
public struct EventLogError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The log could not be opened (or created).
        case cannotOpen
        /// The log was created with another number of partitions.
        case partitionCountMismatch
        /// A partition, offset or limit out of range.
        case invalidArgument
        /// A commit would move a consumer group's offset backwards.
        case offsetBackwards
        /// The storage failed.
        case storage
        /// The storage refused for now (a full disk, an I/O error, a read-only file, a lock held
        /// by another process): nothing was written, and the same call may succeed later.
        case unavailable
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "event log: \(message)" }
}

/// The producer side of a log: keyed appends.
public protocol LogProducer: Sendable {
    /// The number of partitions of every topic; fixed when the log is created.
    var partitions: Int { get }

    /// How a key chooses its partition; fixed when the log is created (Kafka's murmur2 for new logs).
    var partitioner: KeyPartitioner { get }

    /// Appends a batch atomically (all records or none), each to its key's partition; returns each record's position, in batch order.
    func append(_ topic: Topic, _ records: [(key: String, payload: [UInt8])]) throws -> [LogPosition]
}

/// Reading a log by position: replays, and the consumers built on a log without a broker.
public protocol LogReader: Sendable {
    /// The number of partitions of every topic.
    var partitions: Int { get }

    /// Up to `limit` records of one topic-partition from `offset` on, in offset order.
    func read(_ topic: Topic, partition: Int, from offset: Int64, limit: Int) throws -> [LogRecord]

    /// The next offset to be written in a topic-partition (0 when it is empty).
    func endOffset(_ topic: Topic, partition: Int) throws -> Int64
}

/// A partitioned, append-only log of topics with committed offsets per consumer group.
///
/// Offsets are per topic-partition, dense, and start at 0. A consumer group's committed
/// offset is the next offset it will read (Kafka's convention), so a group that has
/// processed offsets 0...9 commits 10.
public protocol EventLog: LogProducer, LogReader {
    /// The group's committed offset (the next one to read) in a topic-partition, or nil when it never committed.
    func committedOffset(group: String, topic: Topic, partition: Int) throws -> Int64?

    /// Sets the group's next offset to read (at most `endOffset`); moving it backwards needs `allowBackwards`.
    func commit(group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool) throws
}

extension LogProducer {
    /// The partition of a key, by the log's partitioner.
    public func partition(forKey key: String) -> Int {
        partitioner.partition(forKey: key, partitions: partitions)
    }
}

extension EventLog {
    /// Commits the group's next offset to read, refusing to move it backwards.
    public func commit(group: String, topic: Topic, partition: Int, offset: Int64) throws {
        try commit(group: group, topic: topic, partition: partition, offset: offset, allowBackwards: false)
    }
}

/// The key hashes behind partitioning. They must be the same in every process and every run
/// (a restarted pipeline finds each card in the partition it left it in), so they are fixed
/// functions of the UTF-8 bytes, never Swift's per-process randomized `Hasher`: FNV-1a 64 (the
/// logs created before `KeyPartitioner.murmur2`, and the card profiles' shards) and Kafka's
/// murmur2 (`KeyPartitioner.swift`).
public enum KeyHash {
    /// FNV-1a, 64 bits, of the key's UTF-8 bytes.
    public static func fnv1a64(_ key: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The partition, in `0..<partitions`, of a key.
    public static func partition(forKey key: String, partitions: Int) -> Int {
        precondition(partitions > 0, "a log has at least one partition")
        return Int(fnv1a64(key) % UInt64(partitions))
    }
}
