public import CardwatchCore
public import CardwatchFeatures

/// The runtime around the per-partition operators: it polls a consumer group member, folds
/// each partition's records into that partition's `PartitionOperator`, and commits the
/// batch's decisions with its input offsets through the `DecisionSink`, in one store
/// transaction. Backend-free: the log, the sink, the idempotency index and the checkpoints
/// are protocols (memory, SQLite; Kafka and PostgreSQL next).
///
/// Order: within a partition, a batch applies its labels first, then decides its
/// transactions; the sink keeps where each batch ended, and a replay follows those ends, so
/// it interleaves labels and transactions exactly as the live run did, whatever the batch
/// boundaries were. There is no order across partitions and none is needed: a partition's
/// state depends on its own records only.
///
/// Recovery: when a partition is assigned, its operator is its latest checkpoint plus a
/// replay (state only, nothing written) from the checkpoint's offsets to the sink's, and the
/// consumer seeks to the sink's offsets. When a commit fails, the operators it would have
/// moved are rebuilt the same way: an operator never keeps state the sink does not have.
///
/// Used from one thread.
public final class PartitionRuntime: RebalanceListener {
    /// The consumer group of Cardwatch's own runtimes.
    public static let defaultGroup = "processor"

    public struct Options: Sendable {
        /// The consumer group, and the key of its offsets in the sink.
        public var group = PartitionRuntime.defaultGroup
        /// Records per poll, at most.
        public var batchRecords = 8192
        /// Batches of a partition between two of its checkpoints.
        public var checkpointEvery = 64
        public var features = FeatureConfig()
        /// Commits on a thread of their own while the next batch is decided (one batch in
        /// flight, one waiting): deciding and committing overlap on two cores. A failed commit
        /// then rebuilds every held partition from the sink, since later batches may have moved them.
        public var pipelined = false
        /// When set, a transaction found in another partition than its card's by this
        /// partitioner is a dead letter, not decided: a log other producers write to (Kafka)
        /// may hold records keyed by something else, or placed by another partitioner, and a
        /// card whose history is split between partitions would be decided on part of it.
        public var cardPartitioner: KeyPartitioner?
        /// Reads transactions in the Confluent wire format (Avro), told apart from JSON by their
        /// first byte; without a schema source, each is a dead letter that says one is needed.
        public var avro = ConfluentAvroDecoder(source: nil)
        public init() {}
    }

    /// One held partition: its operator, the next offsets to fold, and checkpoint bookkeeping.
    struct PartitionTask {
        var op: PartitionOperator
        var next: PartitionOffsets
        var batchesSinceCheckpoint = 0
        var recordsSinceCheckpoint: Int64 = 0
        /// The size of the partition's last checkpoint.
        var checkpointBytes = 0

        /// Every `every` batches, but not before the records a restore would replay (about a
        /// microsecond each) outweigh writing the state again: with a million cards a
        /// checkpoint is a gigabyte, and the HTTP API commits a batch per handful of requests.
        func checkpointDue(every: Int) -> Bool {
            batchesSinceCheckpoint >= every && recordsSinceCheckpoint >= Int64(checkpointBytes / 64)
        }
    }

    public struct Counters: Sendable, Equatable {
        public var decided = 0
        public var alerts = 0
        public var labels = 0
        public var repeats = 0
        public var deadLetters = 0
        /// Records folded again to rebuild state (after an assignment or a failed commit).
        public var replayed = 0
        public var checkpoints = 0
        /// Checkpoints that could not be written (the batch committed; the older checkpoint stays).
        public var checkpointFailures = 0

        /// A committed batch counted in.
        mutating func add(_ batch: SinkBatch) {
            decided += batch.decisions.count
            alerts += batch.decisions.reduce(0) { $0 + ($1.decision.isAlert ? 1 : 0) }
            labels += batch.labels.count
            repeats += batch.repeats.count
            deadLetters += batch.deadLetters.count
        }
    }

    /// A transaction decided earlier in the same batch or replay: where its decision is in the batch.
    struct DecidedNow {
        var decision: Int?
    }

