import Testing

@testable import CardwatchModel

/// Small random data with NaNs, integer-valued features (one bin per value) and a noisy rule.
private func randomData(_ rng: inout SplitMix, rows: Int, features: Int) -> FeatureMatrix {
    var m = FeatureMatrix(columns: features)
    for _ in 0..<rows {
        let r = (0..<features).map { _ in rng.unit() < 0.08 ? Double.nan : (rng.unit() * 12).rounded() }
        let signal = (r[0].isNaN ? 6 : r[0]) + (r[1].isNaN ? 0 : r[1]) * 0.5 + rng.unit() * 6
        m.append(r, label: signal > 13)
    }
    return m
}

@Suite struct RandomForestTests {
    /// Against a naive reference: every leaf holds the weighted fraud share of the bootstrap
    /// rows that reach it (divided by the tree count), its cover their bootstrap weight, no
    /// leaf weighs less than the minimum, and the margin is the average of the trees' shares.
    @Test func leavesAreBootstrapFraudSharesAndTheMarginTheirAverage() {
        var rng = SplitMix(seed: 5)
        for trial in 0..<12 {
            let features = 2 + Int(rng.next() % 5)
            let data = randomData(&rng, rows: 150 + Int(rng.next() % 300), features: features)
            var p = ForestParameters()
            p.trees = 3 + Int(rng.next() % 8)
            p.maxDepth = 1 + Int(rng.next() % 7)
            p.minChildWeight = [1, 2, 5][Int(rng.next() % 3)]
            p.scalePosWeight = [1, 3][Int(rng.next() % 2)]
            p.sampleShare = [1, 0.6][Int(rng.next() % 2)]
            p.seed = UInt64(trial)
            let forest = ForestTrainer.fit(data, parameters: p)
            #expect(forest.treeCount == p.trees && forest.baseMargin == 0)
            var perTree = [[Double]](repeating: [Double](repeating: 0, count: data.rows), count: p.trees)
            for t in 0..<p.trees {
                let counts = ForestTrainer.bootstrap(tree: t, rows: data.rows, parameters: p).counts
                var fraud: [Int: Double] = [:]
                var weight: [Int: Double] = [:]
                for r in 0..<data.rows {
                    let leaf = data.withRow(r) { forest.leaf($0, tree: t) }
                    perTree[t][r] = Double(forest.nodes[leaf].value)
                    let w = Double(counts[r]) * (data.labels[r] ? p.scalePosWeight : 1)
                    weight[leaf, default: 0] += w
                    if data.labels[r] { fraud[leaf, default: 0] += w }
                }
                for (leaf, w) in weight where w > 0 {
                    let share = (fraud[leaf] ?? 0) / w
                    let stored = Double(forest.nodes[leaf].value) * Double(p.trees)
                    #expect(abs(stored - share) < 1e-5, "trial \(trial), tree \(t), leaf \(leaf): \(stored) vs \(share)")
                    #expect(abs(Double(forest.cover[leaf]) - w) < 1e-3, "trial \(trial): cover")
                    #expect(w >= p.minChildWeight - 1e-9, "trial \(trial): a leaf lighter than the minimum")
                }
            }
            for r in 0..<data.rows {
                let naive = (0..<p.trees).reduce(0.0) { $0 + perTree[$1][r] }
                let margin = data.withRow(r) { forest.margin($0) }
                #expect(abs(margin - naive) < 1e-9, "trial \(trial), row \(r)")
                #expect(margin >= -1e-6 && margin <= 1 + 1e-6)
            }
        }
    }

    @Test func deterministicForASeedWhateverTheThreads() {
        var rng = SplitMix(seed: 8)
        let data = randomData(&rng, rows: 600, features: 5)
        var p = ForestParameters()
        p.trees = 9
        p.maxDepth = 8
        let a = ForestTrainer.fit(data, parameters: p)
        p.threads = 1
        let b = ForestTrainer.fit(data, parameters: p)
        p.threads = 3
        let c = ForestTrainer.fit(data, parameters: p)
        #expect(a == b && b == c)
        p.seed = 2
        #expect(ForestTrainer.fit(data, parameters: p) != a)
    }

    @Test func separatesAThresholdAndExplainsAdditively() {
        var rng = SplitMix(seed: 13)
        let data = randomData(&rng, rows: 800, features: 4)
        var p = ForestParameters()
        p.trees = 25
        p.maxDepth = 10
        let forest = ForestTrainer.fit(data, parameters: p)
        let margins = (0..<data.rows).map { r in data.withRow(r) { forest.margin($0) } }
        #expect(Metrics.rocAUC(scores: margins, labels: data.labels) > 0.9)
        // TreeSHAP over the forest's cover: contributions + bias == margin, both explainers.
        let explainer = TreeExplainer(forest)
        for r in 0..<100 {
            data.withRow(r) { x in
                let e = forest.explain(x)
                #expect(abs(e.bias + e.contributions.reduce(0, +) - forest.margin(x)) < 1e-6)
                let fast = explainer.explain(x)
                for (a, b) in zip(fast.contributions, e.contributions) { #expect(abs(a - b) < 1e-9) }
            }
        }
    }
}
