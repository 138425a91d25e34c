/// The first decision of a transaction id, and where its record is.
public struct FirstDecision: Sendable, Equatable {
    public var partition: Int
    public var offset: Int64
    public var probability: Double
    public var tier: RiskTier
    public var action: Action
    public var modelVersion: Int
    public init(partition: Int, offset: Int64, decision: Decision) {
        self.partition = partition
        self.offset = offset
        probability = decision.probability
        tier = decision.tier
        action = decision.action
        modelVersion = decision.modelVersion
    }
}

/// Idempotency by `transaction_id`: a record whose id already has a committed decision at
/// another place in the log is a repeat (a client's retry, a producer's resend) and is
/// answered with that decision. Keyed by position, the check gives a replay the same answers
/// the live run got: a record is never a repeat of itself.
public protocol DecisionIndex: Sendable {
    /// The first committed decision of each id that has one.
    func firstDecisions(_ transactionIDs: [String]) throws -> [String: FirstDecision]
}