    public let options: Options
    public let consumer: any LogConsumer
    public let log: any LogReader
    public let sink: any DecisionSink
    public let index: (any DecisionIndex)?
    public let checkpoints: any CheckpointStore
    public let models: ProductionModel
    public let rules: RuleFile?
    /// The counters, committed batches only (the committer thread adds to them).
    public var counters: Counters { tally.withLock { $0 } }
    private let tally = Locked(Counters())
    /// Pipelined commits: the thread they run on, made again after a failure.
    private var committer: BatchingWorker<SinkBatch>?
    /// Checkpoints are serialized and written on a thread of their own from a copy of the
    /// operator (its arrays shared until the live one changes them): with a million cards a
    /// snapshot takes a second, which would otherwise hold up the batch (and the HTTP
    /// requests waiting for it). Only committed state is handed over.
    private var checkpointWriter: BatchingWorker<PendingCheckpoint>?

    private func checkpointWriterStarted() -> BatchingWorker<PendingCheckpoint> {
        if let checkpointWriter { return checkpointWriter }
        let store = checkpoints
        let group = options.group
        let tally = tally
        let writer = BatchingWorker<PendingCheckpoint>(name: "checkpoints", capacity: 4, onFailure: .isRemembered) { pending in
            // The newest of each partition; an older one waiting is superseded.
            var newest: [Int: PendingCheckpoint] = [:]
            for c in pending { newest[c.partition] = c }
            var failure: (any Error)?
            for c in newest.values.sorted(by: { $0.partition < $1.partition }) {
                do {
                    try store.save(
                        PartitionCheckpoint(partition: c.partition, offsets: c.offsets, state: c.op.checkpoint()), group: group)
                    tally.withLock { $0.checkpoints += 1 }
                } catch {
                    tally.withLock { $0.checkpointFailures += 1 }
                    failure = error
                }
            }
            if let failure { throw failure }
        }
        checkpointWriter = writer
        return writer
    }

    struct PendingCheckpoint: Sendable {
        var partition: Int
        var offsets: PartitionOffsets
        var op: PartitionOperator
    }
    private var tasks: [Int: PartitionTask] = [:]
    /// Held partitions whose operator must be rebuilt before the next batch.
    private var stale: Set<Int> = []
    private var transactionDecoder = TransactionJSONDecoder(policy: .log)

    public init(
        consumer: any LogConsumer, log: any LogReader, sink: any DecisionSink, index: (any DecisionIndex)?,
        checkpoints: any CheckpointStore, models: ProductionModel, rules: RuleFile? = nil, options: Options = Options()
    ) {
        self.consumer = consumer
        self.log = log
        self.sink = sink
        self.index = index
        self.checkpoints = checkpoints
        self.models = models
        self.rules = rules
        self.options = options
    }

    deinit {
        committer?.stop()
        checkpointWriter?.stop()
    }

    /// Joins the group.
    public func start() throws {
        // Transactions are read before labels: see `inAppendOrder`.
        try consumer.subscribe([.transactions, .labels], listener: self)
    }

    /// Takes part in a rebalance without consuming anything: partitions gained are restored now.
    public func rebalance() throws { _ = try consumer.poll(maxRecords: 0) }

    /// Waits until every batch decided so far is committed. After a failed commit, every held
    /// partition is rebuilt from the sink before the next batch, and the error is thrown.
    public func flush() throws {
        if let committer {
            do { try committer.flush() } catch {
                pipelineFailed()
                throw error
            }
        }
        // Written or not (counted in `checkpointFailures`): the stream goes on either way.
        try? checkpointWriter?.flush()
    }

    /// A pipelined commit failed: later batches folded into the operators on top of it.
    private func pipelineFailed() {
        committer?.stop()
        committer = nil
        stale.formUnion(tasks.keys)
    }

    /// Commits `batch`, or hands it to the committer thread.
    private func commit(_ batch: SinkBatch, waiting: Bool) throws {
        guard options.pipelined && !waiting else {
            // Batches handed over before commit first: the sink takes them in order.
            if waiting { try committer?.flush() }
            try sink.commit(batch)
            tally.withLock { $0.add(batch) }
            return
        }
        if committer == nil {
            let sink = sink
            let tally = tally
            committer = BatchingWorker(name: "sink-commits", capacity: 2) { batches in
                // Whatever waits goes in one store transaction.
                let merged = batches.count == 1 ? batches[0] : SinkBatch(merging: batches)
                try sink.commit(merged)
                tally.withLock { $0.add(merged) }
            }
        }
        try committer!.submit(batch)
    }

    /// Leaves the group: each held partition is checkpointed and given up.
    public func stop() throws {
        var failure: (any Error)?
        do { try flush() } catch { failure = error }
        committer?.stop()
        committer = nil
        try consumer.close()  // stale partitions are given up without a checkpoint
        if let failure { throw failure }
        try checkpointWriter?.flush()  // the last checkpoints written, or why not
    }

