import CardwatchModel
import Foundation
import Testing

/// XGBoost interop (issue 4, item 6): a model written by XGBoost's `save_model` in JSON
/// predicts here what XGBoost predicted for it. The fixture (Fixtures/xgboost_*) is made by
/// Fixtures/make_xgboost_fixture.py; see xgboost_meta.json for the XGBoost version.
@Suite struct XGBoostTests {
    /// Probabilities must agree with XGBoost's to 1e-6 absolute; margins to 1e-6 absolute up
    /// to |margin| 1 and to 1e-6 relative beyond. XGBoost sums a margin in float32 (whose step
    /// is 4.8e-7 between 4 and 8), so its own margins of 4 to 7 carry rounding of about 1e-6,
    /// while ours are summed in double; `float32SumIsBitIdentical` shows the leaves are the same.
    static let tolerance = 1e-6

    @Test func fixtureShape() throws {
        let ensemble = try XGBoostImport.ensemble(json: fixture("xgboost_model.json"))
        let meta = try JSONSerialization.jsonObject(with: fixture("xgboost_meta.json")) as! [String: Any]
        #expect(ensemble.treeCount == meta["num_trees"] as? Int)
        #expect(ensemble.treeCount == 40)
        #expect(ensemble.featureCount == meta["num_feature"] as? Int)
        #expect(ensemble.featureCount == 8)
        // XGBoost >= 2 estimated base_score (it is not the old default 0.5).
        let baseScore = try #require(meta["base_score"] as? String)
        #expect(baseScore != "5E-1" && baseScore != "[5E-1]")
        #expect(ensemble.baseMargin != 0)
        #expect(ensemble.cover.count == ensemble.nodes.count)
    }

    @Test func predictionsMatchXGBoost() throws {
        let ensemble = try XGBoostImport.ensemble(json: fixture("xgboost_model.json"))
        let rows = try predictionRows()
        #expect(rows.count == 200)
        var maxMarginDiff = 0.0
        var maxAbsoluteMarginDiff = 0.0
        var maxProbabilityDiff = 0.0
        for (r, row) in rows.enumerated() {
            let margin = row.x.withUnsafeBufferPointer { ensemble.margin($0) }
            let marginDiff = abs(margin - row.margin) / max(1, abs(row.margin))
            let probabilityDiff = abs(sigmoid(margin) - row.probability)
            #expect(marginDiff <= Self.tolerance, "row \(r): margin \(margin), XGBoost \(row.margin)")
            #expect(probabilityDiff <= Self.tolerance, "row \(r): probability \(sigmoid(margin)), XGBoost \(row.probability)")
            maxMarginDiff = max(maxMarginDiff, marginDiff)
            maxAbsoluteMarginDiff = max(maxAbsoluteMarginDiff, abs(margin - row.margin))
            maxProbabilityDiff = max(maxProbabilityDiff, probabilityDiff)
        }
        print(
            "XGBoost parity over \(rows.count) rows: max |Δmargin| \(maxAbsoluteMarginDiff) "
                + "(scaled by max(1, |margin|): \(maxMarginDiff)), max |Δprobability| \(maxProbabilityDiff)")

        // The fixture exercises what matters: missing values, and values exactly at a split
        // threshold (which must go right) or a float32 step either side of one.
        let thresholds = Set(ensemble.nodes.filter { !$0.isLeaf }.map(\.threshold))
        let withNaN = rows.filter { $0.x.contains { $0.isNaN } }.count
        let atThreshold = rows.filter { $0.x.contains { !$0.isNaN && thresholds.contains(Float($0)) } }.count
        let allMissing = rows.filter { $0.x.allSatisfy(\.isNaN) }.count
        #expect(withNaN >= 40)
        #expect(atThreshold >= 50)
        #expect(allMissing >= 1)
    }

    /// XGBoost sums the base margin and the leaves in float32, tree by tree; doing the same
    /// with our layout reproduces its margins bit for bit, so every row reaches the same leaves.
    @Test func float32SumIsBitIdentical() throws {
        let ensemble = try XGBoostImport.ensemble(json: fixture("xgboost_model.json"))
        for (r, row) in try predictionRows().enumerated() {
            let sum = row.x.withUnsafeBufferPointer { x in
                var s = Float(ensemble.baseMargin)
                for t in 0..<ensemble.treeCount { s += ensemble.nodes[ensemble.leaf(x, tree: t)].value }
                return s
            }
            #expect(sum == Float(row.margin), "row \(r)")
        }
    }

