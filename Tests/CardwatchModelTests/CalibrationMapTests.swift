import Foundation
import Testing

@testable import CardwatchModel

/// The margin-to-probability maps and the calibration figures, against plain definitions.
@Suite struct CalibrationMapTests {
    @Test func isotonicStepsAreLookedUpAsALinearScanWould() {
        var rng = SplitMix(seed: 7)
        for _ in 0..<200 {
            let steps = 1 + Int(rng.next() % 12)
            var edges: [Double] = []
            var x = -5.0
            for _ in 0..<steps {
                x += 0.01 + rng.unit()
                edges.append(x)
            }
            var values = (0..<steps).map { _ in rng.unit() }.sorted()
            values[0] = min(values[0], 0.5)
            let map = Calibration(isotonicMargins: edges, isotonicProbabilities: values)
            for _ in 0..<50 {
                let m = -6 + 20 * rng.unit()
                let naive = values[edges.lastIndex(where: { $0 <= m }) ?? 0]
                #expect(map.probability(margin: m) == naive)
            }
        }
    }

    @Test func isolationMapIsTwoToTheMinusNormalisedPathLength() {
        let c = 10.24
        let map = Calibration.isolation(normaliser: c)
        #expect(map.method == "isolation")
        #expect(abs(map.probability(margin: -c) - 0.5) < 1e-12)
        #expect(abs(map.probability(margin: -3) - pow(2, -3 / c)) < 1e-12)
        #expect(Calibration().method == "platt")
    }

    @Test func malformedMapsAreRefusedWithTheReason() {
        var artifact = ModelArtifact(
            kind: .logistic, featureNames: ["x"], featureSchemaVersion: 1,
            logistic: LogisticModel(means: [0], scales: [1], weights: [1], intercept: 0))
        artifact.calibration = Calibration(isotonicMargins: [0, 1], isotonicProbabilities: [0.5, 0.2])
        #expect(throws: ModelError.self) { try artifact.check() }
        artifact.calibration = Calibration.isolation(normaliser: 0)
        #expect(throws: ModelError.self) { try artifact.check() }
        artifact.calibration = Calibration(isotonicMargins: [0, 1], isotonicProbabilities: [0.1, 0.2])
        #expect(throws: Never.self) { try artifact.check() }
    }

    @Test func brierAndReliabilityMatchTheirDefinitions() {
        var rng = SplitMix(seed: 3)
        let scores = (0..<5_000).map { _ in rng.unit() * rng.unit() }
        let labels = scores.map { rng.unit() < $0 }
        let naive = zip(scores, labels).map { pow($0 - ($1 ? 1 : 0), 2) }.reduce(0, +) / Double(scores.count)
        #expect(abs(Metrics.brierScore(scores: scores, labels: labels) - naive) < 1e-12)
        let edges = [0, 0.1, 0.5, 1]
        let table = Metrics.reliability(scores: scores, labels: labels, edges: edges)
        #expect(table.map(\.rows).reduce(0, +) == scores.count)
        for bin in table {
            let inside = scores.indices.filter {
                scores[$0] >= bin.lower && (scores[$0] < bin.upper || (bin.upper == 1 && scores[$0] <= 1))
            }
            #expect(inside.count == bin.rows)
            #expect(abs(inside.map { scores[$0] }.reduce(0, +) / Double(inside.count) - bin.meanProbability) < 1e-12)
            #expect(abs(Double(inside.filter { labels[$0] }.count) / Double(inside.count) - bin.fraudShare) < 1e-12)
            // Scores drawn as the fraud probability itself: each bin is calibrated within noise.
            #expect(abs(bin.meanProbability - bin.fraudShare) < 0.05)
        }
    }
}
