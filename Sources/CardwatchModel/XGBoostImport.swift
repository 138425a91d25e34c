public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a model written by XGBoost's `Booster.save_model("….json")` (the JSON format of
/// XGBoost 1.x to 3.x) into Cardwatch's flattened tree layout, so that a model trained in
/// Python can be served here and gives the margins XGBoost gives.
///
/// Only what Cardwatch can score exactly is accepted: objective `binary:logistic`, booster
/// `gbtree`, one output, numerical splits. Everything else, and anything malformed, is
/// refused with a `ModelError` saying why; bad input never traps.
///
/// XGBoost's node numbering is replaced by a breadth-first layout per tree, so that siblings
/// are adjacent and children follow their parent; nodes no path reaches (XGBoost's deleted
/// nodes) are dropped. `cover` is XGBoost's `sum_hessian`. The base margin is
/// `logit(base_score)` computed in single precision, as XGBoost computes it.
public enum XGBoostImport {
    /// The tree ensemble of an XGBoost JSON model.
    public static func ensemble(json: Data) throws -> TreeEnsemble {
        try parse(json).ensemble
    }

    /// A Cardwatch model artifact (kind `.gbdt`, identity calibration) for an XGBoost JSON
    /// model. `featureNames` defaults to the names saved in the model (XGBoost stores them
    /// when it was trained on a named table), else `f0`, `f1`, …; names given here must
    /// agree with the saved ones, if any, and number `num_feature`.
    public static func artifact(
        json: Data, featureNames: [String]? = nil, featureSchemaVersion: Int = 1,
        thresholds: DecisionThresholds = DecisionThresholds(review: 0.5, decline: 0.9), createdAt: String = ""
    ) throws -> ModelArtifact {
        let model = try parse(json)
        let count = model.ensemble.featureCount
        let names: [String]
        if let featureNames {
            guard featureNames.count == count else {
                throw ModelError("XGBoost model uses \(count) features, \(featureNames.count) feature names were given")
            }
            if !model.featureNames.isEmpty, model.featureNames != featureNames {
                let i = zip(model.featureNames, featureNames).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
                throw ModelError(
                    "XGBoost model was trained on other features: at position \(i) it has '\(model.featureNames[i])', "
                        + "the given names have '\(featureNames[i])'")
            }
            names = featureNames
        } else if !model.featureNames.isEmpty {
            guard model.featureNames.count == count else {
                throw ModelError("XGBoost model names \(model.featureNames.count) features but num_feature is \(count)")
            }
            names = model.featureNames
        } else {
            names = (0..<count).map { "f\($0)" }
        }
        var parameters = [
            "source": "xgboost",
            "objective": "binary:logistic",
            "booster": "gbtree",
            "num_trees": String(model.ensemble.treeCount),
            "base_score": model.baseScoreText,
        ]
        if let v = model.version { parameters["xgboost_version"] = v }
        let artifact = ModelArtifact(
            kind: .gbdt, featureNames: names, featureSchemaVersion: featureSchemaVersion, trees: model.ensemble,
            calibration: Calibration(), thresholds: thresholds, parameters: parameters, createdAt: createdAt)
        try artifact.check()
        return artifact
    }

    // MARK: Parsing

    private struct Parsed {
        var ensemble: TreeEnsemble
        var featureNames: [String]
        var baseScoreText: String
        var version: String?
    }