    /// The partitions this runtime holds now.
    public var partitions: [Int] { tasks.keys.sorted() }

    /// The operator of a held partition (for tests and benchmarks).
    public func partitionOperator(_ partition: Int) -> PartitionOperator? { tasks[partition]?.op }

    /// Polls, decides and commits one batch; how many records it consumed (0: nothing new).
    /// `waiting`: the batch is committed on this thread before the step returns, even when
    /// commits are pipelined (a caller that answers once its records are committed saves the
    /// hand-over to the committer's thread).
    @discardableResult
    public func step(waiting: Bool = false) throws -> Int {
        try restoreStale()
        let records = try consumer.poll(maxRecords: options.batchRecords)
        guard !records.isEmpty else { return 0 }
        return try process(records, polled: true) { try self.commit($0, waiting: waiting) }
    }

    /// Where a held partition's operator stands (nil: not held, or to be rebuilt).
    public func position(_ partition: Int) -> PartitionOffsets? {
        stale.contains(partition) ? nil : tasks[partition]?.next
    }

    /// Decides transactions the caller appended itself, next in their partitions (each
    /// partition's first at `position(p)`, no label of it unfolded), without polling them:
    /// `commit` writes the batch, with the append where the store can (one transaction for
    /// the embedded log and warehouse). It is called once the operators have decided, never
    /// while they run; when it throws, the partitions it would have moved are rebuilt before
    /// the next batch. The batches handed to the committer before are committed first.
    /// `decoded`: the records' transactions, when the caller has them (they are not decoded again).
    public func decide(
        appended records: [LogRecord], decoded: [Transaction]? = nil, commit: (SinkBatch) throws -> Void
    ) throws -> Int {
        if let decoded, decoded.count != records.count {
            throw PipelineError("\(records.count) records appended, \(decoded.count) transactions given for them")
        }
        try restoreStale()
        for r in records where r.topic != .transactions || position(r.partition) == nil {
            throw PipelineError("\(r.topic.rawValue)[\(r.partition)] offset \(r.offset) is not a transaction of a held partition")
        }
        try committer?.flush()
        let consumed = try process(records, polled: false, decoded: decoded) { batch in
            try commit(batch)
            tally.withLock { $0.add(batch) }
        }
        // Never polled: the consumer goes past them.
        for p in Set(records.map(\.partition)) {
            if let next = position(p) { try consumer.seek(.transactions, partition: p, to: next.transactions) }
        }
        return consumed
    }

    /// Rebuilds the partitions a failed batch moved, from what the sink holds.
    private func restoreStale() throws {
        guard !stale.isEmpty else { return }
        try flush()
        for p in stale.sorted() {
            try restore(p)
            stale.remove(p)
        }
    }

