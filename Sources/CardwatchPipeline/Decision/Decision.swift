/// How risky a transaction is, from its calibrated fraud probability (and rule hits).
public enum RiskTier: String, Sendable, Codable, CaseIterable, Comparable {
    case low, medium, high, critical

    public static func < (a: RiskTier, b: RiskTier) -> Bool { a.rank < b.rank }
    /// Its place in `allCases`, lowest first.
    public var rank: Int { RiskTier.allCases.firstIndex(of: self)! }
}

/// What to do with the transaction.
public enum Action: String, Sendable, Codable, CaseIterable, Comparable {
    case approve, review, decline

    public static func < (a: Action, b: Action) -> Bool { a.rank < b.rank }
    /// Its place in `allCases`, mildest first.
    public var rank: Int { Action.allCases.firstIndex(of: self)! }
}

/// One reason behind a decision: a feature's value and its TreeSHAP contribution to the
/// margin, or a rule that fired.
public struct Reason: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case feature, rule }
    public var kind: Kind
    /// The feature's or the rule's name.
    public var name: String
    /// The feature's value (nil for a rule, or a missing value).
    public var value: Double?
    /// The feature's contribution to the log-odds (nil for a rule).
    public var contribution: Double?
    /// For a rule: its condition and the action it asks for.
    public var detail: String?

    public static func feature(_ name: String, value: Double, contribution: Double) -> Reason {
        Reason(kind: .feature, name: name, value: value.isNaN ? nil : value, contribution: contribution, detail: nil)
    }

    public static func rule(_ name: String, detail: String) -> Reason {
        Reason(kind: .rule, name: name, value: nil, contribution: nil, detail: detail)
    }
}

/// The scorer's verdict on one transaction.
public struct Decision: Sendable, Equatable {
    public var probability: Double
    public var tier: RiskTier
    public var action: Action
    /// Rule hits always; feature contributions for alerts (tier high and above).
    public var reasons: [Reason]
    public var modelVersion: Int
    /// The transaction's own time (µs since 1970): simulated for the live generator, whose
    /// clock runs ahead of the wall clock. Set by the processor.
    public var eventTime: Int64 = 0
    /// When it was decided (µs since 1970, wall clock). Set by the processor.
    public var decidedAt: Int64 = 0

    public var isAlert: Bool { tier >= .high }

    public init(probability: Double, tier: RiskTier, action: Action, reasons: [Reason], modelVersion: Int) {
        self.probability = probability
        self.tier = tier
        self.action = action
        self.reasons = reasons
        self.modelVersion = modelVersion
    }
}

/// Probability thresholds of the tiers; a tier's action is fixed: low and medium approve,
/// high reviews, critical declines. Defaults come from the model's own thresholds
/// (review: best F1 on validation rows; decline: 90 % validation precision).
public struct DecisionPolicy: Sendable, Equatable {
    /// At or above: medium.
    public var medium: Double
    /// At or above: high (review, alert).
    public var high: Double
    /// At or above: critical (decline, alert).
    public var critical: Double

    public init(medium: Double, high: Double, critical: Double) throws(PipelineError) {
        guard (0...1).contains(medium), (0...1).contains(high), (0...1).contains(critical), medium <= high, high <= critical
        else {
            throw PipelineError(
                "risk thresholds must satisfy 0 ≤ medium ≤ high ≤ critical ≤ 1, not medium \(medium), high \(high), "
                    + "critical \(critical)")
        }
        self.medium = medium
        self.high = high
        self.critical = critical
    }

    /// The model's review and decline thresholds; medium at half of review. A decline
    /// threshold not above the review one (a model precise enough at its best-F1 point) is
    /// replaced by the midpoint between review and 1, so declining stays stricter than reviewing.
    public init(review: Double, decline: Double) {
        let high = min(max(review, 0), 1)
        let critical = decline > high ? min(decline, 1) : (1 + high) / 2
        self.medium = high / 2
        self.high = high
        self.critical = critical
    }

    public func tier(_ probability: Double) -> RiskTier {
        probability >= critical ? .critical : probability >= high ? .high : probability >= medium ? .medium : .low
    }

    public static func action(_ tier: RiskTier) -> Action {
        switch tier {
        case .low, .medium: .approve
        case .high: .review
        case .critical: .decline
        }
    }
}

/// A failure of the pipeline, with a message that names what is wrong.
public struct PipelineError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
