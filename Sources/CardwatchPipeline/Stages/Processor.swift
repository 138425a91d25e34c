import CardwatchCore
public import CardwatchFeatures
import Dispatch
import Foundation
import Synchronization

/// The stream processor: reads the `transactions` and `labels` logs in arrival order,
/// computes features, scores and decides, and commits every output with its input
/// offsets in one store transaction (consumer group `processor`).
///
/// Exactly once: a batch's outputs, offsets and position commit together, so after a
/// crash every batch is either wholly in the warehouse or not at all. The feature state
/// is not written every batch (with a million cards it is hundreds of megabytes): a
/// checkpoint is taken every `checkpointEvery` batches, and a restart restores it and
/// replays the arrivals committed after it through the engine, without writing
/// anything. Because records are consumed in arrival order (the order the appends
/// happened, kept by the store), the replay and an uninterrupted run see the same
/// sequence whatever the batch boundaries were.
public final class Processor {
    public static let group = "processor"
    public let store: any PipelineStore
    /// The store's log, which the processor reads.
    let log: any EventLog
    /// The state and the step: one operator, the log's partitions taken together in arrival order.
    public private(set) var partitionOperator: PartitionOperator
    public private(set) var scorer: Scorer
    public let rules: RuleFile?
    /// Records per batch, at least (whole arrivals are taken).
    public var batchRecords: Int
    public var checkpointEvery: Int
    /// The last committed arrival.
    public private(set) var position: Int64 = 0
    private var next: [Int64]
    private var nextLabel: [Int64]
    private var sinceCheckpoint = 0
    /// Records processed since the last checkpoint, and the size of that checkpoint.
    private var recordsSinceCheckpoint = 0
    private var lastCheckpointBytes = 0
    let pendingModel = PendingModel()
    /// Shared counters of the running pipeline, when there is one.
    public var state: PipelineState?
    /// The log holds records accepted by the rules of their day: read back as such.
    private var transactionDecoder = TransactionJSONDecoder(policy: .log)
    private var labelDecoder = LabelJSONDecoder()
    /// Counters for the summary.
    public private(set) var processed = 0
    public private(set) var alerts = 0
    public private(set) var replayed = 0
    /// Called with every batch once it is committed, on the writer's thread (for synchronous
    /// answers and live views: metrics, WebSocket).
    public var onCommit: (@Sendable (ProcessedBatch) -> Void)? {
        get { writer.onCommit?.call }
        set { writer.setOnCommit(newValue.map(CommitCallback.init)) }
    }
    /// Commits batches behind the processor; see `BatchWriter`.
    private var writer: BatchWriter!
    /// Transactions of batches handed to the writer and perhaps not committed yet, for label
    /// lookups (the store only knows committed ones): the batch's last arrival, id → (merchant, time).
    private var uncommitted: [(last: Int64, transactions: [ProcessedTransaction])] = []

    public init(
        store: any PipelineStore, scorer: Scorer, rules: RuleFile? = nil, config: FeatureConfig = FeatureConfig(),
        batchRecords: Int = 8192, checkpointEvery: Int = 64
    ) throws {
        self.store = store
        log = store.log
        self.scorer = scorer
        self.rules = rules
        self.batchRecords = max(1, batchRecords)
        self.checkpointEvery = max(1, checkpointEvery)
        partitionOperator = try PartitionOperator(config: config)
        next = [Int64](repeating: 0, count: log.partitions)
        nextLabel = next
        try recover()
        // Two full batches wait at most (import), or any number of small ones (HTTP).
        writer = BatchWriter(store: store, capacity: 2 * self.batchRecords, committed: position)
    }

    deinit { writer?.stop() }

    /// Hands the processor a new model; it takes effect at the next batch boundary, so no
    /// batch mixes models and the stream never pauses.
    public func swapModel(_ scorer: Scorer) { pendingModel.set(scorer) }

