import Foundation
import Testing

@testable import CardwatchModel

/// The bootstrap's weighted AP against the plain one over the resampled rows written out.
@Suite struct BootstrapTests {
    @Test func weightedAPEqualsTheAPOfTheRowsRepeated() {
        var rng = SplitMix(seed: 11)
        for _ in 0..<300 {
            let n = 1 + Int(rng.next() % 60)
            // Few distinct scores, so ties (one threshold step) are common.
            let scores = (0..<n).map { _ in rng.unit() < 0.1 ? Double.nan : Double(rng.next() % 8) / 8 }
            let labels = (0..<n).map { _ in rng.unit() < 0.3 }
            let counts = (0..<n).map { _ in Int32(rng.next() % 4) }
            var repeatedScores: [Double] = []
            var repeatedLabels: [Bool] = []
            for i in 0..<n {
                for _ in 0..<counts[i] {
                    repeatedScores.append(scores[i])
                    repeatedLabels.append(labels[i])
                }
            }
            let naive = Metrics.averagePrecision(scores: repeatedScores, labels: repeatedLabels)
            let fast = AveragePrecisionBootstrap.Ranking(scores: scores).averagePrecision(labels: labels, counts: counts)
            #expect(naive.isNaN ? fast.isNaN : abs(naive - fast) < 1e-12, "\(scores) \(labels) \(counts)")
        }
    }

    @Test func intervalsCoverTheAPAndSeparateABetterModel() {
        var rng = SplitMix(seed: 5)
        let labels = (0..<1_500).map { _ in rng.unit() < 0.08 }
        let good = labels.map { ($0 ? 1.0 : 0.0) + rng.unit() * 1.2 }
        let weak = labels.map { ($0 ? 0.4 : 0.0) + rng.unit() }
        let boot = AveragePrecisionBootstrap(scores: [weak, good], labels: labels, replicates: 150, seed: 9)
        for (m, scores) in [weak, good].enumerated() {
            let ap = Metrics.averagePrecision(scores: scores, labels: labels)
            let ci = try! #require(boot.interval(model: m))
            #expect(ci.lower < ap && ap < ci.upper, "\(ci) \(ap)")
        }
        let difference = try! #require(boot.differenceInterval(model: 1, base: 0))
        #expect(difference.lower > 0)
        #expect(boot.shareAbove(model: 1, base: 0) == 1)
        // The same seed gives the same replicates; another seed other ones.
        #expect(
            AveragePrecisionBootstrap(scores: [weak, good], labels: labels, replicates: 150, seed: 9).replicates
                == boot.replicates)
        #expect(
            AveragePrecisionBootstrap(scores: [weak, good], labels: labels, replicates: 150, seed: 10).replicates
                != boot.replicates)
    }

    @Test func noRowsNoInterval() {
        let boot = AveragePrecisionBootstrap(scores: [[]], labels: [], replicates: 10)
        #expect(boot.interval(model: 0) == nil)
    }
}