    private static func parse(_ json: Data) throws -> Parsed {
        guard !json.isEmpty else { throw ModelError("XGBoost model: the input is empty") }
        let decoder = JSONDecoder()
        let header: HeaderFile
        do { header = try decoder.decode(HeaderFile.self, from: json) } catch {
            throw ModelError("not an XGBoost JSON model: \(describe(error))\(ubjsonHint(json))")
        }
        let learner = header.learner

        let objective = learner.objective.name
        guard objective == "binary:logistic" else {
            throw ModelError("XGBoost objective '\(objective)' is not supported: only binary:logistic models can be imported")
        }
        switch learner.gradientBooster.name {
        case "gbtree": break
        case "dart":
            throw ModelError(
                "XGBoost booster 'dart' is not supported (it weights its trees at prediction time): train with booster=gbtree")
        case "gblinear": throw ModelError("XGBoost booster 'gblinear' is a linear model, not trees: it cannot be imported")
        case let other: throw ModelError("XGBoost booster '\(other)' is not supported: only gbtree")
        }

        let param = learner.learnerModelParam
        guard let featureCount = param.numFeature.int, featureCount >= 1 else {
            throw ModelError("XGBoost learner_model_param.num_feature '\(param.numFeature.text)' is not a positive integer")
        }
        guard featureCount <= Int(Int16.max) else {
            throw ModelError("XGBoost model has \(featureCount) features; at most \(Int16.max) are supported")
        }
        if let c = param.numClass {
            guard let n = c.int, n <= 1 else {
                throw ModelError("XGBoost model has num_class \(c.text): only binary models (one output) can be imported")
            }
        }
        if let t = param.numTarget {
            guard let n = t.int, n <= 1 else {
                throw ModelError("XGBoost model has num_target \(t.text): only single-output models can be imported")
            }
        }
        let baseScore = try parseBaseScore(param.baseScore)
        // XGBoost's ProbToMargin for the logistic loss, in single precision: -logf(1/p - 1).
        let baseMargin = Double(-log(Float(1) / baseScore - Float(1)))
        guard baseMargin.isFinite else { throw ModelError("XGBoost base_score \(baseScore) gives no finite margin") }

        let model: BoosterFile
        do { model = try decoder.decode(BoosterFile.self, from: json) } catch {
            throw ModelError("malformed XGBoost gbtree model: \(describe(error))")
        }
        let gbtree = model.learner.gradientBooster.model
        if let declared = gbtree.gbtreeModelParam?.numTrees, let n = declared.int, n != gbtree.trees.count {
            throw ModelError("XGBoost model declares \(n) trees but holds \(gbtree.trees.count)")
        }
        if let info = gbtree.treeInfo {
            guard info.count == gbtree.trees.count else {
                throw ModelError("XGBoost tree_info has \(info.count) entries for \(gbtree.trees.count) trees")
            }
            if let i = info.firstIndex(where: { $0 != 0 }) {
                throw ModelError(
                    "XGBoost tree \(i) belongs to output group \(info[i]): only single-output models can be imported")
            }
        }

        var nodes: [TreeNode] = []
        var cover: [Float] = []
        var roots: [Int32] = []
        roots.reserveCapacity(gbtree.trees.count)
        for (t, tree) in gbtree.trees.enumerated() {
            guard nodes.count + tree.leftChildren.count < Int(Int32.max) else {
                throw ModelError("XGBoost model has too many nodes")
            }
            roots.append(Int32(nodes.count))
            try append(tree, index: t, featureCount: featureCount, to: &nodes, cover: &cover)
        }
        let names = learner.featureNames ?? []
        if !names.isEmpty, names.count != featureCount {
            throw ModelError("XGBoost model names \(names.count) features but num_feature is \(featureCount)")
        }
        let version = header.version.map { $0.map(String.init).joined(separator: ".") }
        return Parsed(
            ensemble: TreeEnsemble(nodes: nodes, roots: roots, cover: cover, baseMargin: baseMargin, featureCount: featureCount),
            featureNames: names, baseScoreText: param.baseScore.text, version: version)
    }