    /// Restores the checkpoint and replays the arrivals committed after it.
    func recover() throws {
        for p in 0..<log.partitions {
            next[p] = try log.committedOffset(group: Self.group, topic: .transactions, partition: p) ?? 0
            nextLabel[p] = try log.committedOffset(group: Self.group, topic: .labels, partition: p) ?? 0
        }
        let committed = try store.processorPosition()
        var replayFrom: Int64 = 0
        if let checkpoint = try store.latestCheckpoint(atMost: committed) {
            partitionOperator = try PartitionOperator(checkpoint: checkpoint.state)
            replayFrom = checkpoint.arrival
            lastCheckpointBytes = checkpoint.state.count
        }
        guard replayFrom < committed else {
            position = committed
            return
        }
        // Offsets at the checkpoint: the committed ones minus what the replayed arrivals hold.
        var arrivals: [Arrival] = []
        var after = replayFrom
        while after < committed {
            let chunk = try store.arrivals(after: after, records: batchRecords).filter { $0.id <= committed }
            guard let last = chunk.last else { break }
            arrivals += chunk
            after = last.id
        }
        var tOffsets = next
        var lOffsets = nextLabel
        for arrival in arrivals {
            for e in arrival.entries {
                if e & Arrival.labelBit != 0 { lOffsets[Int(e & ~Arrival.labelBit)] -= 1 } else { tOffsets[Int(e)] -= 1 }
            }
        }
        // Replayed a batch's worth of records at a time: with rare checkpoints there can be millions.
        var start = 0
        while start < arrivals.count {
            var end = start
            var count = 0
            while end < arrivals.count && (count == 0 || count + arrivals[end].entries.count <= batchRecords) {
                count += arrivals[end].entries.count
                end += 1
            }
            let chunk = Array(arrivals[start..<end])
            for r in try read(chunk, transactions: tOffsets, labels: lOffsets) {
                switch r.item {
                case .transaction(let t, let partition, _, _):
                    _ = partitionOperator.update(t)
                    tOffsets[partition] += 1
                    replayed += 1
                case .label(let label, let partition):
                    lOffsets[partition] += 1
                    let known = try store.processedTransactions([label.transactionID], before: r.arrival)
                    if let t = known[label.transactionID] {
                        partitionOperator.apply(
                            LabelFact(merchantID: t.merchantID, transactionTime: t.time, isFraud: label.isFraud))
                    }
                }
            }
            start = end
        }
        position = committed
    }

    /// Processes one batch; returns how many transactions and labels it consumed (0: nothing new).
    @discardableResult
    public func step() throws -> Int {
        if let swapped = pendingModel.take() { scorer = swapped }
        try writer.check()
        let committed = writer.committed
        uncommitted.removeAll { $0.last <= committed }
        let records: [(arrival: Int64, item: Item)]
        if let recent = store.recentArrivals(after: position, records: batchRecords) {
            records = try fromMemory(recent)
        } else {
            records = try read(try store.arrivals(after: position, records: batchRecords), transactions: next, labels: nextLabel)
        }
        guard let out = try decide(records) else { return 0 }
        try writer.submit(out)
        uncommitted.append((out.arrivals.upperBound, out.transactions))
        advance(past: out)
        return records.count
    }

    /// Appends `batch` to the log and decides its transactions in the same store transaction,
    /// on the caller's thread: the HTTP API's synchronous path, where an append, a wake-up of
    /// the processor and a second commit by the writer cost more than the decisions. Whatever
    /// other writers appended before is processed first, so the arrival order holds. Returns
    /// the ingest's outcome and the committed batch (its transactions in the order of the
    /// accepted records; nil when none was accepted), which has also reached `onCommit`.
    public func ingestAndDecide(_ batch: IngestBatch) throws -> (IngestOutcome, ProcessedBatch?) {
        if let swapped = pendingModel.take() { scorer = swapped }
        while true {
            // Batches decided earlier commit first: the processor's position moves in order.
            try writer.flush()
            var decided: ProcessedBatch?
            do {
                let outcome = try store.ingest(batch) { previous, arrival in
                    guard previous == position else { throw Behind() }
                    decided = try decide(try fromMemory([arrival]))
                    return decided
                }
                if let out = decided {
                    advance(past: out)
                    writer.committedElsewhere(out)
                }
                return (outcome, decided)
            } catch is Behind {
                // Another writer's arrivals came first (nothing was appended): process them, then append again.
                while try step() > 0 {}
            }
        }
    }

    /// Thrown from inside `ingestAndDecide`'s store transaction to roll it back.
    private struct Behind: Error {}

