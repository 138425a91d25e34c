/// Where a card was used.
public enum Channel: String, Sendable, Hashable, CaseIterable {
    case pos, online, atm
}

/// A point on the earth in degrees.
public struct GeoPoint: Hashable, Sendable {
    public var latitude: Double
    public var longitude: Double
    public init(latitude: Double, longitude: Double) {
        self.latitude = latitude
        self.longitude = longitude
    }
}

/// One card transaction, schema v1 (README, "Transaction schema v1").
///
/// Only valid values exist: a `Transaction` is produced by the validating readers or
/// built by code that respects the schema (the generator).
public struct Transaction: Hashable, Sendable {
    public static let schemaVersion = 1

    public var transactionID: String
    public var cardID: String
    /// Major units of `currency`, > 0 and ≤ 1,000,000,000.
    public var amount: Double
    public var timestamp: Timestamp
    public var merchantID: String
    /// ISO 18245 MCC (four digits) or a category name.
    public var merchantCategory: String?
    /// ISO 4217 code; USD when the record does not say.
    public var currency: String
    public var location: GeoPoint?
    /// ISO 3166-1 alpha-2.
    public var country: String?
    public var channel: Channel?
    public var customerID: String?
    /// Ground truth, present in training data only.
    public var isFraud: Bool?
    /// The kind of fraud, as the labelled data names it (free text, the identifier rules;
    /// the generator writes its four patterns' names); only on a fraudulent transaction.
    public var fraudPattern: String?

    public init(
        transactionID: String, cardID: String, amount: Double, timestamp: Timestamp, merchantID: String,
        merchantCategory: String? = nil, currency: String = "USD", location: GeoPoint? = nil,
        country: String? = nil, channel: Channel? = nil, customerID: String? = nil, isFraud: Bool? = nil,
        fraudPattern: String? = nil
    ) {
        self.transactionID = transactionID
        self.cardID = cardID
        self.amount = amount
        self.timestamp = timestamp
        self.merchantID = merchantID
        self.merchantCategory = merchantCategory
        self.currency = currency
        self.location = location
        self.country = country
        self.channel = channel
        self.customerID = customerID
        self.isFraud = isFraud
        self.fraudPattern = fraudPattern
    }
}

/// A chargeback or an analyst's verdict, arriving after the transaction it labels.
public struct LabelEvent: Hashable, Sendable {
    public var transactionID: String
    public var isFraud: Bool
    public var reportedAt: Timestamp
    public init(transactionID: String, isFraud: Bool, reportedAt: Timestamp) {
        self.transactionID = transactionID
        self.isFraud = isFraud
        self.reportedAt = reportedAt
    }
}

/// The schema's field names, in the canonical column order of CSV output, then the
/// fields that are read but never written (`card_number`).
public enum TransactionField: Int, CaseIterable, Sendable {
    case transactionID, cardID, amount, timestamp, merchantID, merchantCategory, currency
    case latitude, longitude, country, channel, customerID, isFraud, fraudPattern
    /// A PAN, accepted in place of `card_id` and turned into one by a keyed hash (`PANKey`).
    case cardNumber

    /// The columns a transaction is written with (CSV output, canonical JSON).
    public static let written: [TransactionField] = allCases.filter { $0 != .cardNumber }

    public var name: String {
        switch self {
        case .transactionID: "transaction_id"
        case .cardID: "card_id"
        case .amount: "amount"
        case .timestamp: "timestamp"
        case .merchantID: "merchant_id"
        case .merchantCategory: "merchant_category"
        case .currency: "currency"
        case .latitude: "latitude"
        case .longitude: "longitude"
        case .country: "country"
        case .channel: "channel"
        case .customerID: "customer_id"
        case .isFraud: "is_fraud"
        case .fraudPattern: "fraud_pattern"
        case .cardNumber: "card_number"
        }
    }

    /// Looks a field up by its name in raw UTF-8, without building a String: the name's
    /// length and one or two of its bytes pick the only candidate, which is then compared
    /// (the scanner asks this for every member of every record).
    public init?(name b: UnsafeRawBufferPointer) {
        let candidate: TransactionField
        let name: StaticString
        switch (b.count, b.first ?? 0) {
        case (6, UInt8(ascii: "a")): (candidate, name) = (.amount, "amount")
        case (7, UInt8(ascii: "c")):
            switch b[1] {
            case UInt8(ascii: "a"): (candidate, name) = (.cardID, "card_id")
            case UInt8(ascii: "o"): (candidate, name) = (.country, "country")
            case UInt8(ascii: "h"): (candidate, name) = (.channel, "channel")
            default: return nil
            }
        case (8, UInt8(ascii: "c")): (candidate, name) = (.currency, "currency")
        case (8, UInt8(ascii: "l")): (candidate, name) = (.latitude, "latitude")
        case (8, UInt8(ascii: "i")): (candidate, name) = (.isFraud, "is_fraud")
        case (9, UInt8(ascii: "t")): (candidate, name) = (.timestamp, "timestamp")
        case (9, UInt8(ascii: "l")): (candidate, name) = (.longitude, "longitude")
        case (11, UInt8(ascii: "m")): (candidate, name) = (.merchantID, "merchant_id")
        case (11, UInt8(ascii: "c")):
            (candidate, name) = b[1] == UInt8(ascii: "u") ? (.customerID, "customer_id") : (.cardNumber, "card_number")
        case (13, UInt8(ascii: "f")): (candidate, name) = (.fraudPattern, "fraud_pattern")
        case (14, UInt8(ascii: "t")): (candidate, name) = (.transactionID, "transaction_id")
        case (17, UInt8(ascii: "m")): (candidate, name) = (.merchantCategory, "merchant_category")
        default: return nil
        }
        let bytes = name.utf8Start
        for i in 1..<b.count where b[i] != bytes[i] { return nil }
        self = candidate
    }

}
