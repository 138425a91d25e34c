public import CardwatchCore
public import CardwatchFeatures

/// The per-partition step of the pipeline, in the spirit of Flink's `KeyedProcessFunction`
/// and Kafka Streams' `Processor`: the state of one partition (its cards, and the view of
/// the merchants those cards bought from) and a pure step that folds one transaction in and
/// decides it. No I/O, no clock, no threads: the runtime around it (`PartitionRuntime`)
/// owns polling, offsets, commits and checkpoints, and tests and benchmarks call it directly.
///
/// Merchant state is per partition. With one partition (the embedded default) that is the
/// whole stream. With several, a merchant's counts and fraud rates in partition p come from
/// the transactions and labels of p's cards only: a function of p's own log, so a replay
/// after a crash or a move to another runtime rebuilds exactly what the committed decisions
/// saw, with no staleness and no cross-partition coordination, at the price of each
/// partition seeing about 1/P of a merchant's traffic (README, "Partitions").
public struct PartitionOperator: Sendable {
    /// The partition's card and merchant state.
    public private(set) var state: FeatureEngine
    /// Labels reported after the partition's newest event time, latest report first: each
    /// takes effect when a transaction reaches its `reported_at`.
    private var pending: [PendingLabel] = []

    /// A label known to the log but not yet to the state.
    struct PendingLabel: Sendable, Equatable {
        var reportedAt: Int64
        var fact: LabelFact
    }

    public init(config: FeatureConfig = FeatureConfig()) throws(FeatureConfigError) {
        state = try FeatureEngine(config: config)
    }

    /// The state a checkpoint holds (`checkpoint()`); a bare feature-engine snapshot (of the
    /// processor before labels waited for their time) is read as having none waiting.
    public init(checkpoint: [UInt8]) throws(SnapshotError) {
        guard checkpoint.starts(with: Self.magic) else {
            state = try FeatureEngine(snapshot: checkpoint)
            return
        }
        var r = CheckpointReader(bytes: checkpoint, at: Self.magic.count)
        let count = try r.int64()
        guard count >= 0, count <= Int64(checkpoint.count) else {
            throw SnapshotError("operator checkpoint: implausible count \(count) of waiting labels")
        }
        for _ in 0..<count {
            let reportedAt = try r.int64()
            let time = try r.int64()
            let isFraud = try r.byte() != 0
            let merchant = try r.string()
            pending.append(
                PendingLabel(
                    reportedAt: reportedAt,
                    fact: LabelFact(merchantID: merchant, transactionTime: Timestamp(microseconds: time), isFraud: isFraud)))
        }
        state = try FeatureEngine(snapshot: Array(checkpoint[r.at...]))
    }

    /// Folds `transaction` into its card's and merchant's state; its features. A replay stops here.
    public mutating func update(_ transaction: Transaction) -> FeatureVector {
        release(upTo: transaction.timestamp.microseconds)
        return state.process(transaction)
    }

    /// The step: updates the state with `transaction` and decides it with `model` and `rules`.
    /// `explain: false` leaves an alert's feature reasons to the caller (to share TreeSHAP
    /// between cores); its rule reasons are always there.
    public mutating func decide(
        _ transaction: Transaction, model: Scorer, rules: RuleBook, explain: Bool = true
    ) -> (features: FeatureVector, decision: Decision) {
        let features = update(transaction)
        var decision = model.decide(features, rules: rules, explain: explain)
        decision.eventTime = transaction.timestamp.microseconds
        return (features, decision)
    }

    /// Makes a label known from its `reported_at` on, in event time, as training's replay
    /// does (`FeatureReplay`): at once when the partition's stream is already past it, else
    /// when its first transaction at or after that time comes. So where a label falls among
    /// the transactions of a poll does not change a decision. False when it cannot be used
    /// (it names no merchant: its transaction was unknown when it was ingested).
    @discardableResult
    public mutating func apply(_ label: RoutedLabel) -> Bool {
        guard let merchantID = label.merchantID, let time = label.transactionTime else { return false }
        let fact = LabelFact(merchantID: merchantID, transactionTime: time, isFraud: label.isFraud)
        let reportedAt = label.reportedAt.microseconds
        guard reportedAt > state.maxTime else {
            state.apply(fact)
            return true
        }
        // Latest first; among equal times the earlier label stays nearer the end (applied first).
        var i = pending.count
        while i > 0 && pending[i - 1].reportedAt <= reportedAt { i -= 1 }
        pending.insert(PendingLabel(reportedAt: reportedAt, fact: fact), at: i)
        return true
    }

    /// Labels waiting for their `reported_at`.
    public var waitingLabels: Int { pending.count }

    /// Applies the waiting labels reported by `time`.
    private mutating func release(upTo time: Int64) {
        while let last = pending.last, last.reportedAt <= time {
            state.apply(last.fact)
            pending.removeLast()
        }
    }

    /// The state, serialized: what `init(checkpoint:)` restores. The waiting labels (few: those
    /// reported ahead of the stream), then the feature engine's snapshot.
    public func checkpoint() -> [UInt8] {
        var out = Self.magic
        Self.append(Int64(pending.count), to: &out)
        for p in pending {
            Self.append(p.reportedAt, to: &out)
            Self.append(p.fact.transactionTime.microseconds, to: &out)
            out.append(p.fact.isFraud ? 1 : 0)
            let merchant = Array(p.fact.merchantID.utf8)
            Self.append(Int64(merchant.count), to: &out)
            out += merchant
        }
        return out + state.snapshot()
    }

    static let magic: [UInt8] = Array("CWOP1".utf8)

    private static func append(_ v: Int64, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// Reads the operator's part of a checkpoint, checking every length.
private struct CheckpointReader {
    let bytes: [UInt8]
    var at: Int

    mutating func take(_ n: Int) throws(SnapshotError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - at else { throw SnapshotError("operator checkpoint truncated at byte \(at)") }
        defer { at += n }
        return bytes[at..<at + n]
    }

    mutating func int64() throws(SnapshotError) -> Int64 {
        let raw = try take(8)
        return Int64(littleEndian: raw.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })
    }

    mutating func byte() throws(SnapshotError) -> UInt8 { try take(1).first! }

    mutating func string() throws(SnapshotError) -> String {
        let n = try int64()
        guard n >= 0, n <= 4096 else { throw SnapshotError("operator checkpoint: implausible string length \(n)") }
        guard let s = String(validating: try take(Int(n)), as: UTF8.self) else {
            throw SnapshotError("operator checkpoint: a merchant id is not UTF-8")
        }
        return s
    }
}
