import CardwatchCore
import Foundation
import Synchronization

/// Commits the processor's batches on a thread of its own, so that computing batch n + 1
/// overlaps writing batch n (the commit is about half of a batch's time, much of it
/// SQLite's single writer lock). At most `capacity` records wait (and at least one batch):
/// a slow store slows the processor down instead of filling memory. Batches commit in
/// order, all those waiting in one transaction (`BatchingWorker`); the first failure stops
/// the writer and is rethrown to the processor at its next call.
final class BatchWriter: Sendable {
    private let worker: BatchingWorker<ProcessedBatch>
    private let publisher: CommitPublisher

    init(store: any PipelineStore, capacity: Int, committed: Int64) {
        let publisher = CommitPublisher(committed: committed)
        self.publisher = publisher
        // Whatever waits goes in one transaction: under load a commit's fixed cost (and the
        // pages every batch touches: offsets, position, aggregates) is paid once for several.
        worker = BatchingWorker(
            name: "batch-writer", capacity: capacity, weigh: { $0.transactions.count + $0.labels.count },
            handle: { batches in
                try store.commit(batches)
                publisher.publish(batches)
            })
    }

    /// The last arrival whose batch is committed.
    var committed: Int64 { publisher.committed.load(ordering: .acquiring) }
    /// From each record's append to the commit of its decision.
    var latencies: LatencyRecorder { publisher.latencies }
    /// Called on the writer thread after each commit.
    func setOnCommit(_ callback: CommitCallback?) { publisher.onCommit.withLock { $0 = callback } }
    var onCommit: CommitCallback? { publisher.onCommit.withLock { $0 } }

    /// Queues a batch, waiting while it would take the queue past `capacity` records.
    func submit(_ batch: ProcessedBatch) throws { try worker.submit(batch) }

    /// Waits until every queued batch is committed; rethrows a failure.
    func flush() throws { try worker.flush() }

    /// A failure of an earlier commit, if any.
    func check() throws { try worker.check() }

    /// Stops the thread once the queue is empty.
    func stop() { worker.stop() }

    /// A batch the processor committed itself (with its input, see `Processor.ingestAndDecide`),
    /// published as the writer publishes its own: the queue is empty meanwhile.
    func committedElsewhere(_ batch: ProcessedBatch) { publisher.publish([batch]) }
}

/// What follows a commit: the committed position, latencies, and the callback.
final class CommitPublisher: Sendable {
    let committed: Atomic<Int64>
    let latencies = LatencyRecorder()
    /// Kept in a struct: a bare closure in a `Mutex` is reabstracted on every `withLock` (in
    /// and back out through the `inout`), so each access wrapped it in two more thunks and
    /// the n-th commit called through 2n.
    let onCommit = Mutex<CommitCallback?>(nil)

    init(committed: Int64) { self.committed = Atomic(committed) }

    func publish(_ batches: [ProcessedBatch]) {
        guard let last = batches.last else { return }
        committed.store(last.arrivals.upperBound, ordering: .releasing)
        let callback = onCommit.withLock { $0 }
        for batch in batches {
            latencies.record(batch)
            callback?.call(batch)
        }
    }
}

/// A batch callback with a fixed representation (see `BatchWriter.onCommit`).
struct CommitCallback: Sendable {
    let call: @Sendable (ProcessedBatch) -> Void
}

/// Latencies of the last million decisions (and alerts): from the record's append to the
/// log to the commit of its decision, in microseconds.
public final class LatencyRecorder: Sendable {
    public init() {}
    private static let capacity = 1 << 20
    private let samples = Locked<(all: [Int64], alerts: [Int64], next: Int, nextAlert: Int)>(([], [], 0, 0))

    public func record(_ batch: ProcessedBatch) {
        guard let decidedAt = batch.decidedAt, !batch.transactions.isEmpty else { return }
        let delay = max(0, Timestamp.now.microseconds - decidedAt)
        samples.withLock { s in
            for t in batch.transactions {
                let total = t.latencyMicros + delay
                Self.put(total, into: &s.all, at: &s.next)
                if t.decision.isAlert { Self.put(total, into: &s.alerts, at: &s.nextAlert) }
            }
        }
    }

    private static func put(_ v: Int64, into a: inout [Int64], at next: inout Int) {
        if a.count < capacity { a.append(v) } else { a[next] = v }
        next = (next + 1) % capacity
    }

    /// The `q` quantiles (0…1) of the recorded latencies, all decisions or alerts only.
    public func quantiles(_ q: [Double], alertsOnly: Bool = false) -> (count: Int, values: [Int64]) {
        var v = samples.withLock { alertsOnly ? $0.alerts : $0.all }
        guard !v.isEmpty else { return (0, q.map { _ in 0 }) }
        v.sort()
        return (v.count, q.map { v[min(v.count - 1, Int(($0 * Double(v.count - 1)).rounded(.up)))] })
    }
}
