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

    public init(config: FeatureConfig = FeatureConfig()) throws(FeatureConfigError) {
        state = try FeatureEngine(config: config)
    }

    /// The state a checkpoint holds (`checkpoint()`).
    public init(checkpoint: [UInt8]) throws(SnapshotError) {
        state = try FeatureEngine(snapshot: checkpoint)
    }

    /// Folds `transaction` into its card's and merchant's state; its features. A replay stops here.
    public mutating func update(_ transaction: Transaction) -> FeatureVector {
        state.process(transaction)
    }

    /// The step: updates the state with `transaction` and decides it with `model` and `rules`.
    /// `explain: false` leaves an alert's feature reasons to the caller (to share TreeSHAP
    /// between cores); its rule reasons are always there.
    public mutating func decide(
        _ transaction: Transaction, model: Scorer, rules: RuleBook, explain: Bool = true
    ) -> (features: FeatureVector, decision: Decision) {
        let features = state.process(transaction)
        var decision = model.decide(features, rules: rules, explain: explain)
        decision.eventTime = transaction.timestamp.microseconds
        return (features, decision)
    }

    /// Makes a label known from now on; false when it cannot be used (it names no merchant:
    /// its transaction was unknown when it was ingested).
    @discardableResult
    public mutating func apply(_ label: RoutedLabel) -> Bool {
        guard let merchantID = label.merchantID, let time = label.transactionTime else { return false }
        state.apply(LabelFact(merchantID: merchantID, transactionTime: time, isFraud: label.isFraud))
        return true
    }

    /// Makes a resolved label known from now on (the single-partition processor resolves
    /// labels itself, from the arrival order).
    public mutating func apply(_ fact: LabelFact) { state.apply(fact) }

    /// The state, serialized: what `init(checkpoint:)` restores.
    public func checkpoint() -> [UInt8] { state.snapshot() }
}