    /// Checks one XGBoost tree and appends it in breadth-first order.
    private static func append(
        _ tree: TreeFile, index t: Int, featureCount: Int, to nodes: inout [TreeNode], cover: inout [Float]
    ) throws {
        func fail(_ what: String) -> ModelError { ModelError("XGBoost tree \(t): \(what)") }
        let n = tree.leftChildren.count
        guard n >= 1 else { throw fail("has no nodes") }
        let lengths: [(String, Int)] = [
            ("right_children", tree.rightChildren.count), ("split_indices", tree.splitIndices.count),
            ("split_conditions", tree.splitConditions.count), ("default_left", tree.defaultLeft.count),
            ("sum_hessian", tree.sumHessian.count), ("base_weights", tree.baseWeights?.count ?? n),
            ("split_type", tree.splitType?.count ?? n),
        ]
        for (name, count) in lengths where count != n {
            throw fail("\(name) has \(count) entries, left_children has \(n)")
        }
        if let p = tree.treeParam {
            if let declared = p.numNodes, declared.int != n {
                throw fail("tree_param.num_nodes is \(declared.text) but the arrays hold \(n) nodes")
            }
            if let size = p.sizeLeafVector, let s = size.int, s > 1 {
                throw fail("has vector leaves (size_leaf_vector \(s)): only single-output trees can be imported")
            }
        }

        // Breadth-first: every node reached once, from the root; children are appended
        // together, so siblings end up adjacent and after their parent.
        var order = [0]
        var position = [Int](repeating: -1, count: n)
        position[0] = 0
        var head = 0
        while head < order.count {
            let i = order[head]
            head += 1
            let l = tree.leftChildren[i]
            let r = tree.rightChildren[i]
            if l == -1 || r == -1 {
                guard l == r else { throw fail("node \(i) has one child (left \(l), right \(r))") }
                continue
            }
            for c in [l, r] {
                guard c > 0, c < n else { throw fail("node \(i) has child \(c), outside 1..<\(n)") }
                guard position[c] == -1 else { throw fail("node \(c) is reached twice (a cycle or a shared child)") }
                position[c] = order.count
                order.append(c)
            }
        }

        let base = nodes.count
        for i in order {
            let h = tree.sumHessian[i].value
            guard h.isFinite, h >= 0 else { throw fail("node \(i) has sum_hessian \(h)") }
            let condition = tree.splitConditions[i].value
            guard condition.isFinite else { throw fail("node \(i) has split_condition \(condition)") }
            let l = tree.leftChildren[i]
            if l == -1 {
                nodes.append(.leaf(condition))
            } else {
                if let types = tree.splitType, types[i] != 0 {
                    throw fail("node \(i) is a categorical split (split_type \(types[i])): only numerical splits are supported")
                }
                let feature = tree.splitIndices[i]
                guard feature >= 0, feature < featureCount else {
                    throw fail("node \(i) splits on feature \(feature), outside 0..<\(featureCount)")
                }
                nodes.append(
                    TreeNode(
                        threshold: condition, feature: Int16(feature), defaultLeft: tree.defaultLeft[i].value,
                        left: Int32(base + position[l]), value: 0))
            }
            cover.append(h)
        }
    }

    /// `base_score` as XGBoost 1.x–2.x ("5E-1") and 3.x ("[5E-1]") write it, or a plain number.
    private static func parseBaseScore(_ raw: Loose) throws -> Float {
        var text = raw.text.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("[") && text.hasSuffix("]") {
            let items = text.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
            guard items.count == 1 else {
                throw ModelError(
                    "XGBoost base_score '\(raw.text)' has \(items.count) values: only single-output models can be imported")
            }
            text = items[0].trimmingCharacters(in: .whitespaces)
        }
        guard let p = raw.float ?? Float(text), p > 0, p < 1 else {
            throw ModelError("XGBoost base_score '\(raw.text)' is not a probability strictly between 0 and 1")
        }
        return p
    }

    private static func describe(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ keys: [any CodingKey]) -> String {
            var s = ""
            for k in keys {
                if let i = k.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
            }
            return s.isEmpty ? "the top level" : s
        }
        switch e {
        case .keyNotFound(let key, let context): return "missing '\(path(context.codingPath + [key]))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "unexpected value at '\(path(context.codingPath))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "not valid JSON" + (context.underlyingError.map { " (\($0))" } ?? "")
            }
            return "bad value at '\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    private static func ubjsonHint(_ data: Data) -> String {
        // UBJSON (XGBoost's default format and .ubj files) starts '{' then a length marker.
        guard data.count >= 2, data[data.startIndex] == UInt8(ascii: "{") else { return "" }
        let second = data[data.startIndex + 1]
        let markers: [UInt8] = [UInt8(ascii: "L"), UInt8(ascii: "i"), UInt8(ascii: "U"), UInt8(ascii: "l"), UInt8(ascii: "I")]
        return markers.contains(second)
            ? " (this looks like UBJSON: save the model with a .json file name to get XGBoost's JSON format)" : ""
    }
}

