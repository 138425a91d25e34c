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

/// The embedded runtime over `store`, its partitions taken.
func embeddedRuntime(
    _ store: SQLiteEventLog, _ scorer: Scorer, rules: RuleFile? = nil, batch: Int = 8192, checkpointEvery: Int = 64,
    state: PipelineState? = nil
) throws -> EmbeddedRuntime {
    var options = PartitionRuntime.Options()
    options.batchRecords = batch
    options.checkpointEvery = checkpointEvery
    options.pipelined = true  // as `import` has it: the failure paths of pipelined commits are exercised
    let runtime = try EmbeddedRuntime(store: store, scorer: scorer, rules: rules, options: options, state: state)
    try runtime.start()
    return runtime
}

/// Decides and commits until the log has nothing new.
func drain(_ runtime: EmbeddedRuntime) throws { try runtime.drain() }

struct StageFailure: Error, CustomStringConvertible {
    var description: String { "the stage broke" }
}
