/// How the synthetic world commits fraud. `fraud_pattern` is free text in the schema (each
/// source of labelled data names its own kinds); these four names are the generator's.
public enum FraudPattern: String, Sendable, Hashable, CaseIterable {
    case geoJump = "geo_jump"
    case velocityBurst = "velocity_burst"
    case highAmount = "high_amount"
    case cardTesting = "card_testing"
}
