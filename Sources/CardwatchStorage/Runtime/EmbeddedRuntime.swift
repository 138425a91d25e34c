public import CardwatchCore
public import CardwatchPipeline
import Foundation
import Synchronization

/// The partitioned runtime in the embedded topology: the SQLite log, consumed by one member
/// of an in-process consumer group; the warehouse in the log's file as the decision sink;
/// checkpoints beside it. `run`, `import`, the API and the tests share it, behind a lock: the
/// runtime thread steps it, and the API's synchronous decisions go through it too.
///
/// A synchronous decision is planned, decided, then appended with its decisions in one
/// transaction (`ingestAndDecide`); when the log moved meanwhile, it is appended, then the
/// runtime steps until its decisions are committed. Either way the operators decide in log
/// order and never run inside a store transaction. A step that fails leaves the runtime
/// consistent (the partitions it moved are rebuilt from the sink before the next batch);
/// after a storage failure that passes by itself, uses are refused for `cooldown`
/// (`StorageUnavailable`, HTTP 503).
public final class EmbeddedRuntime: SteppedStage, @unchecked Sendable {
    // `@unchecked Sendable`: `runtime`, `started` and `retryAt` are touched only inside `lock`;
    // every other property is immutable and Sendable.
    private let lock = NSLock()
    public let store: SQLiteEventLog
    /// The embedded warehouse, when the decisions commit into the log's file (nil: into an
    /// external warehouse, `Warehouse.external`).
    public let warehouse: SQLiteWarehouseSink?
    /// Where the decisions commit.
    public let sink: any DecisionSink
    public let checkpoints: any CheckpointStore
    private let alerts: (any AlertCounting)?
    /// The model every operator scores with from its next batch on.
    public let models: ProductionModel
    public let commits: CommitFanout
    public let cooldown: Duration
    private let runtime: PartitionRuntime
    private var started = false
    private var retryAt: (at: Int64, reason: String)?

    /// The checkpoint file, beside the log.
    public static let checkpointFile = "partition-checkpoints.sqlite"

    /// Where the runtime's decisions and checkpoints go.
    public enum Warehouse {
        /// The warehouse in the log's file (one SQLite transaction per batch, appends of
        /// synchronous decisions folded in), checkpoints in a file beside it.
        case embedded
        /// Another store (PostgreSQL): the sink made with the callback each commit must reach,
        /// and its checkpoint store. The log's own offsets of the group follow the sink's
        /// after each commit (lag, backpressure); synchronous decisions are appended, then decided.
        case external(
            sink: (_ observer: @escaping @Sendable (ProcessedBatch) -> Void) throws -> any DecisionSink,
            checkpoints: any CheckpointStore)
    }

    public init(
        store: SQLiteEventLog, scorer: Scorer, rules: RuleFile? = nil, options: PartitionRuntime.Options = .init(),
        state: PipelineState? = nil, cooldown: Duration = .seconds(1), warehouse: Warehouse = .embedded
    ) throws {
        self.store = store
        self.cooldown = cooldown
        let commits = CommitFanout(state: state)
        self.commits = commits
        switch warehouse {
        case .embedded:
            let embedded = SQLiteWarehouseSink(log: store, observer: { commits.publish($0) })
            self.warehouse = embedded
            sink = embedded
            alerts = store
            let directory = URL(fileURLWithPath: store.path).deletingLastPathComponent()
            checkpoints = try SQLiteCheckpointStore(path: directory.appendingPathComponent(Self.checkpointFile).path)
        case .external(let make, let store2):
            self.warehouse = nil
            let external = try make { commits.publish($0) }
            sink = LogOffsetMirror(sink: external, log: store)
            alerts = external as? any AlertCounting
            checkpoints = store2
        }
        models = ProductionModel(scorer)
        runtime = PartitionRuntime(
            consumer: GroupConsumer(group: options.group, log: store, groups: ConsumerGroups()), log: store, sink: sink,
            index: nil, checkpoints: checkpoints, models: models, rules: rules, options: options)
    }

    /// The alerts the warehouse holds.
    public func alertCount() throws -> Int { try alerts?.alertCount() ?? 0 }

    /// The runtime's counters (decided, replayed, checkpoints, …).
    public var counters: PartitionRuntime.Counters { lock.withLock { runtime.counters } }

    /// Joins the group and takes the partitions, restoring each (checkpoint, replay); idempotent.
    public func start() throws { try withRuntime { _ in } }

