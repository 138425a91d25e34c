import CardwatchCore
public import Logging

/// Writes each committed batch's profiles and alerts to the online store, from the commit's
/// observer (so the store never holds a decision the warehouse lacks), on a thread of its own
/// (so the stream never waits for the store). Batches that waited are written together, each
/// key once with its latest profile.
///
/// The store is a cache: a failed write never fails a commit or stops the stream. Profiles
/// missed while the store is away are rewritten with their card's next transaction; alerts
/// wait in a bounded queue (`maxPendingAlerts`; beyond it the oldest are dropped, counted in
/// `backlog`) and go with the next write that succeeds, so a consumer of the stream misses
/// none across an outage (at least once: dedupe by `transaction_id`). A breaker keeps a store
/// that is down from costing every write a timeout.
public final class OnlinePublisher: Sendable {
    public let store: any OnlineFeatureStore
    public let breaker: CircuitBreaker
    public let maxPendingAlerts: Int
    private let logger: Logger
    private let written: (@Sendable (_ committedAt: Int64, _ writtenAt: Int64, _ profiles: Int) -> Void)?
    private let pending = Locked<(alerts: [OnlineAlert], dropped: Int, failures: Int, lastLog: ContinuousClock.Instant?)>(
        ([], 0, 0, nil))
    /// A committed batch's decisions and when it was committed: all the commit's thread does is
    /// queue them (the profiles are built on the writer's thread).
    struct Committed: Sendable {
        var decided: [ProcessedTransaction]
        var committedAt: Int64
    }
    private let worker: BatchingWorker<Committed>

    /// `written` is told after each write that succeeded: the commit time (µs since 1970) of
    /// its oldest batch, when the write ended, and how many card profiles it wrote.
    public init(
        store: any OnlineFeatureStore, breaker: CircuitBreaker = CircuitBreaker(), maxPendingAlerts: Int = 100_000,
        logger: Logger = Logger(label: "cardwatch.online"),
        written: (@Sendable (_ committedAt: Int64, _ writtenAt: Int64, _ profiles: Int) -> Void)? = nil
    ) {
        self.store = store
        self.breaker = breaker
        self.maxPendingAlerts = maxPendingAlerts
        self.logger = logger
        self.written = written
        let pending = self.pending
        // Bounded: past a million decisions waiting, the commits wait for the writer.
        worker = BatchingWorker(
            name: "online-store", capacity: 1_000_000, onFailure: .isRemembered,
            weigh: { $0.decided.count + 1 },
            handle: { batches in
                let decided = batches.count == 1 ? batches[0].decided : batches.flatMap(\.decided)
                Self.write(
                    OnlineUpdate(decided, committedAt: batches.map(\.committedAt).min() ?? 0), store: store, breaker: breaker,
                    pending: pending, bound: maxPendingAlerts, logger: logger,
                    written: written)
            })
    }

    /// The commit observer's part: the batch's profiles and alerts, queued for the writer.
    public func publish(_ batch: ProcessedBatch) {
        guard !batch.transactions.isEmpty else { return }
        try? worker.submit(Committed(decided: batch.transactions, committedAt: Timestamp.now.microseconds))
    }

    /// Tries the alerts that wait for the store again (called every second by the instance: with
    /// no new commit they would otherwise wait for the next one).
    public func retryPending() {
        guard pending.withLock({ !$0.alerts.isEmpty }) else { return }
        try? worker.submit(Committed(decided: [], committedAt: Timestamp.now.microseconds))
    }

    /// Alerts waiting for the store, and how many were dropped past the bound.
    public var backlog: (waiting: Int, dropped: Int) { pending.withLock { ($0.alerts.count, $0.dropped) } }

    /// Waits until everything published so far has been tried.
    public func flush() { try? worker.flush() }

    public func stop() { worker.stop() }

    static func write(
        _ update: OnlineUpdate, store: any OnlineFeatureStore, breaker: CircuitBreaker,
        pending: Locked<(alerts: [OnlineAlert], dropped: Int, failures: Int, lastLog: ContinuousClock.Instant?)>,
        bound: Int, logger: Logger, written: (@Sendable (Int64, Int64, Int) -> Void)?
    ) {
        var update = update
        update.alerts = pending.withLock { p in
            p.alerts += update.alerts
            if p.alerts.count > bound {
                p.dropped += p.alerts.count - bound
                p.alerts.removeFirst(p.alerts.count - bound)
            }
            return p.alerts
        }
        guard !update.isEmpty, breaker.allow() else { return }
        do {
            try store.write(update)
            breaker.succeeded()
            let sent = update.alerts.count
            pending.withLock { p in
                p.alerts.removeFirst(min(sent, p.alerts.count))
                if p.failures > 0 { logger.info("the online store is written again (\(p.failures) writes missed it)") }
                p.failures = 0
            }
            written?(update.committedAt, Timestamp.now.microseconds, update.cards.count)
        } catch {
            breaker.failed()
            let now = ContinuousClock.now
            pending.withLock { p in
                p.failures += 1
                if p.lastLog.map({ now - $0 > .seconds(10) }) ?? true {
                    p.lastLog = now
                    logger.warning(
                        "the online store could not be written (the stream goes on; alerts wait for it): \(error)",
                        metadata: ["alerts_waiting": "\(p.alerts.count)", "writes_missed": "\(p.failures)"])
                }
            }
        }
    }
}
