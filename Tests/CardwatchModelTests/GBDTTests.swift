import Foundation
import Testing

@testable import CardwatchModel

private func matrix(_ rows: [[Double]], _ labels: [Bool]) -> FeatureMatrix {
    FeatureMatrix(columns: rows[0].count, values: rows.flatMap { $0 }, labels: labels)
}

private func predict(_ e: TreeEnsemble, _ row: [Double]) -> Double {
    row.withUnsafeBufferPointer { sigmoid(e.margin($0)) }
}

@Suite struct GBDTLearningTests {
    @Test func learnsXORExactly() {
        // Uneven quadrants: with perfectly even ones no single first split gains anything,
        // and a greedy learner (XGBoost too) never starts.
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for ((a, b), count) in zip([(0.0, 0.0), (0, 1), (1, 0), (1, 1)], [40, 60, 50, 30]) {
            for _ in 0..<count {
                rows.append([a, b])
                labels.append((a == 1) != (b == 1))
            }
        }
        var p = GBDTParameters()
        p.trees = 50
        p.maxDepth = 2
        p.learningRate = 0.5
        p.subsample = 1
        p.columnSubsample = 1
        p.minChildWeight = 0.1
        let fit = GBDTTrainer.fit(matrix(rows, labels), parameters: p)
        for (a, b) in [(0.0, 0.0), (0, 1), (1, 0), (1, 1)] {
            let prob = predict(fit.ensemble, [a, b])
            #expect((prob > 0.9) == ((a == 1) != (b == 1)), "XOR(\(a), \(b)) → \(prob)")
            #expect(prob > 0.9 || prob < 0.1)
        }
    }

    @Test func learnsAThresholdAndPutsTheCutBetweenTheClasses() {
        var rng = SplitMix(seed: 3)
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for _ in 0..<2_000 {
            let x = Double(rng.next() % 200) / 2  // 200 distinct values: one bin each, so the cut can be exact
            rows.append([x, rng.unit()])  // the second feature is noise
            labels.append(x >= 37.5)
        }
        var p = GBDTParameters()
        p.trees = 30
        p.subsample = 1
        p.columnSubsample = 1
        let fit = GBDTTrainer.fit(matrix(rows, labels), parameters: p)
        var errors = 0
        for (row, y) in zip(rows, labels) where (predict(fit.ensemble, row) > 0.5) != y { errors += 1 }
        #expect(errors == 0)
        let root = fit.ensemble.nodes[Int(fit.ensemble.roots[0])]
        #expect(root.feature == 0)
        #expect(root.threshold == 37.5, "cut at \(root.threshold)")
    }

    @Test func missingValuesLearnTheirOwnDirection() {
        // Missing means fraud here: the learned default direction must send NaN to the positive side.
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for i in 0..<1_000 {
            let missing = i % 5 == 0
            rows.append([missing ? .nan : Double(i % 100)])
            labels.append(missing)
        }
        var p = GBDTParameters()
        p.trees = 40
        p.learningRate = 0.3
        p.subsample = 1
        p.columnSubsample = 1
        let fit = GBDTTrainer.fit(matrix(rows, labels), parameters: p)
        #expect(predict(fit.ensemble, [.nan]) > 0.9)
        #expect(predict(fit.ensemble, [42]) < 0.1)
    }

    @Test func trainingIsDeterministicForASeedAndEarlyStoppingKeepsTheBest() {
        var rng = SplitMix(seed: 11)
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for _ in 0..<3_000 {
            let r = (0..<5).map { _ in rng.unit() }
            rows.append(r)
            labels.append(r[0] + 0.3 * r[1] + 0.4 * rng.unit() > 1.0)
        }
        let data = matrix(Array(rows[..<2_000]), Array(labels[..<2_000]))
        let validation = matrix(Array(rows[2_000...]), Array(labels[2_000...]))
        var p = GBDTParameters()
        p.trees = 400
        p.earlyStoppingRounds = 10
        let a = GBDTTrainer.fit(data, validation: validation, parameters: p)
        let b = GBDTTrainer.fit(data, validation: validation, parameters: p)
        #expect(a.ensemble == b.ensemble)
        #expect(a.bestIteration < 400, "noisy labels must stop early")
        #expect(a.ensemble.treeCount == a.bestIteration)
        let best = a.validationLogLoss[a.bestIteration - 1]
        #expect(a.validationLogLoss.allSatisfy { $0 >= best })
    }
}