    /// Folds `records` (polled: cut to a prefix of each partition's append order) into their
    /// partitions' operators and commits the batch with `commit`.
    private func process(
        _ records: [LogRecord], polled: Bool, decoded: [Transaction]? = nil, commit: (SinkBatch) throws -> Void
    ) throws -> Int {
        // The given transactions, by place (records come in any order of partitions).
        var given: [LogPosition: Transaction] = [:]
        if let decoded {
            for (r, t) in zip(records, decoded) { given[LogPosition(partition: r.partition, offset: r.offset)] = t }
        }
        let model = models.current.scorer
        let rules = rules?.current() ?? RuleBook()
        var byPartition: [Int: (labels: [LogRecord], transactions: [LogRecord])] = [:]
        for r in records {
            switch r.topic {
            case .labels: byPartition[r.partition, default: ([], [])].labels.append(r)
            case .transactions: byPartition[r.partition, default: ([], [])].transactions.append(r)
            case .alerts, .transactionsDLQ: throw PipelineError("the runtime does not consume \(r.topic.rawValue)")
            }
        }
        var out: SinkBatch? = SinkBatch(group: options.group)
        var moved: [Int: PartitionTask] = [:]
        var decidedNow: [String: DecidedNow] = [:]
        // Taken out of the table while they change, so that their state is not copied.
        for (p, records) in byPartition.sorted(by: { $0.key < $1.key }) {
            guard var task = tasks.removeValue(forKey: p) else {
                try abandon(moved, polled: byPartition.keys)
                throw PipelineError("the consumer returned records of partition \(p), which this runtime does not hold")
            }
            let from = task.next
            do {
                let (labels, transactions) =
                    polled
                    ? try inAppendOrder(p, records.labels, records.transactions, next: from)
                    : (records.labels[...], records.transactions[...])
                try fold(p, labels, transactions, &task, &decidedNow, &out, model: model, rules: rules, given: given)
                // What was polled but waits for a record not polled yet is read again at the next poll.
                if let last = records.labels.last, task.next.labels <= last.offset {
                    try consumer.seek(.labels, partition: p, to: task.next.labels)
                }
                if let last = records.transactions.last, task.next.transactions <= last.offset {
                    try consumer.seek(.transactions, partition: p, to: task.next.transactions)
                }
            } catch {
                moved[p] = task
                try abandon(moved, polled: byPartition.keys)
                throw error
            }
            out?.consumed.append(ConsumedRange(partition: p, from: from, to: task.next))
            moved[p] = task
        }
        guard var batch = out else { return 0 }
        let consumed = batch.consumed.reduce(0) {
            $0 + Int($1.to.transactions - $1.from.transactions + $1.to.labels - $1.from.labels)
        }
        AlertExplainer.explain(&batch.decisions, scorer: model)
        let now = Timestamp.now.microseconds
        for i in batch.decisions.indices { batch.decisions[i].decision.decidedAt = now }
        for range in batch.consumed {
            moved[range.partition]?.batchesSinceCheckpoint += 1
            moved[range.partition]?.recordsSinceCheckpoint +=
                range.to.transactions - range.from.transactions + range.to.labels - range.from.labels
        }
        do {
            try commit(batch)
            // A checkpoint holds only committed state.
            if options.pipelined, moved.values.contains(where: { $0.checkpointDue(every: options.checkpointEvery) }) {
                try committer?.flush()
            }
        } catch {
            try abandon(moved, polled: byPartition.keys)
            // A pipelined commit that failed may have been an earlier batch's: every operator
            // folded on top of it. (Appended records are committed after a flush, on this thread.)
            if options.pipelined && polled { pipelineFailed() }
            throw error
        }
        for (p, var task) in moved {
            if task.checkpointDue(every: options.checkpointEvery) {
                // The batch is committed whatever happens to this: a checkpoint that cannot be
                // written (a full disk) leaves the older one and a longer replay.
                try checkpoint(p, &task)
            }
            tasks[p] = task
        }
        return consumed
    }

    // MARK: Append order

    /// Whether `a` was appended before `b` (the two topics of one partition): by append time,
    /// a transaction before a label appended in the same microsecond, then by offset.
    static func precedes(_ a: LogRecord, _ b: LogRecord) -> Bool {
        if a.appendedAt != b.appendedAt { return a.appendedAt < b.appendedAt }
        if a.topic != b.topic { return a.topic == .transactions }
        return a.offset < b.offset
    }

    /// The polled records of a partition that come before every record of the other topic not
    /// polled yet: folded in append order, they are a prefix of the partition's stream, so a
    /// label takes effect between the same transactions however the polls cut the log. This
    /// log commits appends in the order of their times, the consumer reads transactions before
    /// labels, and the records after the polled ones are looked at last: whatever was appended
    /// before a polled record is seen here.
    private func inAppendOrder(
        _ p: Int, _ labels: [LogRecord], _ transactions: [LogRecord], next: PartitionOffsets
    ) throws -> (labels: ArraySlice<LogRecord>, transactions: ArraySlice<LogRecord>) {
        var keptLabels = labels[...]
        var keptTransactions = transactions[...]
        if !labels.isEmpty,
            let bound = try log.read(
                .transactions, partition: p, from: transactions.last.map { $0.offset + 1 } ?? next.transactions, limit: 1
            ).first
        {
            keptLabels = labels.prefix { Self.precedes($0, bound) }
        }
        if !transactions.isEmpty,
            let bound = try log.read(.labels, partition: p, from: labels.last.map { $0.offset + 1 } ?? next.labels, limit: 1)
                .first
        {
            keptTransactions = transactions.prefix { Self.precedes($0, bound) }
        }
        return (keptLabels, keptTransactions)
    }

    /// A batch that will not commit: the operators it moved are past what the sink holds and
    /// are rebuilt before the next batch; the partitions it polled but did not reach go back
    /// to where their operators are.
    private func abandon(_ moved: [Int: PartitionTask], polled: some Collection<Int>) throws {
        for (p, task) in moved {
            tasks[p] = task
            stale.insert(p)
        }
        for p in polled where moved[p] == nil {
            guard let next = tasks[p]?.next else { continue }
            try consumer.seek(.labels, partition: p, to: next.labels)
            try consumer.seek(.transactions, partition: p, to: next.transactions)
        }
    }

