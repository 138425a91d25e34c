public import Foundation

/// The model families. The three tree families share one representation (`TreeEnsemble`:
/// margin = base + the sum of the trees' leaf values), and so the scorer, the compiled
/// forest and TreeSHAP: a random forest's leaves hold its trees' averaged fraud shares, an
/// isolation forest's the negated path lengths averaged over its trees.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    case gbdt, logistic
    case randomForest = "random_forest"
    case isolationForest = "isolation_forest"

    /// Whether the model learns from labels (an isolation forest does not).
    public var isSupervised: Bool { self != .isolationForest }
}

/// From a margin to a probability. By default Platt scaling, probability =
/// sigmoid(a · margin + b), fitted on held-out rows so that a score of 0.3 means about
/// 30 % of such transactions are fraud. Two other maps, chosen by which fields are set
/// (absent from older artifacts, which stay Platt):
/// - isotonic: a non-decreasing step function of the margin, `isotonicMargins[i]` the
///   lower edge of step i and `isotonicProbabilities[i]` its probability;
/// - isolation forest: probability = 2^(margin / pathLengthNormaliser), the anomaly score
///   s = 2^(−E[h]/c(n)) of Liu et al., the margin being −E[h].
public struct Calibration: Codable, Sendable, Equatable {
    public var a: Double
    public var b: Double
    public var isotonicMargins: [Double]?
    public var isotonicProbabilities: [Double]?
    public var pathLengthNormaliser: Double?

    public init(
        a: Double = 1, b: Double = 0, isotonicMargins: [Double]? = nil, isotonicProbabilities: [Double]? = nil,
        pathLengthNormaliser: Double? = nil
    ) {
        self.a = a
        self.b = b
        self.isotonicMargins = isotonicMargins
        self.isotonicProbabilities = isotonicProbabilities
        self.pathLengthNormaliser = pathLengthNormaliser
    }

    /// An isolation forest's map, c(n) being the average path length of an unsuccessful
    /// search in a binary search tree of the forest's sample size.
    public static func isolation(normaliser c: Double) -> Calibration { Calibration(pathLengthNormaliser: c) }

    public var method: String {
        pathLengthNormaliser != nil ? "isolation" : isotonicMargins != nil ? "isotonic" : "platt"
    }

    public func probability(margin: Double) -> Double {
        if let c = pathLengthNormaliser { return exp2(margin / c) }
        if let edges = isotonicMargins, let values = isotonicProbabilities, !values.isEmpty {
            // The last step whose lower edge is at most the margin (binary search; below all: the first).
            var lo = 0
            var hi = min(edges.count, values.count)
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if edges[mid] <= margin { lo = mid } else { hi = mid }
            }
            return values[lo]
        }
        return sigmoid(a * margin + b)
    }
}

/// Where a probability lands: below `review` approve, below `decline` review, else decline.
public struct DecisionThresholds: Codable, Sendable, Equatable {
    public var review: Double
    public var decline: Double
    public init(review: Double, decline: Double) {
        self.review = review
        self.decline = decline
    }
}

/// A time window as RFC 3339 strings, as stored in the artifact and the registry.
public struct TimeWindow: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    public init(from: String, to: String) {
        self.from = from
        self.to = to
    }
}

