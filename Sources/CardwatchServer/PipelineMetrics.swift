import CardwatchFeatures
public import CardwatchPipeline
import Metrics
public import Prometheus
import Synchronization

/// The pipeline's Prometheus metrics, through swift-metrics with swift-prometheus as the
/// backend. Each server has its own registry (passed as the factory), so tests and a
/// process's single server do not share global state.
/// Where a transaction's card features came from.
public enum FeatureCacheResult: String, Sendable, CaseIterable {
    /// The card had state (the stream) or a profile (the online store).
    case hit
    /// It had none: a first transaction's features.
    case miss
    /// The online store did not answer in time, or its breaker is open: a first transaction's features.
    case fallback
}

public final class PipelineMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let transactions: [Action: Metrics.Counter]
    private let predictions: [RiskTier: Metrics.Counter]
    private let latency: Metrics.Timer
    private let modelVersion: Metrics.Gauge
    /// `result`: hit, miss (the card had no state / no profile), fallback (the online store away).
    private let cacheHits: [FeatureCacheResult: Metrics.Counter]
    private let onlineFreshness: Metrics.Timer
    private let breakerOpen: Metrics.Gauge
    private let deadLetters: Metrics.Counter
    private let duplicates: Metrics.Counter
    /// The consumer lag: one gauge, or one per partition (`partitions`).
    private let lag: Metrics.Gauge?
    private let partitionLag: [Metrics.Gauge]
    private let alerts: Metrics.Counter
    private let deadLettersSeen = Mutex<Int>(0)
    private let deadLettersRefused: Metrics.Counter
    private let connectionsRefused: Metrics.Counter
    private let connectionsClosed: [ConnectionClosure: Metrics.Counter]
    private let connectionsOpen: Metrics.Gauge

    /// `partitions`: the consumer lag per partition (`cardwatch_consumer_lag{partition="p"}`,
    /// an instance of a Kafka group); nil: one total (the embedded runtime).
    public init(partitions: Int? = nil) {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Decisions take about a millisecond: buckets from 100 µs to 1 s.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(1_000),
        ]
        transactions = Dictionary(
            uniqueKeysWithValues: Action.allCases.map {
                (
                    $0,
                    Metrics.Counter(
                        label: "cardwatch_transactions_total", dimensions: [("outcome", $0.rawValue)], factory: factory)
                )
            })
        predictions = Dictionary(
            uniqueKeysWithValues: RiskTier.allCases.map {
                (
                    $0,
                    Metrics.Counter(
                        label: "cardwatch_predictions_total", dimensions: [("risk_tier", $0.rawValue)], factory: factory)
                )
            })
        latency = Metrics.Timer(label: "cardwatch_prediction_latency_seconds", factory: factory)
        modelVersion = Metrics.Gauge(label: "cardwatch_model_version", factory: factory)
        cacheHits = Dictionary(
            uniqueKeysWithValues: FeatureCacheResult.allCases.map {
                (
                    $0,
                    Metrics.Counter(
                        label: "cardwatch_feature_cache_hits_total", dimensions: [("result", $0.rawValue)], factory: factory)
                )
            })
        onlineFreshness = Metrics.Timer(label: "cardwatch_online_profile_freshness_seconds", factory: factory)
        breakerOpen = Metrics.Gauge(label: "cardwatch_online_store_breaker_open", factory: factory)
        deadLetters = Metrics.Counter(label: "cardwatch_dead_letters_total", factory: factory)
        duplicates = Metrics.Counter(label: "cardwatch_duplicates_total", factory: factory)
        if let partitions {
            lag = nil
            partitionLag = (0..<partitions).map {
                Metrics.Gauge(label: "cardwatch_consumer_lag", dimensions: [("partition", String($0))], factory: factory)
            }
        } else {
            lag = Metrics.Gauge(label: "cardwatch_consumer_lag", factory: factory)
            partitionLag = []
        }
        alerts = Metrics.Counter(label: "cardwatch_alerts_total", factory: factory)
        deadLettersRefused = Metrics.Counter(label: "cardwatch_dead_letters_refused_total", factory: factory)
        connectionsRefused = Metrics.Counter(label: "cardwatch_http_connections_refused_total", factory: factory)
        connectionsClosed = Dictionary(
            uniqueKeysWithValues: ConnectionClosure.allCases.map {
                (
                    $0,
                    Metrics.Counter(
                        label: "cardwatch_http_connections_closed_total", dimensions: [("reason", $0.rawValue)],
                        factory: factory)
                )
            })
        connectionsOpen = Metrics.Gauge(label: "cardwatch_http_connections", factory: factory)
    }

    /// Why the server closed a connection itself.
    enum ConnectionClosure: String, CaseIterable {
        /// Idle between requests for the idle timeout.
        case idle
        /// A head not received within the header timeout (slowloris).
        case headerTimeout = "header_timeout"
        /// A request not received within the request timeout.
        case requestTimeout = "request_timeout"
        /// Closed to make room for a new connection at the connection limit.
        case evicted
        /// Answered 4xx for a request that is not HTTP/1 as Cardwatch reads it.
        case malformed
    }

    /// Dead letters refused by a source's allowance (their requests got 429 or 422, nothing written).
    func deadLettersRefused(_ count: Int) { if count > 0 { deadLettersRefused.increment(by: count) } }

    /// A connection answered 503 at the connection limit.
    func connectionRefused() { connectionsRefused.increment() }

    func connectionClosed(_ reason: ConnectionClosure) { connectionsClosed[reason]?.increment() }

    func setOpenConnections(_ count: Int) { connectionsOpen.record(count) }

    /// A decided batch: outcomes, tiers, latencies (append to decision), alerts, the model.
    /// A feature-cache hit is a transaction whose card already had state in the online
    /// feature store: an earlier event within the state's 30 days (a first transaction's
    /// `time_since_last_tx_s` is the 30-day cap).
    public func observe(_ batch: ProcessedBatch) {
        guard let last = batch.transactions.last else { return }
        // Counted per batch, one increment per series (the latencies one by one: a histogram).
        var actions = [Int](repeating: 0, count: Action.allCases.count)
        var tiers = [Int](repeating: 0, count: RiskTier.allCases.count)
        var alertCount = 0
        var hits = 0
        for t in batch.transactions {
            actions[t.decision.action.rank] += 1
            tiers[t.decision.tier.rank] += 1
            latency.recordMicroseconds(t.latencyMicros)
            if t.decision.isAlert { alertCount += 1 }
            if t.features[.timeSinceLastTxS] < 2_592_000 { hits += 1 }
        }
        for (i, action) in Action.allCases.enumerated() where actions[i] > 0 {
            transactions[action]?.increment(by: actions[i])
        }
        for (i, tier) in RiskTier.allCases.enumerated() where tiers[i] > 0 { predictions[tier]?.increment(by: tiers[i]) }
        if alertCount > 0 { alerts.increment(by: alertCount) }
        if hits > 0 { cacheHits[.hit]?.increment(by: hits) }
        if batch.transactions.count > hits { cacheHits[.miss]?.increment(by: batch.transactions.count - hits) }
        modelVersion.record(last.decision.modelVersion)
    }

    /// A `/predict?mode=online` answer: its features' source, tier and latency.
    func observeOnline(_ result: FeatureCacheResult, tier: RiskTier, latencyMicros: Int64) {
        cacheHits[result]?.increment()
        predictions[tier]?.increment()
        latency.recordMicroseconds(latencyMicros)
    }

    /// A write of profiles to the online store: from its batch's commit to readable (µs).
    public func observeOnlineWrite(committedAt: Int64, writtenAt: Int64) {
        onlineFreshness.recordMicroseconds(max(0, writtenAt - committedAt))
    }

    /// Whether the online store's breaker is open (1) or not (0).
    public func setOnlineBreaker(open: Bool) { breakerOpen.record(open ? 1 : 0) }

    public func observe(_ ingest: IngestOutcome) {
        if !ingest.duplicates.isEmpty { duplicates.increment(by: ingest.duplicates.count) }
    }

    public func setModelVersion(_ version: Int) { modelVersion.record(version) }

    /// Each partition's lag, as of now (partitions this server does not know are left out).
    public func recordLag(byPartition lags: [Int: Int64]) {
        for (p, value) in lags where partitionLag.indices.contains(p) { partitionLag[p].record(value) }
    }

    /// The Prometheus text exposition, with the consumer lag as of now and the dead letters
    /// counted from the dead-letter log (every source's, other processes' too).
    public func render(lag now: Int64?, deadLettersTotal: Int?) -> [UInt8] {
        if let now { lag?.record(now) }
        if let total = deadLettersTotal {
            let delta = deadLettersSeen.withLock { seen -> Int in
                defer { seen = max(seen, total) }
                return max(0, total - seen)
            }
            if delta > 0 { deadLetters.increment(by: delta) }
        }
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}
