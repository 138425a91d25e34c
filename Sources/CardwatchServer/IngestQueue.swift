import CardwatchCore
import CardwatchPipeline
import Foundation

/// Group commit for the HTTP API: requests hand their records to one ingest thread, which
/// appends everything that has gathered meanwhile in a single store transaction. One
/// SQLite write per request would serialize the requests on the database's single writer
/// (and block the few threads of Swift's cooperative pool while they wait); one write per
/// group keeps the log's order (requests in arrival order), each request's own duplicates
/// and dead letters, and lets the processor decide the whole group in one batch.
final class IngestQueue: @unchecked Sendable {
    // `@unchecked Sendable`: `pending` and `stopped` are touched only under `condition`;
    // `store`, `doorbell` and `metrics` are Sendable.
    private struct Item {
        var records: [IngestRecord]
        var deadLetters: [DeadLetter]
        var done: CheckedContinuation<Result<IngestOutcome, any Error>, Never>
    }
    private let store: any PipelineStore
    private let doorbell: Doorbell?
    private let metrics: PipelineMetrics
    private let condition = NSCondition()
    private var pending: [Item] = []
    private var stopped = false

    init(store: any PipelineStore, doorbell: Doorbell?, metrics: PipelineMetrics) {
        self.store = store
        self.doorbell = doorbell
        self.metrics = metrics
        let thread = Thread { [weak self] in
            // One group per turn, holding the queue only meanwhile, so it can go away when unused.
            while let more = self?.runOnce(), more {}
        }
        thread.name = "http-ingest"
        thread.start()
    }

    deinit {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Appends the records (and dead letters) with whatever else is waiting; returns this
    /// request's part of the outcome.
    func ingest(_ records: [IngestRecord], deadLetters: [DeadLetter]) async throws -> IngestOutcome {
        let result = await withCheckedContinuation { (c: CheckedContinuation<Result<IngestOutcome, any Error>, Never>) in
            condition.lock()
            pending.append(Item(records: records, deadLetters: deadLetters, done: c))
            condition.signal()
            condition.unlock()
        }
        return try result.get()
    }

    /// Waits (a second at most) for requests and appends them as one group; false once stopped.
    private func runOnce() -> Bool {
        condition.lock()
        if pending.isEmpty && !stopped { _ = condition.wait(until: Date().addingTimeInterval(1)) }
        if stopped && pending.isEmpty {
            condition.unlock()
            return false
        }
        if pending.isEmpty {
            condition.unlock()
            return true
        }
        let group = pending
        pending.removeAll(keepingCapacity: true)
        condition.unlock()

        var batch = IngestBatch(source: "http")
        for item in group {
            batch.records += item.records
            batch.deadLetters += item.deadLetters
        }
        do {
            let outcome = try store.ingest(batch)
            metrics.observe(outcome)
            doorbell?.ring()
            // Each request gets its own duplicates. The store reports one id per rejected occurrence: an
            // id that occurs k times in the group and is reported k times was already in the log; reported
            // k − 1 times, its first occurrence was appended and the later ones are duplicates.
            var occurrences: [String: Int] = [:]
            for item in group { for r in item.records { occurrences[r.transaction.transactionID, default: 0] += 1 } }
            var reported: [String: Int] = [:]
            for id in outcome.duplicates { reported[id, default: 0] += 1 }
            var seen = Set<String>()
            for item in group {
                var mine = IngestOutcome()
                for r in item.records {
                    let id = r.transaction.transactionID
                    let first = seen.insert(id).inserted
                    if first && reported[id, default: 0] < occurrences[id, default: 0] {
                        mine.accepted += 1
                    } else {
                        mine.duplicates.append(id)
                    }
                }
                mine.deadLetters = item.deadLetters.count
                item.done.resume(returning: .success(mine))
            }
        } catch {
            for item in group { item.done.resume(returning: .failure(error)) }
        }
        return true
    }
}