    /// Features, scores and decisions for `records` (in arrival order), the labels applied:
    /// the batch to commit, or nil when there are no records.
    private func decide(_ records: [(arrival: Int64, item: Item)]) throws -> ProcessedBatch? {
        guard let first = records.first?.arrival, let last = records.last?.arrival else { return nil }
        let rules = rules?.current() ?? RuleBook()
        var out = ProcessedBatch(arrivals: first...last, transactionOffsets: next, labelOffsets: nextLabel)
        out.transactions.reserveCapacity(records.count)
        // Transactions a label may refer to that the store does not have yet (this batch so far,
        // batches still with the writer), indexed only when a label comes.
        var seen: [String: (merchantID: String, time: Timestamp)] = [:]
        var indexed = 0
        var indexedUncommitted = false
        // One copy for the batch (the model is swapped between batches): read from the
        // property, the scorer was copied and destroyed for every transaction.
        let scorer = scorer
        for r in records {
            switch r.item {
            case .transaction(let t, let partition, let offset, let appendedAt):
                var (features, decision) = partitionOperator.decide(t, model: scorer, rules: rules, explain: false)
                let now = Self.nowMicros()
                decision.decidedAt = now
                out.transactions.append(
                    ProcessedTransaction(
                        transaction: t, features: features, decision: decision, latencyMicros: max(0, now - appendedAt),
                        partition: partition, offset: offset, arrival: r.arrival))
                out.transactionOffsets[partition] = offset + 1
            case .label(let label, let partition):
                out.labelOffsets[partition] += 1
                // Resolve now: a label counts from its place in the arrival order on.
                if !indexedUncommitted {
                    for batch in uncommitted {
                        for p in batch.transactions {
                            seen[p.transaction.transactionID] = (p.transaction.merchantID, p.transaction.timestamp)
                        }
                    }
                    indexedUncommitted = true
                }
                while indexed < out.transactions.count {
                    let p = out.transactions[indexed].transaction
                    seen[p.transactionID] = (p.merchantID, p.timestamp)
                    indexed += 1
                }
                var known = seen[label.transactionID]
                if known == nil {
                    known = try store.processedTransactions([label.transactionID], before: first)[label.transactionID]
                }
                if let t = known {
                    partitionOperator.apply(
                        LabelFact(merchantID: t.merchantID, transactionTime: t.time, isFraud: label.isFraud))
                }
                out.labels.append(ProcessedLabel(label: label, matched: known != nil, arrival: r.arrival))
            }
        }
        AlertExplainer.explain(&out.transactions, scorer: scorer)
        sinceCheckpoint += 1
        recordsSinceCheckpoint += records.count
        // Every `checkpointEvery` batches, but not before the records a restart would replay
        // (about a microsecond each) outweigh writing the state again: with a million cards
        // the snapshot is a gigabyte, and replaying is cheaper than writing it often.
        if sinceCheckpoint >= checkpointEvery && recordsSinceCheckpoint >= lastCheckpointBytes / 64 {
            out.checkpoint = partitionOperator.state
            lastCheckpointBytes = partitionOperator.state.snapshotSizeEstimate
            sinceCheckpoint = 0
            recordsSinceCheckpoint = 0
        }
        out.decidedAt = Self.nowMicros()
        return out
    }

    /// Moves past a decided batch: position, offsets, counters.
    private func advance(past out: ProcessedBatch) {
        position = out.arrivals.upperBound
        next = out.transactionOffsets
        nextLabel = out.labelOffsets
        let alerts = out.transactions.reduce(0) { $0 + ($1.decision.isAlert ? 1 : 0) }
        processed += out.transactions.count
        self.alerts += alerts
        if let state {
            state.processed.add(out.transactions.count, ordering: .relaxed)
            state.alerts.add(alerts, ordering: .relaxed)
            state.labels.add(out.labels.count, ordering: .relaxed)
        }
    }

    /// Writes a checkpoint now (at a clean stop), so the next start replays nothing, and
    /// commits a final batch, so the store's aggregates are complete.
    public func checkpoint() throws {
        try writer.flush()
        guard position > 0 else { return }
        // Marked final either way: the store writes what it keeps behind (card profiles).
        var out = ProcessedBatch(arrivals: position...position, transactionOffsets: next, labelOffsets: nextLabel)
        out.final = true
        if sinceCheckpoint > 0 {
            out.checkpoint = partitionOperator.state
            lastCheckpointBytes = partitionOperator.state.snapshotSizeEstimate
        }
        try store.commit(out)
        try store.waitForCheckpoints()
        sinceCheckpoint = 0
        recordsSinceCheckpoint = 0
    }

    /// From each record's append to the commit of its decision.
    public var latencies: LatencyRecorder { writer.latencies }

    /// Waits until every decided batch is committed.
    public func flush() throws { try writer.flush() }

    /// How many transactions wait in the log for this processor.
    public func lag() throws -> Int64 {
        var lag: Int64 = 0
        for p in 0..<log.partitions { lag += try log.endOffset(.transactions, partition: p) - next[p] }
        return lag
    }

    // MARK: Internals

    enum Item {
        case transaction(Transaction, partition: Int, offset: Int64, appendedAt: Int64)
        case label(LabelEvent, partition: Int)
    }

