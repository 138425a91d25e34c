import CardwatchCore

/// Decisions, offsets and checkpoints held in memory, for tests: the contracts of
/// `DecisionSink`, `DecisionIndex` and `CheckpointStore`, nothing durable. Thread-safe; a
/// commit is atomic because it happens under one lock.
public final class MemorySink: DecisionSink, DecisionIndex, CheckpointStore {
    public struct Contents: Sendable {
        public var decisions: [DecidedTransaction] = []
        public var labels: [AppliedLabel] = []
        public var repeats: [RepeatedTransaction] = []
        public var deadLetters: [DeadLetter] = []
        /// Batches committed.
        public var commits = 0
        var offsets: [String: [Int: PartitionOffsets]] = [:]
        var ends: [String: [Int: [PartitionOffsets]]] = [:]
        var first: [String: FirstDecision] = [:]
        var checkpoints: [String: [Int: PartitionCheckpoint]] = [:]
    }
    private let state = Locked(Contents())
    /// Fails the next commits, for tests of what a runtime does when its store refuses.
    private let failures = Locked(0)

    public init() {}

    /// What was committed so far.
    public var contents: Contents { state.withLock { $0 } }

    /// Makes the next `count` commits throw `storage` (and write nothing).
    public func failNextCommits(_ count: Int) { failures.withLock { $0 = count } }

    public func commit(_ batch: SinkBatch) throws {
        let fail = failures.withLock { f -> Bool in
            guard f > 0 else { return false }
            f -= 1
            return true
        }
        if fail { throw DecisionSinkError(.storage, "the store refused the commit (injected failure)") }
        try state.withLock { s in
            for range in batch.consumed {
                let stored = s.offsets[batch.group]?[range.partition] ?? .start
                guard stored == range.from else {
                    throw DecisionSinkError(
                        .offsetConflict,
                        "group \(batch.group) partition \(range.partition) is at \(stored), the batch starts at \(range.from)")
                }
            }
            for range in batch.consumed where range.from != range.to {
                s.offsets[batch.group, default: [:]][range.partition] = range.to
                s.ends[batch.group, default: [:]][range.partition, default: []].append(range.to)
            }
            for d in batch.decisions where s.first[d.transaction.transactionID] == nil {
                s.first[d.transaction.transactionID] = FirstDecision(
                    partition: d.partition, offset: d.offset, decision: d.decision)
            }
            s.decisions += batch.decisions
            s.labels += batch.labels
            s.repeats += batch.repeats
            s.deadLetters += batch.deadLetters
            s.commits += 1
        }
    }

    public func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        state.withLock { $0.offsets[group]?[partition] }
    }

    public func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        state.withLock { s in
            (s.ends[group]?[partition] ?? []).filter { $0.reaches(after) && $0 != after }
        }
    }

    public func firstDecisions(_ transactionIDs: [String]) throws -> [String: FirstDecision] {
        state.withLock { s in
            var out: [String: FirstDecision] = [:]
            for id in transactionIDs { if let f = s.first[id] { out[id] = f } }
            return out
        }
    }

    public func save(_ checkpoint: PartitionCheckpoint, group: String) throws {
        state.withLock { $0.checkpoints[group, default: [:]][checkpoint.partition] = checkpoint }
    }

    public func latest(group: String, partition: Int) throws -> PartitionCheckpoint? {
        state.withLock { $0.checkpoints[group]?[partition] }
    }
}
