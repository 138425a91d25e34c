import CardwatchModel
import CardwatchPipeline
import Foundation
import Testing

/// Six days of rows a minute apart (3 % fraud, a signal in two of five features), times in microseconds.
private func timedRows(rows: Int = 8_640, seed: UInt64 = 17) -> TimedDataset {
    var rng = SplitMix(seed: seed)
    var m = FeatureMatrix(columns: 5)
    for _ in 0..<rows {
        let x = (0..<5).map { _ in rng.unit() * 10 }
        let z = 0.9 * x[0] + 0.6 * x[1] * (x[2] > 5 ? 1 : 0.3) - 11.5 + 2.5 * (rng.unit() - 0.5)
        m.append(x, label: rng.unit() < 1 / (1 + exp(-z)))
    }
    let start: Int64 = 1_767_225_600_000_000  // 2026-01-01
    return TimedDataset(
        matrix: m, times: (0..<rows).map { start + Int64($0) * 60_000_000 }, cards: (0..<rows).map { "c\($0 % 97)" },
        patterns: [String?](repeating: nil, count: rows), transactionIDs: (0..<rows).map { "t\($0)" })
}

private func request() -> TrainingRequest {
    var r = TrainingRequest()
    r.testFraction = 0.25
    var s = SearchSettings()
    s.budget = 2
    r.search = s
    return r
}

private let names = ["a", "b", "c", "d", "e"]

@Suite struct ModelSelectionTrainingTests {
    /// The search reads the training window only: with every test label flipped, the same
    /// candidates get the same scores and the same parameters win; only the test metrics move.
    @Test func poisonedTestLabelsChangeNothingTheSearchChose() throws {
        let data = timedRows()
        let clean = try ModelTraining.train(data, featureNames: names, request: request())
        let split = clean.split
        var poisoned = data
        var labels = data.matrix.labels
        for i in data.times.indices where data.times[i] >= split.testFrom && data.times[i] < split.testTo { labels[i].toggle() }
        poisoned.matrix = FeatureMatrix(columns: 5, values: data.matrix.values, labels: labels)
        let dirty = try ModelTraining.train(poisoned, featureNames: names, request: request())
        let search = try #require(clean.artifact.search)
        #expect(search.tried >= 2)
        #expect(dirty.artifact.search == search)
        #expect(dirty.artifact.parameters == clean.artifact.parameters)
        #expect(dirty.artifact.kind == clean.artifact.kind)
        #expect(dirty.artifact.trees == clean.artifact.trees)
        #expect(dirty.artifact.calibration == clean.artifact.calibration)
        #expect(dirty.artifact.thresholds == clean.artifact.thresholds)
        // The poison reached the test window: its metrics turned upside down.
        #expect(clean.metrics.rocAUC > 0.8 && dirty.metrics.rocAUC < 0.2)
    }

    @Test func deterministicForASeedAndRecordedInTheArtifact() throws {
        let data = timedRows()
        let a = try ModelTraining.train(data, featureNames: names, request: request())
        let b = try ModelTraining.train(data, featureNames: names, request: request())
        #expect(a.artifact.search == b.artifact.search && a.artifact.trees == b.artifact.trees)
        #expect(a.testScores == b.testScores)
        let record = try #require(a.artifact.search)
        #expect(a.artifact.kind == record.scores[record.chosen].kind)
        // The record survives the artifact's JSON, and an artifact without one still loads.
        let json = try a.artifact.jsonData()
        #expect(try ModelArtifact.load(json: json).search == record)
        var old = a.artifact
        old.search = nil
        old.calibrationChoice = nil
        var object = try JSONSerialization.jsonObject(with: try old.jsonData()) as! [String: Any]
        #expect(object["search"] == nil)
        object.removeValue(forKey: "calibration_choice")
        let legacy = try ModelArtifact.load(json: try JSONSerialization.data(withJSONObject: object))
        #expect(legacy.search == nil && legacy.trees == a.artifact.trees)
    }

    @Test func randomForestTrainsAsItsOwnKind() throws {
        var r = TrainingRequest()
        r.kind = .randomForest
        r.testFraction = 0.25
        r.forest.trees = 30
        let outcome = try ModelTraining.train(timedRows(), featureNames: names, request: r)
        #expect(outcome.artifact.kind == .randomForest && outcome.artifact.search == nil)
        #expect(outcome.trees == 30 && outcome.metrics.rocAUC > 0.8)
        #expect(outcome.metrics.brierScore != nil)
        #expect(outcome.artifact.calibrationChoice != nil)
    }
}