    // MARK: Rebalancing

    public func assigned(_ partitions: [Int]) throws {
        try flush()
        for p in partitions {
            stale.remove(p)
            try restore(p)
        }
    }

    public func revoked(_ partitions: [Int]) throws {
        var failure: (any Error)?
        // Checkpoints hold committed state only: a failure here makes every partition stale.
        do { try flush() } catch { failure = error }
        for p in partitions {
            // A stale operator holds state its sink never got: given up without a checkpoint.
            let wasStale = stale.remove(p) != nil
            guard var task = tasks.removeValue(forKey: p) else { continue }
            // Otherwise everything folded is committed (a batch commits before the next poll):
            // a checkpoint here spares the next owner a replay.
            if !wasStale && task.batchesSinceCheckpoint > 0 {
                do { try checkpoint(p, &task) } catch { failure = failure ?? error }
            }
        }
        if let failure { throw failure }
    }

    /// Hands the partition's committed state to the checkpoint writer.
    private func checkpoint(_ p: Int, _ task: inout PartitionTask) throws {
        try checkpointWriterStarted().submit(PendingCheckpoint(partition: p, offsets: task.next, op: task.op))
        task.batchesSinceCheckpoint = 0
        task.recordsSinceCheckpoint = 0
        task.checkpointBytes = task.op.state.snapshotSizeEstimate
    }

    /// The partition's operator from its latest checkpoint and a replay up to the sink's
    /// offsets; the consumer is moved there.
    private func restore(_ p: Int) throws {
        tasks[p] = nil
        let checkpoint = try checkpoints.latest(group: options.group, partition: p)
        var task = PartitionTask(
            op: try checkpoint.map { try PartitionOperator(checkpoint: $0.state) }
                ?? PartitionOperator(config: options.features),
            next: checkpoint?.offsets ?? .start, checkpointBytes: checkpoint?.state.count ?? 0)
        let target = try sink.offsets(group: options.group, partition: p) ?? .start
        guard target.reaches(task.next) else {
            throw PipelineError(
                "partition \(p)'s checkpoint is at \(task.next), ahead of the sink's offsets (\(target)): "
                    + "the checkpoints belong to another store")
        }
        var decidedNow: [String: DecidedNow] = [:]
        var none: SinkBatch? = nil
        for end in try sink.batchEnds(group: options.group, partition: p, after: task.next) where target.reaches(end) {
            let labels = try readExactly(.labels, p, from: task.next.labels, to: end.labels)
            let transactions = try readExactly(.transactions, p, from: task.next.transactions, to: end.transactions)
            try fold(p, labels[...], transactions[...], &task, &decidedNow, &none, model: nil, rules: RuleBook())
            tally.withLock { $0.replayed += labels.count + transactions.count }
        }
        guard task.next == target else {
            throw PipelineError(
                "partition \(p): the sink's batch ends stop at \(task.next), short of its offsets (\(target))")
        }
        try consumer.seek(.labels, partition: p, to: target.labels)
        try consumer.seek(.transactions, partition: p, to: target.transactions)
        tasks[p] = task
    }

    private func readExactly(_ topic: Topic, _ p: Int, from: Int64, to end: Int64) throws -> [LogRecord] {
        var out: [LogRecord] = []
        var at = from
        while at < end {
            let chunk = try log.read(topic, partition: p, from: at, limit: Int(min(end - at, 65_536)))
            guard let last = chunk.last, chunk.first?.offset == at else {
                throw PipelineError("\(topic.rawValue)[\(p)] ends before offset \(end), which the sink has committed")
            }
            out += chunk
            at = last.offset + 1
        }
        return out
    }

    // MARK: The fold

