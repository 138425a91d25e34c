import CardwatchCore
import CardwatchPipeline
import Foundation
import NIOCore

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
final class DecisionQueue: Sendable {
    typealias Completion = @Sendable (Result<Decided, any Error>) -> Void
    private struct Item: Sendable {
        var records: [IngestRecord]
        var deadLetters: [DeadLetter]
        /// Where `done` runs: nil, on the queue's thread.
        var loop: (any EventLoop)?
        var done: Completion
    }
    private let worker: BatchingWorker<Item>

    init(decide: @escaping @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?), metrics: PipelineMetrics) {
        // Every request's `done` is called, whatever happens: a failed group is answered with its error.
        worker = BatchingWorker(name: "http-decisions", onFailure: .isRemembered) { group in
            Self.decide(group, decide: decide, metrics: metrics)
        }
    }

    deinit { worker.stop() }

    /// Appends and decides the records (dead letters kept) with whatever else is waiting;
    /// `done` is called with this request's part on `loop`, or without one on the queue's thread.
    /// The answers of one group reach each event loop in one task: the queue's thread is the
    /// pipeline's bottleneck, and a task handed to a loop costs it about 10 µs.
    func submit(
        _ records: [IngestRecord], deadLetters: [DeadLetter], on loop: (any EventLoop)? = nil,
        done: @escaping Completion
    ) {
        let item = Item(records: records, deadLetters: deadLetters, loop: loop, done: done)
        do { try worker.submit(item) } catch { done(.failure(error)) }
    }

    func submit(_ records: [IngestRecord], deadLetters: [DeadLetter]) async throws -> Decided {
        try await withCheckedThrowingContinuation { c in
            submit(records, deadLetters: deadLetters) { c.resume(with: $0) }
        }
    }

    /// Decides the requests that gathered as one group and answers each with its part.
    private static func decide(
        _ group: [Item], decide: @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?),
        metrics: PipelineMetrics
    ) {
        var batch = IngestBatch(source: "http")
        for item in group {
            batch.records += item.records
            batch.deadLetters += item.deadLetters
        }
        let outcome: IngestOutcome
        let decided: ProcessedBatch?
        do { (outcome, decided) = try decide(batch) } catch {
            answer(group.map { ($0, .failure(error)) })
            return
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
        var answers: [(Item, Result<Decided, any Error>)] = []
        answers.reserveCapacity(group.count)
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
            answers.append((item, failure.map { .failure($0) } ?? .success(mine)))
        }
        answer(answers)
    }

    /// Calls each item's `done`: one task per event loop, in the group's order.
    private static func answer(_ answers: [(Item, Result<Decided, any Error>)]) {
        var loops: [(loop: any EventLoop, answers: [(Completion, Result<Decided, any Error>)])] = []
        for (item, result) in answers {
            guard let loop = item.loop else {
                item.done(result)
                continue
            }
            if let i = loops.firstIndex(where: { $0.loop === loop }) {
                loops[i].answers.append((item.done, result))
            } else {
                loops.append((loop, [(item.done, result)]))
            }
        }
        for (loop, answers) in loops {
            loop.execute { for (done, result) in answers { done(result) } }
        }
    }
}