@Suite struct TreeSHAPTests {
    /// Random data, random parameters, random rows (with NaNs): contributions + bias == margin.
    @Test func contributionsPlusBiasEqualTheMarginOnRandomModels() {
        var rng = SplitMix(seed: 21)
        for trial in 0..<40 {
            let features = 2 + Int(rng.next() % 6)
            var rows: [[Double]] = []
            var labels: [Bool] = []
            for _ in 0..<400 {
                let r = (0..<features).map { _ in rng.unit() < 0.1 ? Double.nan : (rng.unit() * 10).rounded() }
                rows.append(r)
                labels.append((r[0].isNaN ? 5 : r[0]) + (r[1].isNaN ? 0 : r[1]) + rng.unit() * 4 > 11)
            }
            var p = GBDTParameters()
            p.trees = 5 + Int(rng.next() % 20)
            p.maxDepth = 1 + Int(rng.next() % 6)
            p.minChildWeight = 0.05
            p.seed = UInt64(trial)
            let e = GBDTTrainer.fit(matrix(rows, labels), parameters: p).ensemble
            let explainer = TreeExplainer(e)
            for row in rows.prefix(60) {
                row.withUnsafeBufferPointer { x in
                    let explanation = e.explain(x)
                    let total = explanation.bias + explanation.contributions.reduce(0, +)
                    #expect(abs(total - e.margin(x)) < 1e-6 * max(1, abs(e.margin(x))), "trial \(trial)")
                    // The leaf-table explainer gives the reference recursion's answer, feature by feature.
                    let fast = explainer.explain(x)
                    #expect(abs(fast.bias - explanation.bias) < 1e-9)
                    for (a, b) in zip(fast.contributions, explanation.contributions) {
                        #expect(
                            abs(a - b) < 1e-9 * max(1, abs(b)),
                            "trial \(trial): \(fast.contributions) vs \(explanation.contributions)")
                    }
                    // Parts by trees, cut at random, add up to the same (the served alerts are cut so).
                    var cuts = [0, e.treeCount]
                    for _ in 0..<Int(rng.next() % 4) { cuts.append(Int(rng.next() % UInt64(e.treeCount + 1))) }
                    cuts.sort()
                    var parts = [Double](repeating: 0, count: features)
                    parts.withUnsafeMutableBufferPointer { phi in
                        for (from, to) in zip(cuts, cuts.dropFirst()) { explainer.accumulate(x, trees: from..<to, into: phi) }
                    }
                    for (a, b) in zip(parts, explanation.contributions) {
                        #expect(
                            abs(a - b) < 1e-9 * max(1, abs(b)),
                            "trial \(trial), cuts \(cuts): \(parts) vs \(explanation.contributions)")
                    }
                }
            }
        }
    }

    @Test func aFeatureTheModelIgnoresGetsNoCredit() {
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for i in 0..<500 {
            rows.append([Double(i % 50), 7])
            labels.append(i % 50 > 30)
        }
        var p = GBDTParameters()
        p.trees = 10
        let e = GBDTTrainer.fit(matrix(rows, labels), parameters: p).ensemble
        [45.0, 7].withUnsafeBufferPointer { x in
            let ex = e.explain(x)
            #expect(ex.contributions[1] == 0)
            #expect(ex.contributions[0] > 0)
            #expect(ex.top(1).first?.feature == 0)
        }
    }
}

@Suite struct LogisticTests {
    @Test func recoversASeparatingDirectionAndCalibrates() {
        var rng = SplitMix(seed: 5)
        var rows: [[Double]] = []
        var labels: [Bool] = []
        for _ in 0..<4_000 {
            let a = rng.unit() * 10
            let b = rng.unit() * 1_000
            rows.append([a, b, 3])  // the constant column must not break standardisation
            labels.append(rng.unit() < sigmoid(1.5 * (a - 5)))
        }
        let model = LogisticTrainer.fit(matrix(rows, labels))
        // Standardised weight of `a` ≈ 1.5 × sd(a) ≈ 1.5 × 2.89; b irrelevant.
        #expect(abs(model.weights[0] - 1.5 * 10 / 12.0.squareRoot()) < 0.4)
        #expect(abs(model.weights[1]) < 0.15)
        #expect(model.weights[2] == 0)
        let margins = rows.map { r in r.withUnsafeBufferPointer { model.margin($0) } }
        let calibration = Calibration.fit(margins: margins, labels: labels)
        #expect(abs(calibration.a - 1) < 0.1 && abs(calibration.b) < 0.1, "an already calibrated model stays as it is")
    }
}

