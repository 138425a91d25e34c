public import CardwatchCore

/// The model every operator scores with, and a generation that changes on each promotion:
/// the registry's follower publishes here, and each runtime looks once per batch, so every
/// operator in the process follows a promotion from its next batch on and no batch mixes models.
public final class ProductionModel: Sendable {
    private let cell: Locked<(generation: Int, scorer: Scorer)>

    public init(_ scorer: Scorer) { cell = Locked((0, scorer)) }

    /// Makes `scorer` the model of every operator's next batch.
    public func publish(_ scorer: Scorer) { cell.withLock { $0 = ($0.generation + 1, scorer) } }

    /// The model now, and its generation.
    public var current: (generation: Int, scorer: Scorer) { cell.withLock { $0 } }
}