    @Test func layoutKeepsSiblingsAdjacent() throws {
        let ensemble = try XGBoostImport.ensemble(json: fixture("xgboost_model.json"))
        let ends = ensemble.roots.dropFirst().map(Int.init) + [ensemble.nodes.count]
        for t in 0..<ensemble.treeCount {
            let range = Int(ensemble.roots[t])..<ends[t]
            #expect(!range.isEmpty)
            for i in range where !ensemble.nodes[i].isLeaf {
                let left = Int(ensemble.nodes[i].left)
                #expect(left > i && left + 1 < range.upperBound, "tree \(t) node \(i)")
                // A node's cover is its children's (hessians are summed, up to float rounding).
                let children = ensemble.cover[left] + ensemble.cover[left + 1]
                #expect(abs(children - ensemble.cover[i]) <= 1e-3 * ensemble.cover[i] + 1e-4)
            }
        }
    }

    @Test func artifactScoresLikeXGBoost() throws {
        let artifact = try XGBoostImport.artifact(json: fixture("xgboost_model.json"))
        #expect(artifact.kind == .gbdt)
        #expect(artifact.calibration == Calibration())
        #expect(artifact.featureNames == (0..<8).map { "f\($0)" })
        #expect(artifact.parameters["xgboost_version"] == "3.2.0")
        let reloaded = try ModelArtifact.load(json: artifact.jsonData(), expectedFeatures: artifact.featureNames)
        #expect(reloaded == artifact)
        for row in try predictionRows() {
            let p = row.x.withUnsafeBufferPointer { reloaded.probability($0) }
            #expect(abs(p - row.probability) <= Self.tolerance)
        }

        let names = ["amount", "a", "b", "c", "d", "e", "f", "g"]
        let named = try XGBoostImport.artifact(json: fixture("xgboost_model.json"), featureNames: names)
        #expect(named.featureNames == names)
        #expect(throws: ModelError.self) { try XGBoostImport.artifact(json: fixture("xgboost_model.json"), featureNames: ["x"]) }
    }