    /// Decides and commits one batch of whatever waits in the log; how many records it took.
    @discardableResult
    public func step() throws -> Int { try withRuntime { try $0.step() } }

    /// Steps until the log has nothing new.
    public func drain() throws {
        try withRuntime { runtime in
            while try runtime.step() > 0 {}
            try runtime.flush()
        }
    }

    /// Waits until every batch decided so far is committed.
    public func flush() throws { try withRuntime { try $0.flush() } }

    /// Leaves the group (each partition checkpointed) and writes the card profiles folded in
    /// behind, so a clean stop leaves nothing to replay and the aggregates complete.
    public func stop() throws {
        try lock.withLock {
            guard started else { return }
            started = false
            try runtime.stop()
            try warehouse?.flush()
        }
    }

    /// Appends `batch` and returns once its accepted records' decisions are committed: the
    /// ingest's outcome and those decisions, in the order of the accepted records (nil when
    /// none was accepted). They also reached `commits`.
    ///
    /// The log and the warehouse are one store, so the append and the commit are folded into
    /// one transaction: the records are planned (their places, read without writing), decided
    /// by the operators, then appended with their decisions, which holds only if the log is
    /// still as planned. When another writer came first, or the runtime is behind in a
    /// partition, it catches up and plans again; after two tries it appends, then steps.
    public func ingestAndDecide(_ batch: IngestBatch) throws -> (IngestOutcome, ProcessedBatch?) {
        try withRuntime { runtime in
            guard let warehouse else { return try appendThenStep(batch, runtime) }
            for _ in 0..<2 {
                let plan = try store.planIngest(batch)
                guard !plan.places.isEmpty else { break }  // nothing to decide: a plain append
                guard plan.ends.allSatisfy({ runtime.position($0.key) == $0.value }) else {
                    while try runtime.step(waiting: true) > 0 {}  // records or labels not folded yet
                    continue
                }
                let now = Timestamp.now.microseconds
                let records = zip(plan.fresh, plan.places).map { i, place in
                    LogRecord(
                        topic: .transactions, partition: place.partition, offset: place.offset,
                        key: batch.records[i].transaction.cardID, payload: batch.records[i].payload, appendedAt: now)
                }
                var outcome = IngestOutcome()
                do {
                    let committed = try commits.collecting { batches in
                        _ = try runtime.decide(
                            appended: records, decoded: plan.fresh.map { batch.records[$0].transaction }
                        ) { decisions in
                            outcome = try warehouse.commit(decisions, appending: batch, as: plan)
                        }
                        return batches()
                    }
                    return (outcome, Self.answer(plan.places, from: committed))
                } catch is IngestPlanConflict {
                    continue  // nothing written; the partitions it moved are rebuilt at the next step
                }
            }
            return try appendThenStep(batch, runtime)
        }
    }

    /// Appends `batch` to the log for the runtime to decide when it steps (the live generator):
    /// under the runtime's lock, so that it never lands between the plan and the append of a
    /// synchronous decision.
    public func append(_ batch: IngestBatch) throws -> IngestOutcome { try withRuntime { _ in try store.ingest(batch) } }

