import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Logging
import Testing

// MARK: Fixtures

/// A fresh temporary directory, removed afterwards.
func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-pipeline-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// A logistic model on the amount alone: probability 0.5 at `pivot` dollars, ~1 well above.
func amountModel(pivot: Double) -> ModelArtifact {
    let amount = Feature.amount.rawValue
    var weights = [Double](repeating: 0, count: Feature.count)
    weights[amount] = 0.01
    let model = LogisticModel(
        means: [Double](repeating: 0, count: Feature.count), scales: [Double](repeating: 1, count: Feature.count),
        weights: weights, intercept: -0.01 * pivot)
    return ModelArtifact(
        kind: .logistic, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion, logistic: model,
        thresholds: DecisionThresholds(review: 0.5, decline: 0.99))
}

func history(days: Double, cards: Int = 100, seed: UInt64 = 3, fraudRate: Double = 0.02) throws -> [Transaction] {
    var config = GeneratorConfig()
    config.seed = seed
    config.cards = cards
    config.fraudRate = fraudRate
    let start = Timestamp(rfc3339: "2026-03-01T00:00:00Z")!
    var g = try TransactionGenerator(config: config, mode: .backfill(start: start, end: start + days * 86_400))
    var out: [Transaction] = []
    while let t = g.next() { out.append(t) }
    return out
}

func writeLines(_ lines: [String], to path: String) throws {
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

func jsonLine(_ t: Transaction) -> String {
    TransactionEncoder.jsonLine(t).trimmingCharacters(in: .newlines)
}

func query<T: DatabaseValueConvertible>(_ dir: String, _ sql: String) throws -> [T] {
    let db = try DatabaseQueue(path: dir + "/log.sqlite")
    return try db.read { try T.fetchAll($0, sql: sql) }
}

/// Processes until the log is drained and every batch is committed.
func drain(_ p: Processor) throws {
    while try p.step() > 0 {}
    try p.flush()
}

struct StageFailure: Error, CustomStringConvertible {
    var description: String { "the stage broke" }
}

/// The SQLite store, except that its `failAt`-th processor commit fails.
final class FlakyStore: PipelineStore, @unchecked Sendable {
    // `@unchecked Sendable`: `commits` is touched only under `lock`; `base` is Sendable.
    let base: SQLiteEventLog
    private let lock = NSLock()
    private var commits = 0
    let failAt: Int
    init(_ base: SQLiteEventLog, failAt: Int) {
        self.base = base
        self.failAt = failAt
    }
    var log: any EventLog { base }
    func ingest(_ batch: IngestBatch) throws -> IngestOutcome { try base.ingest(batch) }
    func ingest(
        _ batch: IngestBatch, deciding decide: (_ previous: Int64, _ arrival: RecentArrival) throws -> ProcessedBatch?
    ) throws -> IngestOutcome {
        try base.ingest(batch) { previous, arrival in
            let decided = try decide(previous, arrival)
            if decided != nil, countCommit() == failAt { throw StageFailure() }
            return decided
        }
    }
    func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
        try base.ingestLabels(labels, source: source, resumeAt: resumeAt)
    }
    func resumePosition(source: String) throws -> Int64? { try base.resumePosition(source: source) }
    func commit(_ batch: ProcessedBatch) throws {
        if countCommit() == failAt { throw StageFailure() }
        try base.commit(batch)
    }
    func countCommit() -> Int {
        lock.withLock {
            commits += 1
            return commits
        }
    }
    func processorPosition() throws -> Int64 { try base.processorPosition() }
    func arrivals(after arrival: Int64, records: Int) throws -> [Arrival] { try base.arrivals(after: arrival, records: records) }
    func latestCheckpoint(atMost arrival: Int64) throws -> Checkpoint? { try base.latestCheckpoint(atMost: arrival) }
    func waitForCheckpoints() throws { try base.waitForCheckpoints() }
    func processedTransactions(_ ids: [String], before arrival: Int64) throws -> [String: (
        merchantID: String, time: Timestamp
    )] { try base.processedTransactions(ids, before: arrival) }
}
