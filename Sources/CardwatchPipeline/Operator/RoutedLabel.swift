public import CardwatchCore
import Foundation

/// A label on its way to the partition whose state it updates. A label event names only a
/// transaction; at ingest it is enriched with that transaction's card, merchant and time and
/// keyed by the card, so it lands in the card's partition, the one that counted the
/// transaction (no lookup at processing time, and no order across partitions needed). A
/// label whose transaction was unknown at ingest is kept, keyed by its transaction id, and
/// changes no state.
public struct RoutedLabel: Sendable, Equatable, Codable {
    public var transactionID: String
    public var isFraud: Bool
    public var reportedAt: Timestamp
    public var cardID: String?
    public var merchantID: String?
    public var transactionTime: Timestamp?

    public init(_ label: LabelEvent, transaction: Transaction?) {
        self.init(label, target: transaction.map(LabelTarget.init))
    }

    /// A label routed by what a warehouse or an import remembers of its transaction (`target`;
    /// nil: unknown, the label is kept and changes no state).
    public init(_ label: LabelEvent, target: LabelTarget?) {
        transactionID = label.transactionID
        isFraud = label.isFraud
        reportedAt = label.reportedAt
        cardID = target?.cardID
        merchantID = target?.merchantID
        transactionTime = target?.time
    }

    /// The log key: the card when known, else the transaction.
    public var key: String { cardID ?? transactionID }

    /// The label event itself.
    public var event: LabelEvent { LabelEvent(transactionID: transactionID, isFraud: isFraud, reportedAt: reportedAt) }

    enum CodingKeys: String, CodingKey {
        case transactionID = "transaction_id"
        case isFraud = "is_fraud"
        case reportedAt = "reported_at"
        case cardID = "card_id"
        case merchantID = "merchant_id"
        case transactionTime = "transaction_time"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        transactionID = try c.decode(String.self, forKey: .transactionID)
        isFraud = try c.decode(Bool.self, forKey: .isFraud)
        reportedAt = try Self.time(c, .reportedAt)
        cardID = try c.decodeIfPresent(String.self, forKey: .cardID)
        merchantID = try c.decodeIfPresent(String.self, forKey: .merchantID)
        transactionTime = try c.contains(.transactionTime) ? Self.time(c, .transactionTime) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(transactionID, forKey: .transactionID)
        try c.encode(isFraud, forKey: .isFraud)
        try c.encode(reportedAt.rfc3339, forKey: .reportedAt)
        try c.encodeIfPresent(cardID, forKey: .cardID)
        try c.encodeIfPresent(merchantID, forKey: .merchantID)
        try c.encodeIfPresent(transactionTime?.rfc3339, forKey: .transactionTime)
    }

    private static func time(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Timestamp {
        let text = try c.decode(String.self, forKey: key)
        guard let t = Timestamp(rfc3339: text) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c, debugDescription: "\(key.stringValue) \"\(text)\" is not an RFC 3339 date-time")
        }
        return t
    }

    /// The record stored in the `labels` topic: one JSON object.
    public var payload: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding a struct of strings, a Bool and optional strings cannot fail.
        return (try? [UInt8](encoder.encode(self))) ?? []
    }

    /// A `labels` record read back; the error says what is wrong with it.
    public static func decode(_ payload: [UInt8]) -> Result<RoutedLabel, RecordError> {
        do {
            return .success(try JSONDecoder().decode(RoutedLabel.self, from: Data(payload)))
        } catch let DecodingError.keyNotFound(key, _) {
            return .failure(RecordError(issues: [FieldIssue(field: key.stringValue, problem: "missing (required)")]))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.last?.stringValue ?? "record"
            return .failure(RecordError(issues: [FieldIssue(field: field, problem: "has the wrong type")]))
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.last?.stringValue ?? "record"
            return .failure(RecordError(issues: [FieldIssue(field: field, problem: context.debugDescription)]))
        } catch {
            return .failure(RecordError(issues: [FieldIssue(field: "record", problem: "is not a JSON object")]))
        }
    }
}

/// What a label needs of its transaction to reach the partition that counted it.
public struct LabelTarget: Sendable, Equatable {
    public var cardID: String
    public var merchantID: String
    public var time: Timestamp

    public init(cardID: String, merchantID: String, time: Timestamp) {
        self.cardID = cardID
        self.merchantID = merchantID
        self.time = time
    }

    public init(_ t: Transaction) { self.init(cardID: t.cardID, merchantID: t.merchantID, time: t.timestamp) }
}
