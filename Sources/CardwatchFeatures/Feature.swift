/// The features of schema v1, in the stable order of every `FeatureVector`,
/// training table and model artifact.
///
/// Notation: *t* is the transaction's event time; "the card's events" are the
/// transactions of the same card that arrived before this one (in any order) with
/// an event time ≤ *t*; *day(x)* and *hour(x)* are UTC day and hour buckets;
/// *delay* is the label delay (default 7 days); *lateness* the allowed lateness.
///
/// | feature | window | current counts | when data is missing |
/// |---|---|---|---|
/// | `tx_count_5min` | card's events in (t − 5 min, t], exact | yes | 1 on a first transaction |
/// | `tx_count_1hr` | card's events in (t − 1 h, t], exact | yes | 1 |
/// | `avg_amount_1hr` | mean amount, (t − 1 h, t], exact | yes | the amount itself |
/// | `max_amount_1hr` | max amount, (t − 1 h, t], exact | yes | the amount itself |
/// | `geo_velocity_kmh` | km from the card's latest earlier located event ÷ hours since it (at least 1 minute) | — | 0 without coordinates, or when no located event lies within 30 days |
/// | `time_since_last_tx_s` | seconds since the card's latest earlier event, capped at 30 days | — | 2,592,000 (30 days) on a first transaction |
/// | `high_risk_merchant_count_1hr` | card's events at high-risk categories in (t − 1 h, t], exact | yes | 0 or 1 |
/// | `amount_vs_avg_ratio` | amount ÷ the card's mean amount over days [day(t) − 29, day(t)] (bucketed) | no | 1 when there is no earlier event in the window |
/// | `amount` | — | yes | — |
/// | `hour_of_day` | local solar hour 0–23 (UTC shifted by longitude ÷ 15) | yes | the UTC hour without coordinates |
/// | `is_weekend` | local solar Saturday or Sunday | yes | UTC day without coordinates |
/// | `is_night` | local solar hour 0–5 | yes | UTC hour without coordinates |
/// | `distance_from_home_km` | km from the card's usual location: a running mean, in arrival order, of its earlier located events' coordinates (weight 1/n, n capped at 20), started afresh after more than 30 days (plus the allowed lateness) without a transaction | no | 0 without coordinates or an earlier located event |
/// | `card_tx_count_1d` | card's events in (t − 24 h, t], exact | yes | 1 |
/// | `card_tx_count_7d` | card's events in days [day(t) − 6, day(t)], bucketed | yes | 1 |
/// | `card_tx_count_30d` | card's events in days [day(t) − 29, day(t)], bucketed | yes | 1 |
/// | `card_avg_amount_1d` | mean amount, (t − 24 h, t], exact | yes | the amount |
/// | `card_avg_amount_7d` | mean amount, days [day(t) − 6, day(t)], bucketed | yes | the amount |
/// | `card_avg_amount_30d` | mean amount, days [day(t) − 29, day(t)], bucketed | yes | the amount |
/// | `small_amount_count_1hr` | card's events of at most the small amount ($2.00) in (t − 1 h, t], exact | yes | 0 or 1 |
/// | `is_new_merchant` | 1 unless the merchant is among the card's 16 most recently used (arrival order) distinct merchants and its latest use falls on or after day(t) − 29 | — | 1 on a first transaction |
/// | `merchant_tx_count_1d` | merchant's events in hours [hour(t) − 23, hour(t)], bucketed | yes | 1 |
/// | `merchant_tx_count_7d` | merchant's events in days [day(t) − 6, day(t)], bucketed | yes | 1 |
/// | `merchant_tx_count_30d` | merchant's events in days [day(t) − 29, day(t)], bucketed | yes | 1 |
/// | `merchant_fraud_rate_1d` | known frauds ÷ events of the merchant in hours [hour(t − delay) − 24, hour(t − delay) − 1] | no | 0 when that window has no events |
/// | `merchant_fraud_rate_7d` | the same over days [day(t − delay) − 7, day(t − delay) − 1] | no | 0 |
/// | `merchant_fraud_rate_30d` | the same over days [day(t − delay) − 30, day(t − delay) − 1] | no | 0 |
/// | `is_online` | channel is `online` | yes | 0 without a channel |
/// | `is_high_risk_merchant` | category is high-risk (`MerchantRisk`) | yes | 0 without a category |
///
/// Exact windows are exact for every event up to the allowed lateness behind the
/// newest event of its card. Bucketed windows are whole UTC days or hours: a
/// D-day window covers between D − 1 and D days before *t*, plus the rest of
/// *t*'s own bucket when events of that bucket arrived before a late one.
/// A fraud counts in a merchant's rate from the moment its label is applied (a
/// label event as it arrives; in replay, one label delay after the transaction),
/// and the windows end one label delay before *t*, so recent transactions whose
/// labels are mostly unknown cannot dilute the rate. An event later than the
/// allowed lateness is processed as if it happened at its key's newest event time
/// (the card's for card features, the merchant's for merchant features); its hour,
/// weekend and night flags keep its real time. Among events with equal times, the
/// latest is the one that arrived last. Local solar time is rounded to the second.
/// Eviction (`FeatureConfig.idleTTL` ≥ 30 days) never changes an answer for events
/// that arrive at most the allowed lateness behind the newest event overall.
public enum Feature: Int, CaseIterable, Sendable {
    case txCount5min, txCount1hr, avgAmount1hr, maxAmount1hr, geoVelocityKmh, timeSinceLastTxS
    case highRiskMerchantCount1hr, amountVsAvgRatio
    case amount, hourOfDay, isWeekend, isNight, distanceFromHomeKm
    case cardTxCount1d, cardTxCount7d, cardTxCount30d, cardAvgAmount1d, cardAvgAmount7d, cardAvgAmount30d
    case smallAmountCount1hr, isNewMerchant
    case merchantTxCount1d, merchantTxCount7d, merchantTxCount30d
    case merchantFraudRate1d, merchantFraudRate7d, merchantFraudRate30d
    case isOnline, isHighRiskMerchant