    /// Folds one partition's records, labels first, into `task`. With a batch (`out`), the
    /// transactions are decided with `model` and the outputs recorded; without (a replay),
    /// only the state changes, and repeats and undecodable records are skipped as they were.
    private func fold(
        _ p: Int, _ labels: ArraySlice<LogRecord>, _ transactions: ArraySlice<LogRecord>, _ task: inout PartitionTask,
        _ decidedNow: inout [String: DecidedNow], _ out: inout SinkBatch?, model: Scorer?, rules: RuleBook,
        given: [LogPosition: Transaction] = [:]
    ) throws {
        var label = labels.startIndex
        /// Folds the labels appended before `bound` (all that are left, without one).
        func applyLabels(before bound: LogRecord?) throws {
            while label < labels.endIndex, bound.map({ Self.precedes(labels[label], $0) }) ?? true {
                let r = labels[label]
                label += 1
                guard r.offset == task.next.labels else { throw gap(r, expected: task.next.labels) }
                task.next.labels += 1
                switch RoutedLabel.decode(r.payload) {
                case .success(let routed):
                    let matched = task.op.apply(routed)
                    out?.labels.append(AppliedLabel(label: routed, matched: matched, partition: p, offset: r.offset))
                case .failure(let e):
                    out?.deadLetters.append(deadLetter(r, e))
                }
            }
        }
        var decoded: [Result<Transaction, RecordError>] = []
        decoded.reserveCapacity(transactions.count)
        for r in transactions {
            if let t = given.isEmpty ? nil : given[LogPosition(partition: r.partition, offset: r.offset)] {
                decoded.append(.success(t))
            } else if ConfluentAvroDecoder.isFramed(r.payload) {
                // A registry that cannot be asked fails the batch (tried again); never a dead letter.
                decoded.append(
                    try options.avro.json(r.payload).flatMap { json in json.withUnsafeBytes { transactionDecoder.decode($0) } })
            } else {
                decoded.append(r.payload.withUnsafeBytes { transactionDecoder.decode($0) })
            }
        }
        var firsts: [String: FirstDecision] = [:]
        if let index {
            firsts = try index.firstDecisions(decoded.compactMap { try? $0.get().transactionID })
        }
        for (r, result) in zip(transactions, decoded) {
            try applyLabels(before: r)
            guard r.offset == task.next.transactions else { throw gap(r, expected: task.next.transactions) }
            task.next.transactions += 1
            let t: Transaction
            switch result {
            case .success(let value): t = value
            case .failure(let e):
                out?.deadLetters.append(deadLetter(r, e))
                continue
            }
            if let partitioner = options.cardPartitioner,
                case let home = partitioner.partition(forKey: t.cardID, partitions: log.partitions), home != p
            {
                let problem =
                    "card \(t.cardID) belongs to partition \(home) (\(partitioner.rawValue) of card_id over \(log.partitions) "
                    + "partitions), not \(p): produce keyed by card_id with the \(partitioner.rawValue) partitioner "
                    + "(librdkafka: partitioner=murmur2_random), or the card's history splits between partitions"
                out?.deadLetters.append(deadLetter(r, RecordError(issues: [FieldIssue(field: "card_id", problem: problem)])))
                continue
            }
            if let first = firsts[t.transactionID], first.partition != p || first.offset != r.offset {
                out?.repeats.append(
                    RepeatedTransaction(transactionID: t.transactionID, partition: p, offset: r.offset, first: first))
                continue
            }
            if let earlier = decidedNow[t.transactionID] {
                // Decided earlier in this batch (or replay): a repeat of that one.
                if let i = earlier.decision, let d = out?.decisions[i] {
                    let first = FirstDecision(partition: d.partition, offset: d.offset, decision: d.decision)
                    out?.repeats.append(
                        RepeatedTransaction(transactionID: t.transactionID, partition: p, offset: r.offset, first: first))
                }
                continue
            }
            guard let model else {
                _ = task.op.update(t)
                decidedNow[t.transactionID] = DecidedNow(decision: nil)
                continue
            }
            // Alerts are explained for the whole batch at once, on both cores (`AlertExplainer`).
            let (features, decision) = task.op.decide(t, model: model, rules: rules, explain: false)
            decidedNow[t.transactionID] = DecidedNow(decision: out?.decisions.count)
            out?.decisions.append(
                DecidedTransaction(
                    transaction: t, features: features, decision: decision, partition: p, offset: r.offset,
                    appendedAt: r.appendedAt))
        }
        try applyLabels(before: nil)
    }

    private func gap(_ r: LogRecord, expected: Int64) -> PipelineError {
        PipelineError(
            "\(r.topic.rawValue)[\(r.partition)]: the consumer returned offset \(r.offset) where offset \(expected) was next")
    }

    private func deadLetter(_ r: LogRecord, _ e: RecordError) -> DeadLetter {
        DeadLetter(source: "log:\(r.topic.rawValue)[\(r.partition)]", line: Int(r.offset), issues: e.issues, raw: r.payload)
    }
}