    /// Appends label events (routed to their cards) under the runtime's lock, as `append`.
    public func appendLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
        try withRuntime { _ in try store.ingestLabels(labels, source: source, resumeAt: resumeAt) }
    }

    /// The decisions of the records at `places`, in their order, from the committed batches.
    private static func answer(_ places: [LogPosition], from batches: [ProcessedBatch]) -> ProcessedBatch? {
        guard var out = batches.last else { return nil }
        var decided: [LogPosition: ProcessedTransaction] = [:]
        for b in batches {
            for t in b.transactions { decided[LogPosition(partition: t.partition, offset: t.offset)] = t }
        }
        out.transactions = places.compactMap { decided[$0] }
        out.labels = []
        return out
    }

    /// The unfolded way: the append, then steps until the appended records are committed.
    private func appendThenStep(_ batch: IngestBatch, _ runtime: PartitionRuntime) throws -> (IngestOutcome, ProcessedBatch?) {
        let (outcome, places) = try store.ingestPlaced(batch)
        guard !places.isEmpty else { return (outcome, nil) }
        var waiting = Set(places)
        let committed = try commits.collecting { batches in
            var all: [ProcessedBatch] = []
            var idle = 0
            while !waiting.isEmpty {
                // A step may take nothing when a label appended meanwhile comes first and is not
                // read yet (`PartitionRuntime.inAppendOrder`): the next one takes it.
                if try runtime.step(waiting: true) == 0 {
                    idle += 1
                    guard idle < 100 else {
                        throw PipelineError(
                            "\(waiting.count) records appended to the log were not decided: the runtime does not take them")
                    }
                    usleep(100)
                }
                for b in batches() {
                    all.append(b)
                    for t in b.transactions { waiting.remove(LogPosition(partition: t.partition, offset: t.offset)) }
                }
            }
            return all
        }
        return (outcome, Self.answer(places, from: committed))
    }

    private func withRuntime<T>(_ body: (PartitionRuntime) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if let retryAt {
            let now = Timestamp.now.microseconds
            if now < retryAt.at {
                throw StorageUnavailable(reason: retryAt.reason, retryAfter: .microseconds(retryAt.at - now))
            }
            self.retryAt = nil
        }
        do {
            if !started {
                try runtime.start()
                started = true
                try runtime.rebalance()
            }
            return try body(runtime)
        } catch {
            if StorageFailure.isTransient(error) {
                retryAt = (Timestamp.now.microseconds + cooldown.microseconds, "\(error)")
            }
            throw error
        }
    }
}

/// A sink whose commits also move the log's own offsets of the group, afterwards (what the
/// log's lag and the import's backpressure read): as a Kafka consumer commits to Kafka after
/// its sink, for lag tools. The sink's offsets stay the truth; a mirror that fails to move is
/// moved by the next commit.
struct LogOffsetMirror: DecisionSink {
    let sink: any DecisionSink
    let log: SQLiteEventLog

    func commit(_ batch: SinkBatch) throws {
        try sink.commit(batch)
        for range in batch.consumed where range.from != range.to {
            for (topic, from, to) in [
                (Topic.transactions, range.from.transactions, range.to.transactions),
                (Topic.labels, range.from.labels, range.to.labels),
            ] where from != to {
                // Under the log's own processor group, whatever the sink's group: what its lag reads.
                try? log.commit(
                    group: PartitionRuntime.defaultGroup, topic: topic, partition: range.partition, offset: to,
                    allowBackwards: true)
            }
        }
    }
    func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        try sink.offsets(group: group, partition: partition)
    }
    func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try sink.batchEnds(group: group, partition: partition, after: after)
    }
}

/// What follows each commit of the embedded sink: latencies, the pipeline's counters, the
/// live views' callback, and the batches a synchronous decision waits for.
public final class CommitFanout: Sendable {
    public let latencies = LatencyRecorder()
    let state: PipelineState?
    /// In a struct: a closure kept in a generic container and read back through `inout` came
    /// back wrapped in one more reabstraction thunk at every read, a chain that grew with
    /// every commit (a quarter of the HTTP path's time after a minute, perf).
    private let callback = Locked<Callback?>(nil)
    private struct Callback: Sendable {
        let call: @Sendable (ProcessedBatch) -> Void
    }
    /// Batches committed while a synchronous decision collects them (on the runtime's thread).
    private let collected = Locked<[ProcessedBatch]?>(nil)

    init(state: PipelineState?) { self.state = state }

    /// Called with every committed batch, on the runtime's thread (metrics, WebSocket).
    public func onCommit(_ body: (@Sendable (ProcessedBatch) -> Void)?) { callback.withLock { $0 = body.map(Callback.init) } }

    func publish(_ batch: ProcessedBatch) {
        latencies.record(batch)
        if let state {
            state.processed.add(batch.transactions.count, ordering: .relaxed)
            state.alerts.add(batch.transactions.reduce(0) { $0 + ($1.decision.isAlert ? 1 : 0) }, ordering: .relaxed)
            state.labels.add(batch.labels.count, ordering: .relaxed)
        }
        collected.withLock { $0?.append(batch) }
        callback.withLock { $0 }?.call(batch)
    }

    /// Runs `body` with a function that hands out the batches committed since it last asked.
    func collecting<T>(_ body: (_ batches: () -> [ProcessedBatch]) throws -> T) throws -> T {
        collected.withLock { $0 = [] }
        defer { collected.withLock { $0 = nil } }
        return try body {
            collected.withLock {
                let out = $0 ?? []
                $0 = []
                return out
            }
        }
    }
}
