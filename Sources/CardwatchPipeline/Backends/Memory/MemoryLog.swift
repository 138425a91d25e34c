import CardwatchCore

/// A log held in memory, for tests and single-process experiments: the same contract as the
/// SQLite log (`EventLog`), nothing durable. Thread-safe.
public final class MemoryLog: EventLog {
    public let partitions: Int
    public let partitioner: KeyPartitioner
    private struct State {
        var records: [Topic: [[LogRecord]]] = [:]
        var lastAppend: Int64 = 0
        var committed: [String: Int64] = [:]
    }
    private let state = Locked(State())

    public init(partitions: Int, partitioner: KeyPartitioner = .murmur2) {
        precondition(partitions > 0, "a log has at least one partition")
        self.partitions = partitions
        self.partitioner = partitioner
    }

    public func append(_ topic: Topic, _ records: [(key: String, payload: [UInt8])]) throws -> [LogPosition] {
        let targets = records.map { partition(forKey: $0.key) }
        return state.withLock { s in
            // Taken under the lock, and never equal to an earlier append's: appends are ordered by their times.
            let now = max(Timestamp.now.microseconds, s.lastAppend + 1)
            s.lastAppend = now
            var log = s.records[topic] ?? Array(repeating: [], count: partitions)
            var positions: [LogPosition] = []
            positions.reserveCapacity(records.count)
            for (r, p) in zip(records, targets) {
                let offset = Int64(log[p].count)
                log[p].append(
                    LogRecord(topic: topic, partition: p, offset: offset, key: r.key, payload: r.payload, appendedAt: now))
                positions.append(LogPosition(partition: p, offset: offset))
            }
            s.records[topic] = log
            return positions
        }
    }

    public func read(_ topic: Topic, partition: Int, from offset: Int64, limit: Int) throws -> [LogRecord] {
        try check(partition)
        guard offset >= 0, limit >= 0 else {
            throw EventLogError(.invalidArgument, "read of \(topic.rawValue)[\(partition)] from \(offset), limit \(limit)")
        }
        return state.withLock { s in
            let log = s.records[topic]?[partition] ?? []
            guard offset < log.count else { return [] }
            return Array(log[Int(offset)..<min(log.count, Int(offset) + limit)])
        }
    }

    public func endOffset(_ topic: Topic, partition: Int) throws -> Int64 {
        try check(partition)
        return state.withLock { Int64($0.records[topic]?[partition].count ?? 0) }
    }

    public func committedOffset(group: String, topic: Topic, partition: Int) throws -> Int64? {
        try check(partition)
        return state.withLock { $0.committed[Self.key(group, topic, partition)] }
    }

    public func commit(group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool) throws {
        try check(partition)
        let end = try endOffset(topic, partition: partition)
        guard offset >= 0, offset <= end else {
            throw EventLogError(
                .invalidArgument, "commit of \(topic.rawValue)[\(partition)] offset \(offset): the log ends at \(end)")
        }
        try state.withLock { s in
            let key = Self.key(group, topic, partition)
            if let old = s.committed[key], old > offset, !allowBackwards {
                throw EventLogError(
                    .offsetBackwards,
                    "group \(group) would move \(topic.rawValue)[\(partition)] back from \(old) to \(offset)")
            }
            s.committed[key] = offset
        }
    }

    private func check(_ partition: Int) throws {
        guard partition >= 0, partition < partitions else {
            throw EventLogError(.invalidArgument, "partition \(partition) is not in 0..<\(partitions)")
        }
    }

    private static func key(_ group: String, _ topic: Topic, _ partition: Int) -> String {
        "\(group)\u{0}\(topic.rawValue)\u{0}\(partition)"
    }
}
