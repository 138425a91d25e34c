#if Kafka
    public import CardwatchCore
    public import CardwatchPipeline

    /// The ingest side on Kafka: `cardwatch import FILE --log kafka://…` and `cardwatch generate
    /// --out kafka://…` produce through it (the `Ingestor` unchanged). Valid records go to
    /// `transactions` keyed by card id, invalid ones to `transactions.dlq` with their reasons;
    /// the instances of the consumer group decide them.
    ///
    /// Kafka keeps no duplicate check nor resume position here: an import run again produces
    /// its records again, and the runtime answers a repeated transaction id with its first
    /// decision (a repeat, never decided twice). Labels are not taken yet: a label record
    /// is routed to its transaction's card, which the embedded log looks up in its own store.
    public struct KafkaIngestStore: PipelineStore {
        public let kafka: KafkaLog
        public var log: any EventLog { kafka }

        public init(log: KafkaLog) { kafka = log }

        public func ingest(_ batch: IngestBatch) throws -> IngestOutcome {
            _ = try kafka.produce(
                .transactions, batch.records.map { OutgoingRecord(key: $0.transaction.cardID, payload: $0.payload) })
            _ = try kafka.produce(.transactionsDLQ, batch.deadLetters.map(KafkaOutputSink.deadLetter))
            var outcome = IngestOutcome()
            outcome.accepted = batch.records.count
            outcome.deadLetters = batch.deadLetters.count
            return outcome
        }

        public func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
            throw KafkaError(
                "labels are not produced to Kafka by Cardwatch yet (\(labels.count) from \(source)): a label is routed "
                    + "to its transaction's card, which only the embedded log can look up")
        }

        public func resumePosition(source: String) throws -> Int64? { nil }
    }
#endif
