import CardwatchCore
import CardwatchPipeline
import Foundation

/// What one request's records came to: its part of the ingest outcome, and the decisions on
/// the records it had accepted, in their order.
struct Decided: Sendable {
    var outcome: IngestOutcome
    var decisions: [(id: String, decision: Decision)]
}

/// Group commit for the HTTP API: requests hand their records to one thread, which appends
/// and decides everything that has gathered meanwhile in a single store transaction
/// (`ServerDependencies.decide`), then answers each request with its part. One write per
/// request would serialize the requests on the database's single writer (and block the few
/// threads of Swift's cooperative pool while they wait); one per group keeps the log's
/// order (requests in arrival order) and each request's own duplicates and dead letters.
final class DecisionQueue: @unchecked Sendable {
    // `@unchecked Sendable`: `pending` and `stopped` are touched only under `condition`;
    // `decide` and `metrics` are Sendable.
    typealias Completion = @Sendable (Result<Decided, any Error>) -> Void
    private struct Item {
        var records: [IngestRecord]
        var deadLetters: [DeadLetter]
        var done: Completion
    }
    private let decide: @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?)
    private let metrics: PipelineMetrics
    private let condition = NSCondition()
    private var pending: [Item] = []
    private var stopped = false

    init(decide: @escaping @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?), metrics: PipelineMetrics) {
        self.decide = decide
        self.metrics = metrics
        let thread = Thread { [weak self] in
            // One group per turn, holding the queue only meanwhile, so it can go away when unused.
            while let more = self?.runOnce(), more {}
        }
        thread.name = "http-decisions"
        thread.start()
    }

    deinit {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Appends and decides the records (dead letters kept) with whatever else is waiting;
    /// `done` is called on the queue's thread with this request's part.
    func submit(_ records: [IngestRecord], deadLetters: [DeadLetter], done: @escaping Completion) {
        condition.lock()
        pending.append(Item(records: records, deadLetters: deadLetters, done: done))
        condition.signal()
        condition.unlock()
    }

    func submit(_ records: [IngestRecord], deadLetters: [DeadLetter]) async throws -> Decided {
        try await withCheckedThrowingContinuation { c in
            submit(records, deadLetters: deadLetters) { c.resume(with: $0) }
        }
    }

    /// Waits (a second at most) for requests and decides them as one group; false once stopped.
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
        let outcome: IngestOutcome
        let decided: ProcessedBatch?
        do { (outcome, decided) = try decide(batch) } catch {
            for item in group { item.done(.failure(error)) }
            return true
        }
        metrics.observe(outcome)
        // Each request gets its own duplicates and decisions. The store reports one id per rejected
        // occurrence: an id that occurs k times in the group and is reported k times was already in the
        // log; reported k − 1 times, its first occurrence was appended and the later ones are duplicates.
        // The accepted records were decided in their order: the batch's transactions follow them.
        var occurrences: [String: Int] = [:]
        var reported: [String: Int] = [:]
        if !outcome.duplicates.isEmpty {
            for item in group { for r in item.records { occurrences[r.transaction.transactionID, default: 0] += 1 } }
            for id in outcome.duplicates { reported[id, default: 0] += 1 }
        }
        var seen = Set<String>()
        let transactions = decided?.transactions ?? []
        var next = 0
        for item in group {
            var mine = Decided(outcome: IngestOutcome(), decisions: [])
            var failure: PipelineError?
            for r in item.records {
                let id = r.transaction.transactionID
                let accepted =
                    outcome.duplicates.isEmpty
                    || (seen.insert(id).inserted && reported[id, default: 0] < occurrences[id, default: 0])
                guard accepted else {
                    mine.outcome.duplicates.append(id)
                    continue
                }
                mine.outcome.accepted += 1
                if next < transactions.count, transactions[next].transaction.transactionID == id {
                    mine.decisions.append((id, transactions[next].decision))
                    next += 1
                } else {
                    failure = PipelineError("the decided batch does not follow the accepted records at '\(id)'")
                }
            }
            mine.outcome.deadLetters = item.deadLetters.count
            item.done(failure.map { .failure($0) } ?? .success(mine))
        }
        return true
    }
}
