public import CardwatchCore

/// A card's profile in the online store, as of its latest decided transaction: that
/// transaction's 29 features and what `OnlineFeatures` needs to carry them to the next one.
///
/// Layout (one hash per card, `{prefix}card:{card_id}`, default prefix `cw:`), readable by
/// any service: a field per feature, named as the feature (`tx_count_1hr`, …), its value as a
/// decimal number; `_ts` the transaction's event time (µs since 1970); `_lat` and `_lon` its
/// coordinates (empty without them); `_merchant_id`, `_transaction_id`; `_committed_at`
/// when its batch was committed (µs since 1970, wall clock: the profile's freshness).
public struct CardProfile: Sendable, Equatable {
    public var cardID: String
    public var features: FeatureVector
    public var eventTime: Timestamp
    public var location: GeoPoint?
    public var merchantID: String
    public var transactionID: String
    public var committedAt: Int64

    public init(
        cardID: String, features: FeatureVector, eventTime: Timestamp, location: GeoPoint?, merchantID: String,
        transactionID: String, committedAt: Int64
    ) {
        self.cardID = cardID
        self.features = features
        self.eventTime = eventTime
        self.location = location
        self.merchantID = merchantID
        self.transactionID = transactionID
        self.committedAt = committedAt
    }
}

/// A merchant's profile (`{prefix}merchant:{merchant_id}`): the six merchant features of its
/// latest decided transaction, by name, with `_ts` and `_committed_at` as on a card's.
public struct MerchantProfile: Sendable, Equatable {
    public static let features: [Feature] = [
        .merchantTxCount1d, .merchantTxCount7d, .merchantTxCount30d, .merchantFraudRate1d, .merchantFraudRate7d,
        .merchantFraudRate30d,
    ]
    public var merchantID: String
    /// In the order of `features`.
    public var values: [Double]
    public var eventTime: Timestamp
    public var committedAt: Int64

    public init(merchantID: String, values: [Double], eventTime: Timestamp, committedAt: Int64) {
        self.merchantID = merchantID
        self.values = values
        self.eventTime = eventTime
        self.committedAt = committedAt
    }

    public subscript(_ f: Feature) -> Double? { Self.features.firstIndex(of: f).map { values[$0] } }
}