    @Test func savedFeatureNamesAreUsedAndChecked() throws {
        var model = TinyModel()
        model.featureNames = ["amount", "velocity"]
        let artifact = try XGBoostImport.artifact(json: model.json)
        #expect(artifact.featureNames == ["amount", "velocity"])
        let error = try #require(throws: ModelError.self) {
            try XGBoostImport.artifact(json: model.json, featureNames: ["amount", "distance"])
        }
        #expect(error.description.contains("velocity"))
    }

    /// A hand-made model whose node numbering is not breadth-first, scored by hand.
    @Test func tinyModelIsRelaidAndScored() throws {
        let ensemble = try XGBoostImport.ensemble(json: TinyModel().json)
        #expect(ensemble.treeCount == 2)
        #expect(ensemble.roots == [0, 5])
        #expect(ensemble.baseMargin == 0)
        // BFS: 0 → (2, 1) → (4, 3) in XGBoost's numbering.
        #expect(ensemble.nodes[0].left == 1 && ensemble.nodes[0].threshold == 1)
        #expect(ensemble.nodes[1].feature == 1 && ensemble.nodes[2].value == 0.5)
        #expect(ensemble.nodes[3].value == 0.125 && ensemble.nodes[4].value == -0.25)
        #expect(ensemble.cover == [10, 6, 4, 2, 4, 10])
        let cases: [([Double], Double)] = [
            ([0.5, -1], 0.125 + 0.0625),
            ([1.0, -1], 0.5 + 0.0625),  // equal to the threshold: right
            ([0.999_999_99, -1], 0.5 + 0.0625),  // rounds to 1 in float32: right, as in XGBoost
            ([0.999_999, -1], 0.125 + 0.0625),
            ([.nan, 0], -0.25 + 0.0625),  // missing: default left, then 0 ≥ -0.5: right
            ([0, .nan], -0.25 + 0.0625),  // missing: default right
            ([.nan, .nan], -0.25 + 0.0625),
        ]
        for (x, expected) in cases {
            #expect(x.withUnsafeBufferPointer { ensemble.margin($0) } == expected, "\(x)")
        }
    }

    /// Thresholds are read as float32 straight from XGBoost's decimal text: these decimals
    /// round differently when they go through a double first.
    @Test(arguments: ["6.467822313308716", "0.025306879542768", "5.79090352403e-4"])
    func thresholdsAreReadWithoutDoubleRounding(text: String) throws {
        let direct = try #require(Float(text))
        #expect(Float(try #require(Double(text))) != direct)
        var model = TinyModel()
        model.trees[0].condition[0] = text
        #expect(try XGBoostImport.ensemble(json: model.json).nodes[0].threshold == direct)
    }

    @Test(arguments: [
        ("\"5E-1\"", 0.0), ("\"[5E-1]\"", 0.0), ("0.5", 0.0), ("\" [ 5E-1 ] \"", 0.0),
        ("\"[3.15E-1]\"", Double(-log(Float(1) / 0.315 - 1))), ("\"3.15E-1\"", Double(-log(Float(1) / 0.315 - 1))),
    ])
    func baseScoreForms(raw: String, margin: Double) throws {
        var model = TinyModel()
        model.baseScore = raw
        #expect(try XGBoostImport.ensemble(json: model.json).baseMargin == margin)
    }

    @Test func truncatedJSONIsRefused() throws {
        let data = try fixture("xgboost_model.json")
        for length in [0, 1, 10, 100, data.count / 3, data.count / 2, data.count - 2, data.count - 1] {
            let error = try #require(throws: ModelError.self) { try XGBoostImport.ensemble(json: data.prefix(length)) }
            #expect(!error.description.isEmpty)
        }
        #expect(throws: ModelError.self) { try XGBoostImport.ensemble(json: Data("not json".utf8)) }
        #expect(throws: ModelError.self) { try XGBoostImport.ensemble(json: Data("[]".utf8)) }
        #expect(throws: ModelError.self) { try XGBoostImport.ensemble(json: Data("{\"learner\":{}}".utf8)) }
    }

    @Test func ubjsonIsRefusedWithAHint() throws {
        let ubjson = Data([0x7B, 0x4C, 0, 0, 0, 0, 0, 0, 0, 7]) + Data("learner{".utf8)
        let error = try #require(throws: ModelError.self) { try XGBoostImport.ensemble(json: ubjson) }
        #expect(error.description.contains("UBJSON"))
    }

    @Test func wrongObjectiveIsRefused() throws {
        let text = try #require(String(data: fixture("xgboost_model.json"), encoding: .utf8))
        #expect(text.contains("\"binary:logistic\""))
        let squared = Data(text.replacingOccurrences(of: "\"binary:logistic\"", with: "\"reg:squarederror\"").utf8)
        let error = try #require(throws: ModelError.self) { try XGBoostImport.ensemble(json: squared) }
        #expect(error.description.contains("reg:squarederror") && error.description.contains("binary:logistic"))
    }

    @Test func outOfRangeChildIsRefused() throws {
        let text = try #require(String(data: fixture("xgboost_model.json"), encoding: .utf8))
        let range = try #require(text.range(of: "\"left_children\":[1,"))
        let bad = text.replacingCharacters(in: range, with: "\"left_children\":[9999,")
        let error = try #require(throws: ModelError.self) { try XGBoostImport.ensemble(json: Data(bad.utf8)) }
        #expect(error.description.contains("9999"))
    }

    @Test(arguments: Malformation.allCases)
    func malformedModelIsRefused(_ malformation: Malformation) throws {
        var model = TinyModel()
        malformation.apply(to: &model)
        let error = try #require(throws: ModelError.self) { try XGBoostImport.ensemble(json: model.json) }
        #expect(error.description.contains(malformation.expectedMessage), "\(error)")
    }

    /// Random byte edits of a valid model: each is refused with a ModelError or loads into an
    /// ensemble that is safe to score; nothing traps.
    @Test func mutatedInputNeverCrashes() throws {
        let original = Array(TinyModel().json)
        let alphabet = Array("0123456789-+.eE,:[]{}\" tfn".utf8)
        var rng = SplitMix(seed: 0x5EED)
        var loaded = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
            }
            do {
                let e = try XGBoostImport.ensemble(json: Data(bytes))
                loaded += 1
                for (i, n) in e.nodes.enumerated() where !n.isLeaf {
                    #expect(Int(n.feature) < e.featureCount && Int(n.left) > i && Int(n.left) + 1 < e.nodes.count)
                }
                let x = [Double](repeating: .nan, count: e.featureCount)
                #expect(x.withUnsafeBufferPointer { e.margin($0) }.isFinite)
            } catch {
                #expect(error is ModelError)
            }
        }
        #expect(loaded > 0)
    }
}