// MARK: The parts of XGBoost's JSON schema we read

/// A scalar XGBoost may write as a string ("8", "5E-1", "[5E-1]") or as a number.
private struct Loose: Decodable {
    var text: String
    var float: Float?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            text = s
        } else if let i = try? c.decode(Int.self) {
            text = String(i)
            float = Float(i)
        } else if let f = try? c.decode(Float.self) {
            text = "\(f)"
            float = f
        } else {
            throw DecodingError.typeMismatch(
                String.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a string or a number"))
        }
    }

    var int: Int? { Int(text.trimmingCharacters(in: .whitespaces)) }
}

/// A float as XGBoost wrote it. Decoded as Float straight from the decimal text (not through
/// Double, which can round a second time), with a clear error when it is out of Float's range.
private struct F32: Decodable {
    var value: Float

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let f = try? c.decode(Float.self) {
            value = f
        } else if let d = try? c.decode(Double.self) {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "\(d) is out of range for a 32-bit float"))
        } else {
            throw DecodingError.typeMismatch(
                Float.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a number"))
        }
    }
}

/// `default_left` entries: 0/1 in XGBoost's JSON, booleans in some writers.
private struct Flag: Decodable {
    var value: Bool

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) {
            value = b
        } else {
            let i = try c.decode(Int.self)
            guard i == 0 || i == 1 else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "expected 0 or 1, got \(i)"))
            }
            value = i == 1
        }
    }
}

private struct Named: Decodable {
    var name: String
}

private struct HeaderFile: Decodable {
    struct Learner: Decodable {
        var objective: Named
        var gradientBooster: Named
        var learnerModelParam: ModelParam
        var featureNames: [String]?

        enum CodingKeys: String, CodingKey {
            case objective
            case gradientBooster = "gradient_booster"
            case learnerModelParam = "learner_model_param"
            case featureNames = "feature_names"
        }
    }

    struct ModelParam: Decodable {
        var baseScore: Loose
        var numFeature: Loose
        var numClass: Loose?
        var numTarget: Loose?

        enum CodingKeys: String, CodingKey {
            case baseScore = "base_score"
            case numFeature = "num_feature"
            case numClass = "num_class"
            case numTarget = "num_target"
        }
    }

    var learner: Learner
    var version: [Int]?
}

private struct BoosterFile: Decodable {
    struct Learner: Decodable {
        var gradientBooster: GradientBooster
        enum CodingKeys: String, CodingKey { case gradientBooster = "gradient_booster" }
    }

    struct GradientBooster: Decodable {
        var model: GBTree
    }

    struct GBTree: Decodable {
        var trees: [TreeFile]
        var treeInfo: [Int]?
        var gbtreeModelParam: GBTreeParam?

        enum CodingKeys: String, CodingKey {
            case trees
            case treeInfo = "tree_info"
            case gbtreeModelParam = "gbtree_model_param"
        }
    }

    struct GBTreeParam: Decodable {
        var numTrees: Loose?
        enum CodingKeys: String, CodingKey { case numTrees = "num_trees" }
    }

    var learner: Learner
}

private struct TreeFile: Decodable {
    struct Param: Decodable {
        var numNodes: Loose?
        var sizeLeafVector: Loose?
        enum CodingKeys: String, CodingKey {
            case numNodes = "num_nodes"
            case sizeLeafVector = "size_leaf_vector"
        }
    }

    var leftChildren: [Int]
    var rightChildren: [Int]
    var splitIndices: [Int]
    /// Thresholds in inner nodes, leaf values (learning rate applied) in leaves.
    var splitConditions: [F32]
    var defaultLeft: [Flag]
    var sumHessian: [F32]
    var baseWeights: [F32]?
    var splitType: [Int]?
    var treeParam: Param?

    enum CodingKeys: String, CodingKey {
        case leftChildren = "left_children"
        case rightChildren = "right_children"
        case splitIndices = "split_indices"
        case splitConditions = "split_conditions"
        case defaultLeft = "default_left"
        case sumHessian = "sum_hessian"
        case baseWeights = "base_weights"
        case splitType = "split_type"
        case treeParam = "tree_param"
    }
}
