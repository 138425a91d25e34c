public import CardwatchCore
public import CardwatchFeatures

/// Where a consumer group stands in one partition: the next offset of each input topic.
public struct PartitionOffsets: Sendable, Hashable, CustomStringConvertible {
    public var transactions: Int64
    public var labels: Int64
    public init(transactions: Int64, labels: Int64) {
        self.transactions = transactions
        self.labels = labels
    }
    public static let start = PartitionOffsets(transactions: 0, labels: 0)
    public var description: String { "transactions \(transactions), labels \(labels)" }
    /// Neither offset behind `other`'s.
    public func reaches(_ other: PartitionOffsets) -> Bool {
        transactions >= other.transactions && labels >= other.labels
    }
}

/// One decided transaction: the silver row, and an alert when its tier is high or above.
public struct DecidedTransaction: Sendable {
    public var transaction: Transaction
    public var features: FeatureVector
    public var decision: Decision
    public var partition: Int
    public var offset: Int64
    /// When its record was appended to the log (µs since 1970).
    public var appendedAt: Int64
    public init(
        transaction: Transaction, features: FeatureVector, decision: Decision, partition: Int, offset: Int64,
        appendedAt: Int64
    ) {
        self.transaction = transaction
        self.features = features
        self.decision = decision
        self.partition = partition
        self.offset = offset
        self.appendedAt = appendedAt
    }
}

/// A label the operator saw, and whether it changed state.
public struct AppliedLabel: Sendable, Equatable {
    public var label: RoutedLabel
    public var matched: Bool
    public var partition: Int
    public var offset: Int64
}

/// A transaction record whose id already had a decision elsewhere in the log: answered with
/// that first decision, folded into no state.
public struct RepeatedTransaction: Sendable, Equatable {
    public var transactionID: String
    public var partition: Int
    public var offset: Int64
    public var first: FirstDecision
}

/// The input offsets of one partition a batch consumed: it read `from` up to `to`.
public struct ConsumedRange: Sendable, Hashable {
    public var partition: Int
    public var from: PartitionOffsets
    public var to: PartitionOffsets
    public init(partition: Int, from: PartitionOffsets, to: PartitionOffsets) {
        self.partition = partition
        self.from = from
        self.to = to
    }
}

/// Everything one runtime batch writes, committed atomically with its input offsets.
public struct SinkBatch: Sendable {
    public var group: String
    public var consumed: [ConsumedRange] = []
    public var decisions: [DecidedTransaction] = []
    public var labels: [AppliedLabel] = []
    public var repeats: [RepeatedTransaction] = []
    /// Records in the log that do not decode, with their reasons.
    public var deadLetters: [DeadLetter] = []
    public init(group: String) { self.group = group }

    /// Consecutive batches of one group as one: each partition's ranges joined end to end,
    /// the outputs in order.
    public init(merging batches: [SinkBatch]) {
        group = batches.first?.group ?? ""
        var at: [Int: Int] = [:]
        for b in batches {
            for range in b.consumed {
                if let i = at[range.partition] {
                    consumed[i].to = range.to
                } else {
                    at[range.partition] = consumed.count
                    consumed.append(range)
                }
            }
            decisions += b.decisions
            labels += b.labels
            repeats += b.repeats
            deadLetters += b.deadLetters
        }
    }
    public var isEmpty: Bool { consumed.allSatisfy { $0.from == $0.to } }
}

/// A failure of a sink, with a message that says what was refused and why.
public struct DecisionSinkError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A partition's stored offsets are not where the batch starts: another member
        /// committed it, or this one is behind a rebalance. Nothing was written.
        case offsetConflict
        case storage
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { "decision sink: \(message)" }
}

/// The store of decisions. `commit` writes a batch's outputs and moves its input offsets in
/// one store transaction: how exactly-once holds without Kafka transactions (a batch is
/// wholly there or not at all, and a runtime resumes from the offsets stored with it).
public protocol DecisionSink: Sendable {
    /// Writes the outputs and moves each consumed partition's offsets to `to`, atomically;
    /// throws `offsetConflict` and writes nothing when a partition's stored offsets are not its `from`.
    func commit(_ batch: SinkBatch) throws
    /// The group's stored offsets in a partition (nil: it never committed there).
    func offsets(group: String, partition: Int) throws -> PartitionOffsets?
    /// The `to` of each batch the group committed in a partition whose offsets reach past
    /// `after`, in commit order: where batches ended, which a replay follows to interleave
    /// labels and transactions exactly as they were decided.
    func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets]
}

/// A warehouse that can say how many alerts it holds (the import's summary).
public protocol AlertCounting: Sendable {
    func alertCount() throws -> Int
}

extension ProcessedBatch {
    /// `batch`'s decisions and labels as a warehouse holds them once committed as commit
    /// `sequence`: what its observer is told.
    public init(committing batch: SinkBatch, sequence: Int64) {
        self.init(sequence: sequence)
        decidedAt = batch.decisions.first?.decision.decidedAt
        transactions = batch.decisions.map {
            ProcessedTransaction(
                transaction: $0.transaction, features: $0.features, decision: $0.decision,
                latencyMicros: max(0, $0.decision.decidedAt - $0.appendedAt), partition: $0.partition, offset: $0.offset,
                sequence: sequence)
        }
        labels = batch.labels.map { ProcessedLabel(label: $0.label.event, matched: $0.matched, sequence: sequence) }
    }
}