    public static let count = 29

    /// The schema name, as in training tables and model artifacts.
    public var name: String { Feature.names[rawValue] }

    public static let names: [String] = [
        "tx_count_5min", "tx_count_1hr", "avg_amount_1hr", "max_amount_1hr", "geo_velocity_kmh", "time_since_last_tx_s",
        "high_risk_merchant_count_1hr", "amount_vs_avg_ratio",
        "amount", "hour_of_day", "is_weekend", "is_night", "distance_from_home_km",
        "card_tx_count_1d", "card_tx_count_7d", "card_tx_count_30d", "card_avg_amount_1d", "card_avg_amount_7d",
        "card_avg_amount_30d", "small_amount_count_1hr", "is_new_merchant",
        "merchant_tx_count_1d", "merchant_tx_count_7d", "merchant_tx_count_30d",
        "merchant_fraud_rate_1d", "merchant_fraud_rate_7d", "merchant_fraud_rate_30d",
        "is_online", "is_high_risk_merchant",
    ]

    public init?(name: String) {
        guard let i = Feature.names.firstIndex(of: name) else { return nil }
        self.init(rawValue: i)
    }

    /// The feature schema's version, stored in training tables and model artifacts.
    public static let schemaVersion = 1
}

/// One transaction's features, in `Feature` order, stored inline: building one
/// never touches the heap.
public struct FeatureVector: Sendable, Equatable {
    public var values: InlineArray<29, Double>

    public init() { values = InlineArray(repeating: 0) }

    public subscript(_ f: Feature) -> Double {
        get { values[f.rawValue] }
        set { values[f.rawValue] = newValue }
    }

    public subscript(_ i: Int) -> Double {
        get { values[i] }
        set { values[i] = newValue }
    }

    public static var count: Int { Feature.count }

    public static func == (a: FeatureVector, b: FeatureVector) -> Bool {
        for i in 0..<Feature.count where a.values[i] != b.values[i] && !(a.values[i].isNaN && b.values[i].isNaN) { return false }
        return true
    }

    /// The values as an array, for code that is not on the hot path.
    public var array: [Double] { (0..<Feature.count).map { values[$0] } }
}