/// The versioned model document of DESIGN.md: everything needed to score and to
/// judge a model, in one JSON file.
public struct ModelArtifact: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int = ModelArtifact.currentFormatVersion
    public var kind: ModelKind
    public var featureNames: [String]
    public var featureSchemaVersion: Int
    public var trees: TreeEnsemble?
    public var logistic: LogisticModel?
    public var calibration: Calibration
    public var thresholds: DecisionThresholds
    public var trainingWindow: TimeWindow?
    public var testWindow: TimeWindow?
    public var metrics: EvaluationMetrics?
    /// Training parameters as given, for the record.
    public var parameters: [String: String]
    public var createdAt: String
    /// The automatic model selection's candidates and scores (nil: one fit, or an older artifact).
    public var search: SearchRecord?
    /// How the probability map was chosen (nil in older artifacts).
    public var calibrationChoice: CalibrationChoice?

    public init(
        kind: ModelKind, featureNames: [String], featureSchemaVersion: Int, trees: TreeEnsemble? = nil,
        logistic: LogisticModel? = nil, calibration: Calibration = Calibration(),
        thresholds: DecisionThresholds = DecisionThresholds(review: 0.5, decline: 0.9), trainingWindow: TimeWindow? = nil,
        testWindow: TimeWindow? = nil, metrics: EvaluationMetrics? = nil, parameters: [String: String] = [:],
        createdAt: String = ""
    ) {
        self.kind = kind
        self.featureNames = featureNames
        self.featureSchemaVersion = featureSchemaVersion
        self.trees = trees
        self.logistic = logistic
        self.calibration = calibration
        self.thresholds = thresholds
        self.trainingWindow = trainingWindow
        self.testWindow = testWindow
        self.metrics = metrics
        self.parameters = parameters
        self.createdAt = createdAt
    }

    /// The raw margin for one row of features in `featureNames` order.
    public func margin(_ x: UnsafeBufferPointer<Double>) -> Double {
        if let trees { return trees.margin(x) }
        return logistic!.margin(x)
    }

    /// The calibrated fraud probability for one row.
    public func probability(_ x: UnsafeBufferPointer<Double>) -> Double { calibration.probability(margin: margin(x)) }

    // MARK: JSON

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        // A test window with one class has an undefined AUC: NaN is stored, not refused.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    /// Reads an artifact and checks it can be scored against `expectedFeatures` (the engine's).
    public static func load(
        json: Data, expectedFeatures: [String]? = nil, expectedSchemaVersion: Int? = nil
    ) throws -> ModelArtifact {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let artifact: ModelArtifact
        do { artifact = try decoder.decode(ModelArtifact.self, from: json) } catch {
            throw ModelError("not a Cardwatch model artifact: \(error)")
        }
        try artifact.check(expectedFeatures: expectedFeatures, expectedSchemaVersion: expectedSchemaVersion)
        return artifact
    }

    /// Refuses an artifact that cannot be scored here, saying exactly why.
    public func check(expectedFeatures: [String]? = nil, expectedSchemaVersion: Int? = nil) throws {
        guard formatVersion == Self.currentFormatVersion else {
            throw ModelError("artifact format version \(formatVersion); this build reads version \(Self.currentFormatVersion)")
        }
        if let v = expectedSchemaVersion, v != featureSchemaVersion {
            throw ModelError("model was trained on feature schema v\(featureSchemaVersion); the engine computes v\(v)")
        }
        if let expected = expectedFeatures, expected != featureNames {
            let i =
                (0..<min(expected.count, featureNames.count)).first { expected[$0] != featureNames[$0] }
                ?? min(expected.count, featureNames.count)
            let have = i < featureNames.count ? "'\(featureNames[i])'" : "nothing"
            let want = i < expected.count ? "'\(expected[i])'" : "nothing"
            throw ModelError(
                "model features do not match the engine: \(featureNames.count) features vs \(expected.count); "
                    + "first difference at position \(i): model has \(have), engine has \(want)")
        }
        if let edges = calibration.isotonicMargins {
            guard let values = calibration.isotonicProbabilities, values.count == edges.count, !edges.isEmpty,
                zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }), zip(values, values.dropFirst()).allSatisfy({ $0 <= $1 }),
                values.allSatisfy({ $0 >= 0 && $0 <= 1 })
            else {
                throw ModelError(
                    "isotonic calibration needs increasing edges and non-decreasing probabilities in [0, 1], one each")
            }
        }
        if let c = calibration.pathLengthNormaliser, !(c > 0) {
            throw ModelError("isolation calibration needs a positive path-length normaliser, got \(c)")
        }
        switch kind {
        case .gbdt, .randomForest, .isolationForest:
            guard let trees else { throw ModelError("\(kind.rawValue) artifact without trees") }
            guard trees.featureCount == featureNames.count else {
                throw ModelError("trees use \(trees.featureCount) features, artifact names \(featureNames.count)")
            }
            for (i, n) in trees.nodes.enumerated() where !n.isLeaf {
                guard Int(n.feature) < featureNames.count, n.left > Int32(i), Int(n.left) + 1 < trees.nodes.count else {
                    throw ModelError("tree node \(i) is malformed")
                }
            }
        case .logistic:
            guard let l = logistic, l.weights.count == featureNames.count, l.means.count == featureNames.count,
                l.scales.count == featureNames.count
            else { throw ModelError("logistic artifact without one weight, mean and scale per feature") }
        }
    }
}

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}