// MARK: Fixtures

private func fixture(_ name: String) throws -> Data {
    let url = try #require(
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)
            ?? Bundle.module.resourceURL?.appendingPathComponent("Fixtures/\(name)"))
    return try Data(contentsOf: url)
}

private struct PredictionRow {
    var x: [Double]
    var margin: Double
    var probability: Double
}

/// xgboost_predictions.csv: f0…f7 (empty = NaN), then XGBoost's margin and probability.
private func predictionRows() throws -> [PredictionRow] {
    let text = try #require(String(data: fixture("xgboost_predictions.csv"), encoding: .utf8))
    let lines = text.split(separator: "\n")
    let header = lines[0].split(separator: ",", omittingEmptySubsequences: false)
    #expect(header.suffix(2) == ["margin", "probability"])
    return try lines.dropFirst().map { line in
        let cells = line.split(separator: ",", omittingEmptySubsequences: false)
        #expect(cells.count == header.count)
        let numbers = try cells.map { cell -> Double in cell.isEmpty ? .nan : try #require(Double(cell), "cell '\(cell)'") }
        return PredictionRow(
            x: Array(numbers.dropLast(2)), margin: numbers[numbers.count - 2], probability: numbers[numbers.count - 1])
    }
}

extension XGBoostTests {
    /// A two-tree, two-feature model in XGBoost's JSON layout, numbered the way XGBoost may number
    /// nodes (not breadth-first), with every field the tests need to break.
    struct TinyModel {
        struct Tree {
            var left: [Int]
            var right: [Int]
            var feature: [Int]
            var condition: [String]
            var defaultLeft: [Int]
            var hessian: [Float]
            var splitType: [Int]
            var numNodes: String? = nil
        }

        var objective = "binary:logistic"
        var booster = "gbtree"
        var baseScore = "\"[5E-1]\""
        var numFeature = "\"2\""
        var numClass = "\"0\""
        var featureNames: [String] = []
        var declaredTrees: Int? = nil
        var trees = [
            // 0: f0 < 1 (missing left) → 2 else 1; 2: f1 < -0.5 (missing right) → 4 else 3.
            Tree(
                left: [2, -1, 4, -1, -1], right: [1, -1, 3, -1, -1], feature: [0, 0, 1, 0, 0],
                condition: ["1E0", "5E-1", "-5E-1", "-2.5E-1", "1.25E-1"], defaultLeft: [1, 0, 0, 0, 0],
                hessian: [10, 4, 6, 4, 2], splitType: [0, 0, 0, 0, 0]),
            Tree(left: [-1], right: [-1], feature: [0], condition: ["6.25E-2"], defaultLeft: [0], hessian: [10], splitType: [0]),
        ]

        var json: Data {
            func list<T>(_ a: [T]) -> String { "[" + a.map { "\($0)" }.joined(separator: ",") + "]" }
            let treeJSON = trees.enumerated().map { id, t in
                """
                {"base_weights":\(list(t.condition)),"categories":[],"categories_nodes":[],"categories_segments":[],\
                "categories_sizes":[],"default_left":\(list(t.defaultLeft)),"id":\(id),"left_children":\(list(t.left)),\
                "loss_changes":\(list(t.hessian)),"parents":\(list(t.left.map { _ in 0 })),"right_children":\(list(t.right)),\
                "split_conditions":\(list(t.condition)),"split_indices":\(list(t.feature)),"split_type":\(list(t.splitType)),\
                "sum_hessian":\(list(t.hessian)),"tree_param":{"num_deleted":"0","num_feature":"2",\
                "num_nodes":"\(t.numNodes ?? String(t.left.count))","size_leaf_vector":"1"}}
                """
            }
            let names = list(featureNames.map { "\"\($0)\"" })
            return Data(
                """
                {"learner":{"attributes":{},"feature_names":\(names),"feature_types":[],\
                "gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1",\
                "num_trees":"\(declaredTrees ?? trees.count)"},"iteration_indptr":[0,1,2],"tree_info":\(list(trees.map { _ in 0 })),\
                "trees":[\(treeJSON.joined(separator: ","))]},"name":"\(booster)"},\
                "learner_model_param":{"base_score":\(baseScore),"boost_from_average":"1","num_class":\(numClass),\
                "num_feature":\(numFeature),"num_target":"1"},\
                "objective":{"name":"\(objective)","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[3,2,0]}
                """.utf8)
        }
    }

    enum Malformation: String, CaseIterable, Sendable {
        case wrongObjective, dart, gblinear, multiClass, vectorBaseScore, baseScoreOne, baseScoreText, zeroFeatures
        case childOutOfRange, negativeChild, oneChild, cycleToRoot, sharedChild, lengthMismatch, numNodesMismatch
        case featureOutOfRange, categoricalSplit, defaultLeftTwo, treeCountMismatch, nonNumericThreshold, hugeThreshold
        case negativeHessian, featureNamesCount, emptyTree

        func apply(to m: inout TinyModel) {
            switch self {
            case .wrongObjective: m.objective = "reg:squarederror"
            case .dart: m.booster = "dart"
            case .gblinear: m.booster = "gblinear"
            case .multiClass: m.numClass = "\"3\""
            case .vectorBaseScore: m.baseScore = "\"[5E-1,5E-1]\""
            case .baseScoreOne: m.baseScore = "\"1E0\""
            case .baseScoreText: m.baseScore = "\"half\""
            case .zeroFeatures: m.numFeature = "\"0\""
            case .childOutOfRange: m.trees[0].left[2] = 5
            case .negativeChild: m.trees[0].right[0] = -3
            case .oneChild: m.trees[0].right[2] = -1
            case .cycleToRoot: m.trees[0].left[2] = 0
            case .sharedChild: m.trees[0].right[2] = 4
            case .lengthMismatch: m.trees[0].hessian.removeLast()
            case .numNodesMismatch: m.trees[0].numNodes = "7"
            case .featureOutOfRange: m.trees[0].feature[2] = 2
            case .categoricalSplit: m.trees[0].splitType[0] = 1
            case .defaultLeftTwo: m.trees[0].defaultLeft[0] = 2
            case .treeCountMismatch: m.declaredTrees = 3
            case .nonNumericThreshold: m.trees[0].condition[0] = "\"1\""
            case .hugeThreshold: m.trees[0].condition[0] = "1E39"
            case .negativeHessian: m.trees[0].hessian[1] = -1
            case .featureNamesCount: m.featureNames = ["only one"]
            case .emptyTree:
                m.trees[1] = TinyModel.Tree(
                    left: [], right: [], feature: [], condition: [], defaultLeft: [], hessian: [], splitType: [])
            }
        }

        var expectedMessage: String {
            switch self {
            case .wrongObjective: "reg:squarederror"
            case .dart: "dart"
            case .gblinear: "gblinear"
            case .multiClass: "num_class 3"
            case .vectorBaseScore: "2 values"
            case .baseScoreOne, .baseScoreText: "base_score"
            case .zeroFeatures: "num_feature"
            case .childOutOfRange: "child 5"
            case .negativeChild: "child -3"
            case .oneChild: "one child"
            case .cycleToRoot: "child 0"
            case .sharedChild: "reached twice"
            case .lengthMismatch: "sum_hessian has 4 entries"
            case .numNodesMismatch: "num_nodes"
            case .featureOutOfRange: "feature 2"
            case .categoricalSplit: "categorical"
            case .defaultLeftTwo: "default_left"
            case .treeCountMismatch: "declares 3 trees"
            case .nonNumericThreshold, .hugeThreshold: "split_conditions"
            case .negativeHessian: "sum_hessian -1"
            case .featureNamesCount: "names 1 features"
            case .emptyTree: "no nodes"
            }
        }
    }
}
