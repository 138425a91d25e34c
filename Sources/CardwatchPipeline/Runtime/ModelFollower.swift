public import Logging
public import ServiceLifecycle

/// Keeps the running pipeline on the registry's production model, whoever promoted it (this
/// process's retraining or API, or another process: `cardwatch models promote` on the same
/// data directory): every `every` it asks the registry which version is in production (one
/// small query) and, when that is not the version the operators score with, loads it,
/// builds its scorer under the operator's `ScoringPolicy` and swaps it in at the next batch
/// boundary. A production model that cannot be loaded fails the stage (its supervisor
/// retries, and health reports it) while the operators keep their current model.
public struct ModelFollower: Service {
    public let registry: any ModelDirectory
    public let models: any ModelTarget
    public let scoring: ScoringPolicy
    public let every: Duration
    public let logger: Logger
    /// Rung when the registry announces a change (PostgreSQL's NOTIFY): a look at once.
    public let wake: Doorbell

    public init(
        registry: any ModelDirectory, models: any ModelTarget, scoring: ScoringPolicy, every: Duration = .milliseconds(500),
        logger: Logger, wake: Doorbell = Doorbell()
    ) {
        self.registry = registry
        self.models = models
        self.scoring = scoring
        self.every = every
        self.logger = logger
        self.wake = wake
    }

    /// One look at the registry: the version swapped in, or nil when the operators already
    /// scores with the production model (or there is none).
    @discardableResult
    public func check() throws -> Int? {
        guard let production = try registry.productionVersion(), production != models.version else { return nil }
        let previous = models.version
        models.swap(to: try scoring.scorer(try registry.artifact(of: production), version: production))
        logger.notice(
            "the registry's production model changed: scoring with model v\(production) from the next batch on",
            metadata: ["previous_version": "\(previous.map(String.init) ?? "none")", "version": "\(production)"])
        return production
    }

    /// Looks on a thread of its own, so the 2-second promise holds however busy Swift's
    /// cooperative pool is (HTTP requests, other services) until shutdown.
    public func run() async throws {
        let follower = self
        let seconds = Double(every.components.seconds) + Double(every.components.attoseconds) / 1e18
        try await runOnThreadUntilShutdown(name: "model-follower", wake: wake) { stop, wake in
            while !stop.isStopped {
                try follower.check()
                wake.wait(seconds: seconds)
            }
        }
    }
}

/// Where a follower puts the production model: the model every partition operator reads at
/// its next batch (`ProductionModel`).
public protocol ModelTarget: Sendable {
    /// The version scored with from the next batch on (nil: none yet).
    var version: Int? { get }
    /// Serves `scorer` from the next batch on.
    func swap(to scorer: Scorer)
}

extension ProductionModel: ModelTarget {
    public var version: Int? { current.scorer.modelVersion }
    public func swap(to scorer: Scorer) { publish(scorer) }
}
