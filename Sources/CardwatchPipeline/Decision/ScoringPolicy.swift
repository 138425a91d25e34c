public import CardwatchModel

/// The operator's overrides of a model's decision thresholds (`--high-threshold`,
/// `--critical-threshold`), kept for the life of the pipeline and applied to every model it
/// scores with: the one it starts with, a bootstrapped one, a retrained one, one promoted
/// through the API or by another process. `scorer(_:version:)` is the one place a scorer is
/// built from a model, so no hot swap can drop the operator's thresholds.
public struct ScoringPolicy: Sendable, Equatable, Codable {
    /// At or above: high (review, alert); nil: the model's review threshold.
    public var highThreshold: Double?
    /// At or above: critical (decline, alert); nil: the model's decline threshold.
    public var criticalThreshold: Double?

    /// The model's own thresholds.
    public init() {}

    public init(highThreshold: Double?, criticalThreshold: Double?) throws(PipelineError) {
        for (name, v) in [("high", highThreshold), ("critical", criticalThreshold)] {
            if let v, !(0...1).contains(v) { throw PipelineError("the \(name) threshold must be within 0…1, not \(v)") }
        }
        if let high = highThreshold, let critical = criticalThreshold, high > critical {
            throw PipelineError("the high threshold (\(high)) must not be above the critical one (\(critical))")
        }
        self.highThreshold = highThreshold
        self.criticalThreshold = criticalThreshold
    }

    /// Whether any threshold is the operator's rather than the model's.
    public var overridesModel: Bool { highThreshold != nil || criticalThreshold != nil }

    /// The thresholds applied to a model with `thresholds`. Without overrides, the model's
    /// (`DecisionPolicy(review:decline:)`). An override replaces its own threshold; the other
    /// one stays the model's, moved only as far as the order high ≤ critical needs: with only
    /// a critical threshold, a model's review threshold above it is lowered to it; with only a
    /// high one, a model's decline threshold not above it becomes the midpoint between it and 1.
    public func decisionPolicy(for thresholds: DecisionThresholds) -> DecisionPolicy {
        guard overridesModel else { return DecisionPolicy(review: thresholds.review, decline: thresholds.decline) }
        var high = highThreshold ?? min(max(thresholds.review, 0), 1)
        if let critical = criticalThreshold, highThreshold == nil { high = min(high, critical) }
        let critical =
            criticalThreshold ?? (thresholds.decline > high ? min(thresholds.decline, 1) : (1 + high) / 2)
        // 0 ≤ high / 2 ≤ high ≤ critical ≤ 1 holds by construction (and `init` checked the overrides).
        return (try? DecisionPolicy(medium: high / 2, high: high, critical: critical))
            ?? DecisionPolicy(review: thresholds.review, decline: thresholds.decline)
    }

    /// The scorer of model `version` under this policy.
    public func scorer(_ artifact: ModelArtifact, version: Int) throws(PipelineError) -> Scorer {
        try Scorer(artifact: artifact, version: version, policy: decisionPolicy(for: artifact.thresholds))
    }
}
