import Foundation
import Testing

@testable import CardwatchModel

/// The paper's definitions, written plainly: H(i) summed term by term, c(n), and the path
/// length of Liu et al.'s algorithm 3 by recursion over a tree.
private enum Reference {
    static func harmonic(_ i: Int) -> Double { i < 1 ? 0 : (1...i).reduce(0.0) { $0 + 1 / Double($1) } }

    static func c(_ n: Int) -> Double {
        if n <= 1 { return 0 }
        if n == 2 { return 1 }
        return 2 * harmonic(n - 1) - 2 * Double(n - 1) / Double(n)
    }

    /// PathLength(x, T, e): a leaf adds c(its size) to the edges walked to it.
    static func pathLength(_ x: [Double], _ e: TreeEnsemble, node i: Int, depth: Int) -> Double {
        let n = e.nodes[i]
        if n.isLeaf { return Double(depth) + c(Int(e.cover[i])) }
        let v = x[Int(n.feature)]
        let left = v.isNaN ? n.defaultLeft : Float(v) < n.threshold
        return pathLength(x, e, node: Int(n.left) + (left ? 0 : 1), depth: depth + 1)
    }

    /// s(x, ψ) = 2^(−E[h(x)] / c(ψ)).
    static func score(_ x: [Double], _ e: TreeEnsemble, sampleSize: Int) -> Double {
        let mean = e.roots.map { pathLength(x, e, node: Int($0), depth: 0) }.reduce(0, +) / Double(e.treeCount)
        return exp2(-mean / c(sampleSize))
    }
}

private func randomRows(_ rows: Int, _ columns: Int, seed: UInt64, missing: Double = 0) -> FeatureMatrix {
    var rng = SplitMix(seed: seed)
    var values: [Double] = []
    for _ in 0..<(rows * columns) {
        // Mixed scales, repeated values (a small integer column) and some NaN.
        let u = rng.unit()
        values.append(rng.unit() < missing ? .nan : (u < 0.3 ? Double(Int(u * 10)) : (rng.unit() - 0.5) * 1e3 * u))
    }
    return FeatureMatrix(columns: columns, values: values, labels: [Bool](repeating: false, count: rows))
}

private func row(_ m: FeatureMatrix, _ i: Int) -> [Double] { (0..<m.columns).map { m[i, $0] } }

@Suite struct IsolationForestTests {
    @Test func averagePathLengthIsThePapersCOfN() {
        #expect(IsolationForest.averagePathLength(0) == 0)
        #expect(IsolationForest.averagePathLength(1) == 0)
        #expect(IsolationForest.averagePathLength(2) == 1)
        #expect(abs(IsolationForest.averagePathLength(3) - (2 * 1.5 - 4.0 / 3)) < 1e-12)
        for n in [4, 10, 100, 256, 1000] {
            #expect(abs(IsolationForest.averagePathLength(n) - Reference.c(n)) < 1e-9)
            // The paper's approximation H(m) ≈ ln m + γ is short by 1/(2m) − O(1/m²).
            let m = Double(n - 1)
            let approx = 2 * (log(m) + 0.577_215_664_901_532_9) - 2 * m / Double(n)
            #expect(abs(IsolationForest.averagePathLength(n) - approx - 1 / m) < 1 / (m * m))
        }
    }

