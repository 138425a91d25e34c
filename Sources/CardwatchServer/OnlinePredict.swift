public import CardwatchCore
public import CardwatchFeatures
public import CardwatchPipeline
import Foundation
import Hummingbird

/// What `POST /predict?mode=online` scores with: the online store's profiles (through a
/// breaker, each read bounded by `timeout`), the production model and the rules.
public struct OnlineScoring: Sendable {
    public var store: any OnlineFeatureStore
    public var breaker: CircuitBreaker
    /// How long a read of the store may take before the answer takes the fallback (default 5 ms).
    public var timeout: Duration
    public var models: ProductionModel
    public var rules: RuleFile?

    public init(
        store: any OnlineFeatureStore, breaker: CircuitBreaker = CircuitBreaker(), timeout: Duration = .milliseconds(5),
        models: ProductionModel, rules: RuleFile? = nil
    ) {
        self.store = store
        self.breaker = breaker
        self.timeout = timeout
        self.models = models
        self.rules = rules
    }

    /// The features of `tx` from the store, and where they came from, given to `completion`
    /// (on any thread). Never fails: a store that is slow, down or open-circuited gives the
    /// fallback (a first transaction's features).
    public func features(_ tx: Transaction, completion: @escaping @Sendable (FeatureVector, FeatureCacheResult) -> Void) {
        guard breaker.allow() else {
            completion(OnlineFeatures.vector(tx, card: nil, merchant: nil), .fallback)
            return
        }
        store.profiles(card: tx.cardID, merchant: tx.merchantID, timeout: timeout) { [breaker] result in
            switch result {
            case .success(let (card, merchant)):
                breaker.succeeded()
                completion(OnlineFeatures.vector(tx, card: card, merchant: merchant), card == nil ? .miss : .hit)
            case .failure:
                breaker.failed()
                completion(OnlineFeatures.vector(tx, card: nil, merchant: nil), .fallback)
            }
        }
    }

    public func features(_ tx: Transaction) async -> (FeatureVector, FeatureCacheResult) {
        await withCheckedContinuation { continuation in features(tx) { continuation.resume(returning: ($0, $1)) } }
    }

    /// The answer: the decision as the stream's answers are written, with `mode` and `features`.
    func answer(
        _ tx: Transaction, _ features: FeatureVector, _ result: FeatureCacheResult, began: ContinuousClock.Instant,
        metrics: PipelineMetrics
    ) -> ByteBuffer {
        var decision = models.current.scorer.decide(features, rules: rules?.current() ?? RuleBook())
        decision.eventTime = tx.timestamp.microseconds
        decision.decidedAt = Timestamp.now.microseconds
        let latency = ContinuousClock.now - began
        let micros = latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000
        metrics.observeOnline(result, tier: decision.tier, latencyMicros: micros)
        metrics.setOnlineBreaker(open: breaker.state != .closed)
        var out = JSONBody.decisionBody(tx.transactionID, decision, latencyMs: Double(micros) / 1000)
        out.moveWriterIndex(to: out.writerIndex - 1)  // the closing brace
        out.writeString(#","mode":"online","features":""# + Decide.featuresLabel(result) + #""}"#)
        return out
    }
}

extension Decide {
    /// `POST /predict?mode=online`: the transaction scored from the online store's profiles
    /// without the stream (not appended to the log: `/v1/transactions` decides and keeps it).
    /// The answer's `features` says where the card's features came from: `online` (its
    /// profile), `new_card` (no profile: a first transaction's) or `fallback` (the store did not
    /// answer in time or its breaker is open: a first transaction's). Redis never fails it.
    func predictOnline(_ record: [UInt8], began: ContinuousClock.Instant, source: String) async throws -> Response {
        guard let online = dependencies.online else {
            throw Problem(
                .badRequest, "Bad Request",
                detail:
                    "mode=online needs an online feature store: start the server with --online-store redis://HOST:PORT (or memory)"
            )
        }
        let (valid, invalid, deadLetters) = Self.decode([record], policy: dependencies.ingestPolicy)
        guard let tx = valid.first?.transaction else {
            try chargeDeadLetters(1, source: source, listed: invalid[...], total: 1)
            _ = try await queue.submit([], deadLetters: deadLetters)
            throw Problem(
                .unprocessableContent, "Unprocessable Content",
                detail: "the transaction is not valid under schema v1 (kept in the dead-letter log)",
                errors: invalid.first?.issues ?? [])
        }
        let (features, result) = await online.features(tx)
        let out = online.answer(tx, features, result, began: began, metrics: dependencies.metrics)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out))
    }

    static func featuresLabel(_ r: FeatureCacheResult) -> String {
        switch r {
        case .hit: "online"
        case .miss: "new_card"
        case .fallback: "fallback"
        }
    }
}
