/// Settings of the feature engine. Times are in microseconds, like `Timestamp`.
public struct FeatureConfig: Sendable, Equatable {
    public static let minute: Int64 = 60_000_000
    public static let hour: Int64 = 3_600_000_000
    public static let day: Int64 = 86_400_000_000

    /// How far behind its key's newest event an event may arrive and still be folded in exactly.
    public var allowedLateness: Int64 = 5 * minute
    /// Keys idle this long are evicted to free memory. At 30 days or more (the
    /// longest card window) eviction never changes an answer; merchants are kept at
    /// least `labelDelay` + 31 days, the reach of their fraud-rate windows.
    public var idleTTL: Int64 = 30 * day
    /// Labels are assumed known this long after their transaction; merchant fraud
    /// rates look only at transactions older than this.
    public var labelDelay: Int64 = 7 * day
    /// Amounts at or below this count as small (card testing).
    public var smallAmount: Double = 2.00

    public init() {}

    /// The first setting that is out of range, named.
    public func validate() throws(FeatureConfigError) {
        guard allowedLateness >= 0, allowedLateness <= 7 * FeatureConfig.day else {
            throw FeatureConfigError("allowed lateness must be between 0 and 7 days")
        }
        guard idleTTL >= FeatureConfig.hour else { throw FeatureConfigError("idle TTL must be at least one hour") }
        guard labelDelay >= 0, labelDelay <= 90 * FeatureConfig.day else {
            throw FeatureConfigError("label delay must be between 0 and 90 days")
        }
        guard smallAmount >= 0 else { throw FeatureConfigError("small amount must not be negative") }
    }

    /// A card forgets everything after this long without a transaction: no window reaches further.
    static let cardHorizon = 30 * day
    /// A merchant's look-back: the fraud-rate windows end one label delay ago and span 30 days more.
    var merchantHorizon: Int64 { labelDelay + 31 * FeatureConfig.day }
    var merchantTTL: Int64 { max(idleTTL, merchantHorizon) }

    /// Ring sizes, in buckets: enough for every window of every event up to the allowed lateness.
    var cardDays: Int { 31 + Int(ceilDiv(allowedLateness, FeatureConfig.day)) }
    var merchantHours: Int { 26 + Int(ceilDiv(labelDelay + allowedLateness, FeatureConfig.hour)) }
    var merchantDays: Int { 32 + Int(ceilDiv(labelDelay + allowedLateness, FeatureConfig.day)) }
}

public struct FeatureConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

@inline(__always) func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { (a + b - 1) / b }

/// Floor division for bucket numbers of times before 1970 too.
@inline(__always) func bucket(_ t: Int64, _ width: Int64) -> Int64 {
    let q = t / width
    return (t % width != 0 && t < 0) ? q - 1 : q
}