    @Test func scoresMatchARecursiveReferenceOnRandomData() throws {
        for (seed, rows, columns, missing) in [(1 as UInt64, 1_000, 5, 0.0), (2, 3_000, 12, 0.05), (3, 100, 3, 0.2)] {
            let data = randomRows(rows, columns, seed: seed, missing: missing)
            var p = IsolationForestParameters()
            p.trees = 50
            p.seed = seed
            let forest = IsolationForest.fit(data, parameters: p)
            let psi = min(256, rows)
            let artifact = ModelArtifact(
                kind: .isolationForest, featureNames: (0..<columns).map { "f\($0)" }, featureSchemaVersion: 1, trees: forest,
                calibration: IsolationForest.calibration(rows: rows, parameters: p))
            try artifact.check()
            let scorer = ModelScorer(artifact)
            var heightLimit = 0
            while 1 << heightLimit < psi { heightLimit += 1 }
            #expect(forest.treeCount == 50 && forest.baseMargin == 0)
            for t in forest.roots {
                // Each tree holds exactly ψ rows, to at most ⌈log₂ ψ⌉ levels, each split sending rows both ways.
                #expect(forest.cover[Int(t)] == Float(psi))
                #expect(forest.depth(Int(t)) <= heightLimit)
            }
            for (i, n) in forest.nodes.enumerated() where !n.isLeaf {
                let l = Int(n.left)
                #expect(
                    forest.cover[l] >= 1 && forest.cover[l + 1] >= 1 && forest.cover[l] + forest.cover[l + 1] == forest.cover[i])
            }
            for i in stride(from: 0, to: rows, by: max(1, rows / 200)) {
                let x = row(data, i)
                let expected = Reference.score(x, forest, sampleSize: psi)
                let viaTrees = x.withUnsafeBufferPointer { artifact.probability($0) }
                let compiled = x.withUnsafeBufferPointer { scorer.probability($0) }
                #expect(abs(viaTrees - expected) < 1e-6, "row \(i): \(viaTrees) vs reference \(expected)")
                #expect(abs(compiled - expected) < 1e-6, "row \(i): compiled \(compiled) vs reference \(expected)")
                #expect(compiled > 0 && compiled <= 1)
            }
        }
    }

    @Test func sameSeedSameForestAndAnotherSeedAnother() {
        let data = randomRows(2_000, 6, seed: 7, missing: 0.02)
        var p = IsolationForestParameters()
        p.trees = 40
        let a = IsolationForest.fit(data, parameters: p)
        let b = IsolationForest.fit(data, parameters: p)
        #expect(a == b)
        p.seed = 2
        #expect(IsolationForest.fit(data, parameters: p) != a)
    }

    @Test func anomaliesScoreHigherThanTheBlob() {
        var rng = SplitMix(seed: 11)
        func normal() -> Double { sqrt(-2 * log(1 - rng.unit())) * cos(2 * .pi * rng.unit()) }
        var values: [Double] = []
        var labels: [Bool] = []
        for i in 0..<3_000 {
            let outlier = i % 100 == 0
            for j in 0..<5 { values.append(normal() + (outlier && j == i / 100 % 5 ? 7 : 0)) }
            labels.append(outlier)
        }
        let data = FeatureMatrix(columns: 5, values: values, labels: labels)
        let forest = IsolationForest.fit(data)
        let c = IsolationForest.calibration(rows: data.rows, parameters: IsolationForestParameters())
        let scores = (0..<data.rows).map { i in data.withRow(i) { c.probability(margin: forest.margin($0)) } }
        let auc = Metrics.rocAUC(scores: scores, labels: labels)
        #expect(auc > 0.97, "AUC \(auc)")
        let outliers = scores.indices.filter { labels[$0] }.map { scores[$0] }
        let inliers = scores.indices.filter { !labels[$0] }.map { scores[$0] }
        let outlierMean = outliers.reduce(0, +) / Double(outliers.count)
        let inlierMean = inliers.reduce(0, +) / Double(inliers.count)
        #expect(outlierMean > inlierMean + 0.1 && inlierMean < 0.5, "outliers \(outlierMean), inliers \(inlierMean)")
    }

    @Test func labelsAreNeverRead() {
        let data = randomRows(1_500, 4, seed: 5)
        var flipped = FeatureMatrix(columns: 4)
        var rng = SplitMix(seed: 9)
        for i in 0..<data.rows { flipped.append(row(data, i), label: rng.unit() < 0.5) }
        #expect(IsolationForest.fit(data) == IsolationForest.fit(flipped))
    }

    @Test func artifactRoundTripsAndScoresTheSame() throws {
        let data = randomRows(800, 7, seed: 3, missing: 0.1)
        var p = IsolationForestParameters()
        p.trees = 30
        let artifact = ModelArtifact(
            kind: .isolationForest, featureNames: (0..<7).map { "f\($0)" }, featureSchemaVersion: 1,
            trees: IsolationForest.fit(data, parameters: p), calibration: IsolationForest.calibration(rows: 800, parameters: p),
            thresholds: DecisionThresholds(review: 0.6, decline: 0.7))
        let loaded = try ModelArtifact.load(json: try artifact.jsonData(), expectedFeatures: artifact.featureNames)
        #expect(loaded == artifact)
        #expect(loaded.calibration.method == "isolation")
        for i in 0..<50 {
            let x = row(data, i)
            #expect(
                x.withUnsafeBufferPointer { loaded.probability($0) } == x.withUnsafeBufferPointer { artifact.probability($0) })
        }
    }

    @Test func treeSHAPContributionsAddUpToMinusTheMeanPathLength() {
        let data = randomRows(1_200, 6, seed: 21, missing: 0.05)
        var p = IsolationForestParameters()
        p.trees = 25
        let forest = IsolationForest.fit(data, parameters: p)
        for i in stride(from: 0, to: data.rows, by: 37) {
            let x = row(data, i)
            let margin = x.withUnsafeBufferPointer { forest.margin($0) }
            let explanation = x.withUnsafeBufferPointer { forest.explain($0) }
            let total = explanation.bias + explanation.contributions.reduce(0, +)
            #expect(abs(total - margin) < 1e-5, "row \(i): \(total) vs margin \(margin)")
            // The margin is −E[h]: between −(limit + c(ψ)) and 0.
            #expect(margin < 0 && margin > -(8 + IsolationForest.averagePathLength(256)) - 1e-6)
        }
    }

    @Test func fewerRowsThanTheSampleSizeUseEveryRow() {
        let data = randomRows(40, 3, seed: 4)
        var p = IsolationForestParameters()
        p.trees = 10
        let forest = IsolationForest.fit(data, parameters: p)
        #expect(forest.roots.allSatisfy { forest.cover[Int($0)] == 40 })
        #expect(
            IsolationForest.calibration(rows: 40, parameters: p).pathLengthNormaliser == IsolationForest.averagePathLength(40))
        // Identical rows cannot be split: every tree is one leaf of all of them.
        let same = FeatureMatrix(
            columns: 2, values: [Double](repeating: 1, count: 200), labels: [Bool](repeating: false, count: 100))
        let flat = IsolationForest.fit(same, parameters: p)
        #expect(flat.nodes.allSatisfy(\.isLeaf) && flat.nodes.count == 10)
    }
}