@Suite struct ArtifactTests {
    func trainedArtifact() -> ModelArtifact {
        var rng = SplitMix(seed: 8)
        var m = FeatureMatrix(columns: 3)
        for _ in 0..<600 {
            let r = [rng.unit(), rng.unit() < 0.1 ? .nan : rng.unit(), rng.unit()]
            m.append(r, label: r[0] > 0.7)
        }
        var p = GBDTParameters()
        p.trees = 15
        let e = GBDTTrainer.fit(m, parameters: p).ensemble
        let metrics = EvaluationMetrics(
            rows: 10, positives: 2, rocAUC: 0.9876, averagePrecision: .nan, threshold: 0.4, precision: 0.5, recall: 1,
            f1: 2 / 3.0,
            truePositives: 2, falsePositives: 2, trueNegatives: 6, falseNegatives: 0, recallAt1PctFPR: 0.5,
            cardPrecisionAt100: nil,
            perPatternRecall: ["geo_jump": 1])
        return ModelArtifact(
            kind: .gbdt, featureNames: ["a", "b", "c"], featureSchemaVersion: 1, trees: e,
            calibration: Calibration(a: 1.1, b: -0.2),
            thresholds: DecisionThresholds(review: 0.4, decline: 0.8),
            trainingWindow: TimeWindow(from: "2026-01-01T00:00:00Z", to: "2026-01-22T00:00:00Z"),
            metrics: metrics, parameters: p.record, createdAt: "2026-11-25T00:00:00Z")
    }

    @Test func artifactRoundTripsThroughJSONAndScoresIdentically() throws {
        let a = trainedArtifact()
        let json = try a.jsonData()
        let text = String(decoding: json, as: UTF8.self)
        for key in [
            "\"format_version\"", "\"feature_names\"", "\"feature_schema_version\"", "\"trees\"", "\"roc_auc\"", "\"thresholds\"",
        ] {
            #expect(text.contains(key), "artifact JSON lacks \(key)")
        }
        let b = try ModelArtifact.load(json: json, expectedFeatures: ["a", "b", "c"], expectedSchemaVersion: 1)
        #expect(b.trees == a.trees && b.calibration == a.calibration && b.thresholds == a.thresholds)
        #expect(b.metrics?.rocAUC == 0.9876 && b.metrics!.averagePrecision.isNaN)
        let scorer = ModelScorer(b)
        var rng = SplitMix(seed: 2)
        for _ in 0..<500 {
            let row = [rng.unit(), rng.unit() < 0.2 ? .nan : rng.unit() * 2 - 0.5, rng.unit()]
            row.withUnsafeBufferPointer { x in
                #expect(a.probability(x) == b.probability(x))
                #expect(abs(scorer.margin(x) - a.margin(x)) < 1e-9, "compiled forest = simple walk")
            }
        }
    }

    @Test func mismatchedArtifactsAreRefusedWithTheReason() throws {
        let json = try trainedArtifact().jsonData()
        do {
            _ = try ModelArtifact.load(json: json, expectedFeatures: ["a", "x", "c"])
            Issue.record("a model with other features was accepted")
        } catch {
            #expect("\(error)".contains("position 1") && "\(error)".contains("'b'") && "\(error)".contains("'x'"))
        }
        #expect(throws: ModelError.self) { try ModelArtifact.load(json: json, expectedFeatures: ["a", "b"]) }
        #expect(throws: ModelError.self) { try ModelArtifact.load(json: json, expectedSchemaVersion: 2) }
        #expect(throws: ModelError.self) { try ModelArtifact.load(json: Data("{\"kind\":\"gbdt\"}".utf8)) }
    }
}
