#if Kafka
    public import CardwatchCore
    public import CardwatchPipeline

    /// The ingest side on Kafka: `cardwatch import FILE --log kafka://…` and `cardwatch generate
    /// --out kafka://…` produce through it (the `Ingestor` unchanged). Valid records go to
    /// `transactions` keyed by card id, invalid ones to `transactions.dlq` with their reasons;
    /// the instances of the consumer group decide them.
    ///
    /// Labels go to `labels`, routed to their transaction's card (`RoutedLabel`), which Kafka
    /// cannot be asked for by transaction id: the transactions produced by this run are
    /// remembered (with `remembersTransactions`: an import with labels), the others are looked
    /// up with `lookup` (the warehouse's decisions); a label found by neither is produced keyed
    /// by its transaction id and changes no state, as on the embedded log.
    ///
    /// Kafka keeps no duplicate check nor resume position here: an import run again produces
    /// its records again, and the runtime answers a repeated transaction id with its first
    /// decision (a repeat, never decided twice).
    public struct KafkaIngestStore: PipelineStore {
        public let kafka: KafkaLog
        public var log: any EventLog { kafka }
        /// The card, merchant and time of each transaction produced (nil: not remembered).
        let produced: Locked<[String: LabelTarget]>?
        let lookup: (@Sendable ([String]) throws -> [String: LabelTarget])?

        public init(
            log: KafkaLog, remembersTransactions: Bool = false,
            lookup: (@Sendable ([String]) throws -> [String: LabelTarget])? = nil
        ) {
            kafka = log
            produced = remembersTransactions ? Locked([:]) : nil
            self.lookup = lookup
        }

        public func ingest(_ batch: IngestBatch) throws -> IngestOutcome {
            _ = try kafka.produce(
                .transactions, batch.records.map { OutgoingRecord(key: $0.transaction.cardID, payload: $0.payload) })
            _ = try kafka.produce(.transactionsDLQ, batch.deadLetters.map(KafkaOutputSink.deadLetter))
            produced?.withLock { known in
                for r in batch.records { known[r.transaction.transactionID] = LabelTarget(r.transaction) }
            }
            var outcome = IngestOutcome()
            outcome.accepted = batch.records.count
            outcome.deadLetters = batch.deadLetters.count
            return outcome
        }

        public func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
            _ = try kafka.produce(.labels, try route(labels).map { OutgoingRecord(key: $0.key, payload: $0.payload) })
        }

        /// The labels with their transactions' cards, as far as they are known.
        public func route(_ labels: [LabelEvent]) throws -> [RoutedLabel] {
            var targets: [String: LabelTarget] = [:]
            produced?.withLock { known in
                for l in labels { targets[l.transactionID] = known[l.transactionID] }
            }
            let missing = Array(Set(labels.map(\.transactionID)).subtracting(targets.keys))
            if let lookup, !missing.isEmpty { targets.merge(try lookup(missing)) { a, _ in a } }
            return labels.map { RoutedLabel($0, target: targets[$0.transactionID]) }
        }

        public func resumePosition(source: String) throws -> Int64? { nil }
    }
#endif
