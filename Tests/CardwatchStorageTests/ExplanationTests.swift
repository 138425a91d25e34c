import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import Dispatch
import Testing

/// An alert's reasons are computed in parts by trees, on whichever threads are free
/// (`Processor.explainAlerts`): held to the reference recursion on random models and rows.
@Suite struct ExplanationTests {
    @Test func partsOnAnyThreadsGiveTheReferenceContributions() throws {
        var rng = SplitMix(seed: 8)
        // Tree counts that do and do not divide into the parts evenly (fewer trees than parts
        // too), shallow and deep trees; random rows, labels and calibration.
        for (trial, shape) in [(3, 1), (4, 6), (13, 3), (30, 5), (41, 6), (2, 4)].enumerated() {
            var values: [Double] = []
            var labels: [Bool] = []
            for _ in 0..<300 {
                let row = (0..<Feature.count).map { _ in rng.unit() < 0.1 ? Double.nan : (rng.unit() * 10).rounded() }
                values += row
                labels.append((row[0].isNaN ? 5 : row[0]) + (row[3].isNaN ? 0 : row[3]) + rng.unit() * 4 > 11)
            }
            var parameters = GBDTParameters()
            (parameters.trees, parameters.maxDepth, parameters.minChildWeight) = (shape.0, shape.1, 0.05)
            let ensemble = GBDTTrainer.fit(
                FeatureMatrix(columns: Feature.count, values: values, labels: labels), parameters: parameters
            ).ensemble
            let a = 0.5 + rng.unit()
            let artifact = ModelArtifact(
                kind: .gbdt, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion, trees: ensemble,
                calibration: Calibration(a: a, b: -1))
            var scorer = try Scorer(artifact: artifact, version: 1)
            scorer.reasonCount = Feature.count
            for r in 0..<40 {
                var features = FeatureVector()
                for j in 0..<Feature.count { features[j] = values[r * Feature.count + j] }
                let reasons = scorer.explain(features)
                // The parts computed concurrently, in whatever order the threads take them.
                let row = Scorer.explanationParts * Feature.count
                var parts = [Double](repeating: 0, count: row)
                parts.withUnsafeMutableBufferPointer { out in
                    let task = PartsTask(out: out, scorer: scorer, features: features)
                    DispatchQueue.concurrentPerform(iterations: Scorer.explanationParts) {
                        task.run(Scorer.explanationParts - 1 - $0)
                    }
                }
                #expect(scorer.reasons(features, parts: parts[...]) == reasons, "trial \(trial), row \(r)")
                let reference = features.array.withUnsafeBufferPointer { ensemble.explain($0).contributions }
                for reason in reasons {
                    let j = try #require(Feature.names.firstIndex(of: reason.name))
                    let c = try #require(reason.contribution)
                    #expect(abs(c - a * reference[j]) < 1e-9 * max(1, abs(c)), "trial \(trial), row \(r), \(reason.name)")
                }
                let explained = Set(reasons.map(\.name))
                for j in 0..<Feature.count where !explained.contains(Feature.names[j]) {
                    #expect(abs(reference[j]) < 1e-12, "trial \(trial), row \(r): \(Feature.names[j]) has no reason")
                }
            }
        }
    }
}

/// `@unchecked Sendable` is sound: `out` outlives `concurrentPerform`, and part `k` writes
/// only its own `Feature.count` values.
private struct PartsTask: @unchecked Sendable {
    let out: UnsafeMutableBufferPointer<Double>
    let scorer: Scorer
    let features: FeatureVector

    func run(_ k: Int) {
        scorer.accumulate(
            features, part: k, into: UnsafeMutableBufferPointer(rebasing: out[k * Feature.count..<(k + 1) * Feature.count]))
    }
}
