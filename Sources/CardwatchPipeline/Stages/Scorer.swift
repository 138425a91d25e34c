public import CardwatchFeatures
public import CardwatchModel

/// The scoring stage: model probability, rules, tier and action; for alerts, the reasons
/// (the top TreeSHAP contributions with the features' values, then the rule hits).
public struct Scorer: Sendable {
    public let modelVersion: Int
    public let artifact: ModelArtifact
    public var policy: DecisionPolicy
    /// How many feature contributions an alert carries.
    public var reasonCount = 5
    let model: ModelScorer
    let explainer: TreeExplainer?

    /// `policy` nil: the model's own review and decline thresholds.
    public init(artifact: ModelArtifact, version: Int, policy: DecisionPolicy? = nil) throws(PipelineError) {
        guard artifact.featureNames == Feature.names else {
            throw PipelineError(
                "model v\(version) was trained on other features than this engine computes "
                    + "(\(artifact.featureNames.count) names, first difference: "
                    + "\(zip(artifact.featureNames, Feature.names).first { $0 != $1 }.map { "'\($0.0)' vs '\($0.1)'" } ?? "count"))"
            )
        }
        self.artifact = artifact
        self.modelVersion = version
        self.model = ModelScorer(artifact)
        self.explainer = artifact.trees.map(TreeExplainer.init)
        self.policy = policy ?? DecisionPolicy(review: artifact.thresholds.review, decline: artifact.thresholds.decline)
    }

    /// The decision for one feature vector. Every decision gets its rule hits; alerts get
    /// feature reasons too, unless `explain` is false (the caller explains them later, e.g.
    /// a batch's alerts on several threads).
    public func decide(_ features: FeatureVector, rules: RuleBook, explain: Bool = true) -> Decision {
        var x = features
        let probability = withUnsafeBytes(of: &x.values) { raw in
            model.probability(raw.bindMemory(to: Double.self))
        }
        var tier = policy.tier(probability)
        var action = DecisionPolicy.action(tier)
        var reasons: [Reason] = []
        for rule in rules.rules where rule.fires(features) {
            reasons.append(.rule(rule.name, detail: "\(rule.text) → \(rule.action.rawValue)"))
            if rule.action > action {
                action = rule.action
                tier = max(tier, rule.action == .decline ? .critical : .high)
            }
        }
        if explain && tier >= .high { reasons = self.explain(features) + reasons }
        return Decision(probability: probability, tier: tier, action: action, reasons: reasons, modelVersion: modelVersion)
    }

    /// Explanations are computed in this many parts, each a share of the trees (TreeSHAP adds
    /// up over trees), and the parts summed in order: parts can run on several threads, and
    /// the contributions come out the same to the last bit however they ran.
    public static let explanationParts = 4

    /// The features that pushed the margin most, with their values.
    public func explain(_ features: FeatureVector) -> [Reason] {
        var parts = [Double](repeating: 0, count: Self.explanationParts * Feature.count)
        parts.withUnsafeMutableBufferPointer { buffer in
            for part in 0..<Self.explanationParts {
                accumulate(
                    features, part: part,
                    into: UnsafeMutableBufferPointer(rebasing: buffer[part * Feature.count..<(part + 1) * Feature.count]))
            }
        }
        return reasons(features, parts: parts[...])
    }

    /// Adds part `part` (of `explanationParts`) of the features' contributions to the margin
    /// to `phi`; a logistic model's are all in part 0.
    public func accumulate(_ features: FeatureVector, part: Int, into phi: UnsafeMutableBufferPointer<Double>) {
        var x = features
        withUnsafeBytes(of: &x.values) { raw in
            let values = raw.bindMemory(to: Double.self)
            if let explainer {
                let (trees, parts) = (explainer.ensemble.treeCount, Self.explanationParts)
                explainer.accumulate(values, trees: trees * part / parts..<trees * (part + 1) / parts, into: phi)
            } else if let logistic = artifact.logistic, part == 0 {
                for j in values.indices where !values[j].isNaN {
                    phi[j] += logistic.weights[j] * (values[j] - logistic.means[j]) / logistic.scales[j]
                }
            }
        }
    }

    /// The reasons from a row's parts (`explanationParts` runs of `Feature.count` values),
    /// summed in order: the `reasonCount` largest contributions.
    public func reasons(_ features: FeatureVector, parts: ArraySlice<Double>) -> [Reason] {
        precondition(parts.count == Self.explanationParts * Feature.count)
        var contributions = [Double](repeating: 0, count: Feature.count)
        for (k, v) in parts.enumerated() { contributions[k % Feature.count] += v }
        // Calibration scales the margin by `a`: report contributions on the calibrated log-odds.
        let a = artifact.calibration.a
        contributions = contributions.map { $0 * a }
        let values = features.array
        let order = contributions.indices.sorted {
            abs(contributions[$0]) > abs(contributions[$1]) || (abs(contributions[$0]) == abs(contributions[$1]) && $0 < $1)
        }
        return order.prefix(reasonCount).filter { contributions[$0] != 0 }.map {
            .feature(Feature.names[$0], value: values[$0], contribution: contributions[$0])
        }
    }
}
