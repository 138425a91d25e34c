#if Kafka
    import CardwatchCore
    import CardwatchFeatures
    public import CardwatchPipeline
    import Foundation

    /// Synchronous decisions on Kafka (`POST /v1/transactions` on any instance): the records are
    /// produced to `transactions`, and the request waits for their decisions in the shared
    /// warehouse, whichever instance owns their partitions. A decision committed by this
    /// instance is handed over in memory (`observe`, from the warehouse's observer); one
    /// committed by another instance is found by asking the warehouse's index (`first_decisions`)
    /// every few milliseconds. No forwarding between instances is needed, and an instance that
    /// owns nothing still answers.
    ///
    /// An id that already has a decision is a duplicate (as in the embedded log). A record
    /// produced but not decided within `timeout` fails the request (a 503: the client retries,
    /// and the retry is answered with the first decision when it comes).
    public final class KafkaDecisions: Sendable {
        public let log: KafkaLog
        public let index: any DecisionIndex
        public let timeout: Double
        /// Waiting ids, and the decisions that reached them.
        private let waiting = Locked<[String: ProcessedTransaction?]>([:])
        private let decided = Doorbell()
        /// Why the cluster cannot be reached now (nil: it can).
        public let clusterStatus: @Sendable () -> String?

        public init(
            log: KafkaLog, index: any DecisionIndex, timeout: Double = 5,
            clusterStatus: @escaping @Sendable () -> String? = { nil }
        ) {
            self.log = log
            self.index = index
            self.timeout = timeout
            self.clusterStatus = clusterStatus
        }

        /// A batch this instance committed: the waiting requests among its transactions are answered.
        public func observe(_ batch: ProcessedBatch) {
            var any = false
            waiting.withLock { w in
                guard !w.isEmpty else { return }
                for t in batch.transactions where w[t.transaction.transactionID] != nil {
                    w[t.transaction.transactionID] = t
                    any = true
                }
            }
            if any { decided.ring() }
        }

        /// `ServerDependencies.decide`: produces the batch and returns once every accepted record is decided.
        public func decide(_ batch: IngestBatch) throws -> (IngestOutcome, ProcessedBatch?) {
            if let away = clusterStatus() {
                throw KafkaError("the Kafka cluster cannot be reached (\(away)): nothing was written", transient: true)
            }
            var outcome = IngestOutcome()
            outcome.deadLetters = batch.deadLetters.count
            let ids = batch.records.map(\.transaction.transactionID)
            let known = try index.firstDecisions(Array(Set(ids)))
            var seen = Set<String>()
            var accepted: [IngestRecord] = []
            for r in batch.records {
                let id = r.transaction.transactionID
                if known[id] != nil || !seen.insert(id).inserted {
                    outcome.duplicates.append(id)
                } else {
                    accepted.append(r)
                }
            }
            outcome.accepted = accepted.count
            waiting.withLock { w in for r in accepted { w[r.transaction.transactionID] = .some(nil) } }
            defer { waiting.withLock { w in for r in accepted { w[r.transaction.transactionID] = nil } } }
            let deadline = Date().addingTimeInterval(timeout)
            _ = try log.produce(
                .transactions, accepted.map { OutgoingRecord(key: $0.transaction.cardID, payload: $0.payload) },
                deadline: deadline)
            _ = try log.produce(.transactionsDLQ, batch.deadLetters.map(KafkaOutputSink.deadLetter), deadline: deadline)
            guard !accepted.isEmpty else { return (outcome, nil) }

            var answers: [String: ProcessedTransaction] = [:]
            var lastAsked = Date()
            while true {
                waiting.withLock { w in
                    for r in accepted where answers[r.transaction.transactionID] == nil {
                        if case .some(.some(let t)) = w[r.transaction.transactionID] { answers[t.transaction.transactionID] = t }
                    }
                }
                if answers.count == accepted.count { break }
                // Decided elsewhere: the warehouse's index, every 5 ms.
                if Date().timeIntervalSince(lastAsked) >= 0.005 {
                    lastAsked = Date()
                    let missing = accepted.map(\.transaction).filter { answers[$0.transactionID] == nil }
                    let found = try index.firstDecisions(missing.map(\.transactionID))
                    for t in missing {
                        guard let first = found[t.transactionID] else { continue }
                        answers[t.transactionID] = Self.answer(t, first)
                    }
                    if answers.count == accepted.count { break }
                }
                guard Date() < deadline else {
                    throw KafkaError(
                        "\(accepted.count - answers.count) of \(accepted.count) transactions were produced but not decided "
                            + "within \(timeout) s (the instances may be restarting or rebalancing); retry: a retry is "
                            + "answered with the first decision",
                        transient: true)
                }
                decided.wait(seconds: 0.001)
            }
            var processed = ProcessedBatch(sequence: 0)
            processed.transactions = accepted.map { answers[$0.transaction.transactionID]! }
            return (outcome, processed)
        }

        /// A decision another instance committed, as far as the index knows it (no features).
        static func answer(_ t: Transaction, _ first: FirstDecision) -> ProcessedTransaction {
            let decision = Decision(
                probability: first.probability, tier: first.tier, action: first.action, reasons: [],
                modelVersion: first.modelVersion)
            return ProcessedTransaction(
                transaction: t, features: FeatureVector(), decision: decision, latencyMicros: 0, partition: first.partition,
                offset: first.offset, sequence: 0)
        }
    }

    /// Whether the cluster can be reached: a metadata request every second (on a thread of its
    /// own), so that health checks and requests learn of an outage without waiting for it, and
    /// never block on the cluster themselves.
    /// `@unchecked Sendable`: the handle is librdkafka's (thread-safe); the status is `Locked`.
    public final class KafkaClusterWatch: @unchecked Sendable {
        private let handle: KafkaHandle
        private let state = Locked<String?>(nil)

        public init(_ endpoint: KafkaEndpoint) throws {
            handle = try KafkaHandle(endpoint, consumer: false, settings: [("log_level", "3")])
        }

        /// Why the cluster cannot be reached (nil: its metadata came within a second, last time).
        public var status: String? { state.withLock { $0 } }

        /// Checks every `seconds` until `stop` (call from a thread of its own); after each check
        /// that reached the cluster, `reachable` runs (what else should be refreshed then).
        public func run(until stop: StopSignal, wake: Doorbell, every seconds: Double = 1, reachable: () -> Void = {}) {
            while !stop.isStopped {
                do {
                    _ = try handle.partitionCounts(timeout: 1_000)
                    state.withLock { $0 = nil }
                    reachable()
                } catch {
                    state.withLock { $0 = "\(error)" }
                }
                wake.wait(seconds: seconds)
            }
        }
    }
#endif