    /// The arrivals' records in arrival order, reading each partition from the given offsets.
    private func read(_ arrivals: [Arrival], transactions: [Int64], labels: [Int64]) throws -> [(arrival: Int64, item: Item)] {
        let partitions = log.partitions
        var tCount = [Int](repeating: 0, count: partitions)
        var lCount = [Int](repeating: 0, count: partitions)
        for a in arrivals {
            for e in a.entries {
                if e & Arrival.labelBit != 0 { lCount[Int(e & ~Arrival.labelBit)] += 1 } else { tCount[Int(e)] += 1 }
            }
        }
        var tRecords: [[LogRecord]] = []
        var lRecords: [[LogRecord]] = []
        for p in 0..<partitions {
            tRecords.append(try readExactly(.transactions, p, from: transactions[p], count: tCount[p]))
            lRecords.append(try readExactly(.labels, p, from: labels[p], count: lCount[p]))
        }
        var tAt = [Int](repeating: 0, count: partitions)
        var lAt = [Int](repeating: 0, count: partitions)
        var out: [(arrival: Int64, item: Item)] = []
        out.reserveCapacity(arrivals.reduce(0) { $0 + $1.entries.count })
        for a in arrivals {
            for e in a.entries {
                if e & Arrival.labelBit != 0 {
                    let p = Int(e & ~Arrival.labelBit)
                    let r = lRecords[p][lAt[p]]
                    lAt[p] += 1
                    let result = r.payload.withUnsafeBytes { labelDecoder.decode($0) }
                    guard case .success(let label) = result else {
                        throw PipelineError("labels[\(p)] offset \(r.offset) does not decode")
                    }
                    out.append((a.id, .label(label, partition: p)))
                } else {
                    let p = Int(e)
                    let r = tRecords[p][tAt[p]]
                    tAt[p] += 1
                    out.append((a.id, .transaction(try decode(r), partition: p, offset: r.offset, appendedAt: r.appendedAt)))
                }
            }
        }
        return out
    }

    /// Arrivals this process appended, as `read` would have read them back: checked against
    /// the offsets the processor expects next.
    private func fromMemory(_ arrivals: [RecentArrival]) throws -> [(arrival: Int64, item: Item)] {
        var expected = next
        var out: [(arrival: Int64, item: Item)] = []
        out.reserveCapacity(arrivals.reduce(0) { $0 + $1.transactions.count })
        for a in arrivals {
            for t in a.transactions {
                guard t.partition < expected.count, t.offset == expected[t.partition] else {
                    throw PipelineError(
                        "arrival \(a.id) in memory holds transactions[\(t.partition)] offset \(t.offset), the processor "
                            + "expects offset \(t.partition < expected.count ? expected[t.partition] : -1)")
                }
                expected[t.partition] += 1
                out.append(
                    (a.id, .transaction(t.transaction, partition: t.partition, offset: t.offset, appendedAt: t.appendedAt)))
            }
        }
        return out
    }

    private func readExactly(_ topic: Topic, _ p: Int, from offset: Int64, count: Int) throws -> [LogRecord] {
        guard count > 0 else { return [] }
        let records = try log.read(topic, partition: p, from: offset, limit: count)
        guard records.count == count, records.first?.offset == offset else {
            throw PipelineError(
                "\(topic.rawValue)[\(p)] holds \(records.count) records from offset \(offset), the arrival order says \(count)")
        }
        return records
    }

    private func decode(_ r: LogRecord) throws -> Transaction {
        let result = r.payload.withUnsafeBytes { transactionDecoder.decode($0) }
        switch result {
        case .success(let t): return t
        case .failure(let e):
            throw PipelineError("transactions[\(r.partition)] offset \(r.offset) does not decode: \(e)")
        }
    }

    static func nowMicros() -> Int64 { Timestamp.now.microseconds }
}

/// A model waiting to be swapped in at the next batch, and the version the processor
/// scores with once it is (the last one handed in, or the processor's own).
final class PendingModel: Sendable {
    private let state = Locked<(scorer: Scorer?, version: Int?)>((nil, nil))
    func set(_ s: Scorer) { state.withLock { $0 = (s, s.modelVersion) } }
    func take() -> Scorer? {
        state.withLock {
            let s = $0.scorer
            $0.scorer = nil
            return s
        }
    }
    /// The version in use when no swap waits (a new or rebuilt processor's).
    func setVersion(_ v: Int) { state.withLock { if $0.scorer == nil { $0.version = v } } }
    var version: Int? { state.withLock { $0.version } }
}
