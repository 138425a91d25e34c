#if Kafka
    public import CardwatchPipeline
    import CardwatchCore

    /// The decision sink of a runtime on Kafka: a batch's alerts go to the `alerts` topic (keyed
    /// by transaction id), every decision to `decisions` when the log has it, and its dead
    /// letters to `transactions.dlq` (their reasons in headers),
    /// delivered before the warehouse's commit; then the warehouse commits the batch with its
    /// offsets (the exactly-once part), and the offsets go to the group in Kafka for lag tools.
    ///
    /// Produced before the commit, so a crash in between produces them again when the batch is
    /// decided again: at least once, each alert's payload the same every time (no decision
    /// time in it), so a consumer dedupes by key. Produced after the commit, a crash in between
    /// would lose them.
    public struct KafkaOutputSink: DecisionSink {
        public let inner: any DecisionSink
        public let log: KafkaLog
        /// Told the partitions' new offsets after each commit (the consumer's `offsetCommits`).
        public let committed: @Sendable ([ConsumedRange]) -> Void

        public init(inner: any DecisionSink, log: KafkaLog, committed: @escaping @Sendable ([ConsumedRange]) -> Void) {
            self.inner = inner
            self.log = log
            self.committed = committed
        }

        public func commit(_ batch: SinkBatch) throws {
            _ = try log.produce(.alerts, batch.decisions.filter(\.decision.isAlert).map(Self.decided))
            if log.producesDecisions { try log.produceDecisions(batch.decisions.map(Self.decided)) }
            _ = try log.produce(.transactionsDLQ, batch.deadLetters.map(Self.deadLetter))
            try inner.commit(batch)
            committed(batch.consumed)
        }

        public func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
            try inner.offsets(group: group, partition: partition)
        }

        public func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
            try inner.batchEnds(group: group, partition: partition, after: after)
        }

        /// A decision as `alerts` (and `decisions`) carry it: keyed by transaction id, without
        /// the decision time, so deciding the batch again produces the same record.
        static func decided(_ d: DecidedTransaction) -> OutgoingRecord {
            OutgoingRecord(
                key: d.transaction.transactionID,
                payload: WarehouseRows.alertJSON(
                    d.transaction, d.decision, reasons: WarehouseRows.reasonsJSON(d.decision.reasons), decidedAt: nil))
        }

        /// A dead letter as `transactions.dlq` carries it: the JSON record (source, line,
        /// reasons, raw), keyed by its source, with one `reason` header per problem.
        static func deadLetter(_ d: DeadLetter) -> OutgoingRecord {
            OutgoingRecord(
                key: d.source, payload: WarehouseRows.deadLetterJSON(d),
                headers: [("source", d.source)] + d.issues.map { ("reason", "\($0.field): \($0.problem)") })
        }
    }
#endif
