import Testing

@testable import CardwatchCore

/// A JSON record built from members in order; a value is raw JSON text.
struct JSONRecord: Sendable, CustomTestStringConvertible {
    static let valid: [(String, String)] = [
        ("transaction_id", #""tx-1""#), ("card_id", #""card-1""#), ("amount", "12.5"),
        ("timestamp", #""2026-03-01T12:30:00Z""#), ("merchant_id", #""m-1""#),
    ]

    var members: [(String, String)]

    /// The valid record with `changes` applied: a nil value removes the member; a new key is appended.
    init(_ changes: [(String, String?)] = []) {
        var members = JSONRecord.valid
        for (key, value) in changes {
            if let i = members.firstIndex(where: { $0.0 == key }) {
                if let value { members[i].1 = value } else { members.remove(at: i) }
            } else if let value {
                members.append((key, value))
            }
        }
        self.members = members
    }

    init(members: [(String, String)]) { self.members = members }

    var line: String { "{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}" }
    var testDescription: String { line }
}

/// One bad field: the record, the field the single issue must name, and words its problem must contain.
struct BadField: Sendable, CustomTestStringConvertible {
    var record: JSONRecord
    var field: String
    var mentions: [String]

    init(_ changes: [(String, String?)], _ field: String, _ mentions: String...) {
        self.record = JSONRecord(changes)
        self.field = field
        self.mentions = mentions
    }

    var testDescription: String { "\(field): \(record.line)" }
}

func expectSingleIssue(
    _ result: Result<Transaction, RecordError>, field: String, mentions: [String],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let found = issues(result, sourceLocation: sourceLocation)
    #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
    guard let issue = found.first else { return }
    #expect(issue.field == field, "\(issue)", sourceLocation: sourceLocation)
    #expect(!issue.problem.isEmpty, sourceLocation: sourceLocation)
    for word in mentions {
        #expect(issue.problem.lowercased().contains(word.lowercased()), "\(issue)", sourceLocation: sourceLocation)
    }
}

let sixtyFive = String(repeating: "x", count: 65)
let sixtyFour = String(repeating: "x", count: 64)

let badJSONFields: [BadField] = [
    // Missing required fields, absent or null.
    BadField([("transaction_id", nil)], "transaction_id", "missing"),
    BadField([("card_id", nil)], "card_id", "missing"),
    BadField([("amount", nil)], "amount", "missing"),
    BadField([("timestamp", nil)], "timestamp", "missing"),
    BadField([("merchant_id", nil)], "merchant_id", "missing"),
    BadField([("transaction_id", "null")], "transaction_id", "missing"),
    BadField([("amount", "null")], "amount", "missing"),
    // Wrong types.
    BadField([("amount", #""12.5""#)], "amount", "number", "string"),
    BadField([("amount", "true")], "amount", "number", "boolean"),
    BadField([("card_id", "42")], "card_id", "string", "number"),
    BadField([("merchant_id", "{}")], "merchant_id", "string", "object"),
    BadField([("transaction_id", #"["a"]"#)], "transaction_id", "string", "array"),
    BadField([("amount", #"{"value":12.5}"#)], "amount", "number", "object"),
    BadField([("amount", "[12.5]")], "amount", "number", "array"),
    BadField([("timestamp", "1772368200")], "timestamp", "RFC 3339", "number"),
    BadField([("latitude", #""10""#), ("longitude", "20")], "latitude", "number", "string"),
    BadField([("currency", "840")], "currency", "ISO 4217", "number"),
    BadField([("channel", "[]")], "channel", "pos, online, atm", "array"),
    // Amount out of range or not finite.
    BadField([("amount", "0")], "amount", "greater than 0"),
    BadField([("amount", "-0")], "amount", "greater than 0"),
    BadField([("amount", "-5")], "amount", "greater than 0"),
    BadField([("amount", "1000000000.01")], "amount", "at most"),
    BadField([("amount", "1e10")], "amount", "at most"),
    BadField([("amount", "1e999")], "amount", "finite"),
    BadField([("amount", "-1e999")], "amount", "finite"),
    // Timestamps.
    BadField([("timestamp", #""2026-03-01 12:30:00""#)], "timestamp", "RFC 3339", "2026-03-01 12:30:00"),
    BadField([("timestamp", #""2026-02-30T12:30:00Z""#)], "timestamp", "RFC 3339"),
    BadField([("timestamp", #""2026-03-01T12:30:00""#)], "timestamp", "RFC 3339"),
    BadField([("timestamp", #""""#)], "timestamp", "RFC 3339"),
    // Coordinates.
    BadField([("latitude", "10")], "longitude", "missing", "latitude"),
    BadField([("longitude", "10")], "latitude", "missing", "longitude"),
    BadField([("latitude", "10"), ("longitude", "null")], "longitude", "missing"),
    BadField([("latitude", "91"), ("longitude", "0")], "latitude", "-90 and 90", "91"),
    BadField([("latitude", "-90.000001"), ("longitude", "0")], "latitude", "-90 and 90"),
    BadField([("latitude", "0"), ("longitude", "-181")], "longitude", "-180 and 180", "-181"),
    BadField([("latitude", "0"), ("longitude", "180.5")], "longitude", "-180 and 180"),
    // Channel.
    BadField([("channel", #""web""#)], "channel", "unknown channel", "web"),
    BadField([("channel", #""POS""#)], "channel", "unknown channel"),
    // Identifiers.
    BadField([("transaction_id", "\"\(sixtyFive)\"")], "transaction_id", "65", "64"),
    BadField([("card_id", "\"\(String(repeating: "é", count: 65))\"")], "card_id", "65", "64"),
    BadField([("card_id", #""""#)], "card_id", "empty"),
    BadField([("merchant_id", #""m\u0001x""#)], "merchant_id", "control character"),
    BadField([("transaction_id", #""a\nb""#)], "transaction_id", "control character"),
    BadField([("customer_id", #""c\u007fd""#)], "customer_id", "control character"),
    BadField([("customer_id", #""c\u0085d""#)], "customer_id", "control character"),
    BadField([("customer_id", #""""#)], "customer_id", "empty"),
    BadField([("merchant_category", "\"cat\(sixtyFive)\"")], "merchant_category", "64"),
    // Blank identifiers (issue 14, item 13): empty once white space is trimmed.
    BadField([("transaction_id", #"" ""#)], "transaction_id", "blank"),
    BadField([("card_id", #""   ""#)], "card_id", "blank"),
    BadField([("merchant_id", #""\u00a0\u2003""#)], "merchant_id", "blank"),
    BadField([("customer_id", #"" ""#)], "customer_id", "blank"),
    // Identifiers that read as card numbers (issue 14, item 8).
    BadField([("card_id", #""4111111111111111""#)], "card_id", "card number", "card_number"),
    BadField([("transaction_id", #""4111 1111 1111 1111""#)], "transaction_id", "card number"),
    BadField([("merchant_id", #""5500-0000-0000-0004""#)], "merchant_id", "card number"),
    BadField([("customer_id", #""6011000990139424""#)], "customer_id", "card number"),
    // Amounts below the currency's minor unit (issue 14, item 13).
    BadField([("amount", "5e-324")], "amount", "smallest unit", "USD", "0.01"),
    BadField([("amount", "0.009")], "amount", "smallest unit", "0.01"),
    BadField([("amount", "0.5"), ("currency", #""JPY""#)], "amount", "smallest unit", "JPY", "1"),
    BadField([("amount", "0.0005"), ("currency", #""BHD""#)], "amount", "smallest unit", "BHD", "0.001"),
    BadField([("amount", "0.00005"), ("currency", #""CLF""#)], "amount", "smallest unit", "CLF", "0.0001"),
    // Codes.
    BadField([("currency", #""usd""#)], "currency", "ISO 4217", "usd"),
    BadField([("currency", #""ABC""#)], "currency", "ISO 4217", "ABC"),
    BadField([("currency", #""USDX""#)], "currency", "ISO 4217"),
    BadField([("country", #""XX""#)], "country", "ISO 3166", "XX"),
    BadField([("country", #""UK""#)], "country", "ISO 3166"),
    BadField([("country", #""us""#)], "country", "ISO 3166"),
    BadField([("merchant_category", #""541""#)], "merchant_category", "4-digit", "541"),
    BadField([("merchant_category", #""54111""#)], "merchant_category", "4-digit"),
    // Labels.
    BadField([("is_fraud", "2")], "is_fraud", "0, 1", "2"),
    BadField([("is_fraud", "0.5")], "is_fraud", "0, 1"),
    BadField([("is_fraud", #""yes""#)], "is_fraud", "0, 1", "string"),
    BadField([("is_fraud", "1"), ("fraud_pattern", #""""#)], "fraud_pattern", "empty"),
    BadField([("is_fraud", "1"), ("fraud_pattern", #"" ""#)], "fraud_pattern", "blank"),
    BadField([("is_fraud", "1"), ("fraud_pattern", "\"\(sixtyFive)\"")], "fraud_pattern", "65", "64"),
    BadField([("is_fraud", "0"), ("fraud_pattern", #""geo_jump""#)], "fraud_pattern", "is_fraud"),
    BadField([("is_fraud", "false"), ("fraud_pattern", #""card_testing""#)], "fraud_pattern", "is_fraud"),
    BadField([("fraud_pattern", #""velocity_burst""#)], "fraud_pattern", "is_fraud"),
    BadField([("fraud_pattern", "1")], "fraud_pattern", "number"),
]

@Suite struct ValidationTests {
    @Test func theBaseRecordIsValid() throws {
        let t = try decodeJSON(JSONRecord().line).get()
        #expect(t.transactionID == "tx-1" && t.cardID == "card-1" && t.merchantID == "m-1")
        #expect(t.amount == 12.5)
        #expect(t.timestamp == Timestamp(rfc3339: "2026-03-01T12:30:00Z"))
        #expect(t.currency == "USD")  // the default
        #expect(t.location == nil && t.country == nil && t.channel == nil && t.isFraud == nil)
    }

    @Test(arguments: badJSONFields)
    func jsonRejectsABadField(_ bad: BadField) {
        expectSingleIssue(decodeJSON(bad.record.line), field: bad.field, mentions: bad.mentions)
    }

    @Test(
        arguments: [
            [("amount", "1000000000")], [("amount", "0.01")], [("amount", "1e9")],
            [("amount", "1"), ("currency", #""KRW""#)], [("amount", "0.001"), ("currency", #""KWD""#)],
            [("amount", "0.0001"), ("currency", #""UYW""#)],
            [("transaction_id", #""4111111111111112""#)], [("transaction_id", #""411111111116""#)],
            [("transaction_id", #""0000000000000""#)], [("transaction_id", #""0004111111111111111""#)],
            [("transaction_id", #"" tx ""#)], [("is_fraud", "1"), ("fraud_pattern", #""phishing""#)],
            [("is_fraud", "1"), ("fraud_pattern", #""Account Takeover / ATO""#)],
            [("transaction_id", "\"\(sixtyFour)\"")], [("card_id", "\"\(String(repeating: "é", count: 64))\"")],
            [("merchant_id", #""a,b \"c\" \\ d""#)], [("customer_id", "null")],
            [("latitude", "90"), ("longitude", "-180")], [("latitude", "-90"), ("longitude", "180")],
            [("latitude", "null"), ("longitude", "null")],
            [("merchant_category", #""5411""#)], [("merchant_category", #""grocery""#)],
            [("merchant_category", #""0000""#)],
            [("currency", #""EUR""#)], [("country", #""GB""#)], [("channel", #""atm""#)],
            [("is_fraud", "1"), ("fraud_pattern", #""geo_jump""#)], [("is_fraud", "true")], [("is_fraud", "0")],
            [("timestamp", #""2026-03-01t12:30:00.123456+05:30""#)],
            [("note", #"{"nested":[1,{"deep":null}],"s":"\u00e9"}"#)],
            [("transaction_id", #""\u00e9\ud83d\ude00""#)],
        ] as [[(String, String?)]])
    func jsonAcceptsEdgeValues(_ changes: [(String, String?)]) throws {
        let record = JSONRecord(changes)
        let t = try decodeJSON(record.line).get()
        expectSchemaValid(t)
    }

    @Test func decodedValuesMatchTheText() throws {
        let line = JSONRecord([
            ("merchant_id", #""a,b \"c\" \\ d \/ \u00e9\ud83d\ude00""#), ("latitude", "-33.8688"),
            ("longitude", "151.2093"), ("is_fraud", "true"), ("fraud_pattern", #""high_amount""#),
            ("channel", #""online""#), ("country", #""AU""#), ("currency", #""AUD""#),
        ]).line
        let t = try decodeJSON(line).get()
        #expect(t.merchantID == "a,b \"c\" \\ d / é😀")
        #expect(t.location == GeoPoint(latitude: -33.8688, longitude: 151.2093))
        #expect(t.isFraud == true && t.fraudPattern == "high_amount" && t.channel == .online)
        #expect(t.country == "AU" && t.currency == "AUD")
    }

    @Test func aFieldGivenTwiceIsRefused() {
        let twice = JSONRecord(members: JSONRecord.valid + [("amount", "12.5")])
        expectSingleIssue(decodeJSON(twice.line), field: "amount", mentions: ["more than once"])
        let nullThenValue = JSONRecord(members: [("card_id", "null")] + JSONRecord.valid)
        expectSingleIssue(decodeJSON(nullThenValue.line), field: "card_id", mentions: ["more than once"])
    }

    @Test func everyProblemOfARecordIsReportedAtOnce() {
        let four = JSONRecord([
            ("amount", #""12.5""#), ("currency", #""usd""#), ("latitude", "91"), ("longitude", "0"),
            ("channel", #""web""#),
        ])
        let found = issues(decodeJSON(four.line))
        #expect(found.count == 4, "\(found)")
        #expect(Set(found.map(\.field)) == ["amount", "currency", "latitude", "channel"])
        #expect(found.allSatisfy { !$0.problem.isEmpty })

        let empty = issues(decodeJSON("{}"))
        #expect(Set(empty.map(\.field)) == ["transaction_id", "card_id", "amount", "timestamp", "merchant_id"])
        #expect(empty.count == 5 && empty.allSatisfy { $0.problem.contains("missing") })

        let many = JSONRecord([
            ("transaction_id", #""""#), ("card_id", "7"), ("amount", "-1"), ("timestamp", #""now""#),
            ("merchant_id", "null"), ("country", #""XX""#), ("is_fraud", "3"), ("merchant_category", #""12""#),
        ])
        let manyIssues = issues(decodeJSON(many.line))
        #expect(
            Set(manyIssues.map(\.field)) == [
                "transaction_id", "card_id", "amount", "timestamp", "merchant_id", "country", "is_fraud",
                "merchant_category",
            ], "\(manyIssues)")
        #expect(manyIssues.count == 8)
    }

    @Test(arguments: [
        "", "   ", "not json", "[1,2]", "{", "}", #"{"amount":}"#, #"{"amount" 1}"#, #"{"a":1,}"#, #"{"a":1} x"#,
        #"{"a":1}{"b":2}"#, #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":-}"#, #"{"a":"x}"#,
        #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{'a':1}"#, #"{a:1}"#,
        "{\"a\":\"x\u{01}y\"}", #"{"a":[1,2}"#, #"{"a":{"b":1]}"#, String(repeating: "[", count: 100),
        "{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}",
    ])
    func malformedJSONIsARecordIssue(_ line: String) {
        let found = issues(decodeJSON(line))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.field == "record")
        #expect(found.first.map { !$0.problem.isEmpty } == true)
    }

    @Test func invalidUTF8IsARecordIssue() {
        let prefix = Array(#"{"transaction_id":"a"#.utf8)
        let suffix = Array(#"","card_id":"c","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m"}"#.utf8)
        #expect(decodeJSON(prefix + suffix).map(\.transactionID) == .success("a"))
        for bad: [UInt8] in [[0xFF], [0xC3, 0x28], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
            let found = issues(decodeJSON(prefix + bad + suffix))
            #expect(found.count == 1 && found.first?.field == "record", "\(bad): \(found)")
        }
        // In an escaped string too, and in a key.
        let escaped = Array(#"{"transaction_id":"\n"#.utf8) + [0xFF] + suffix
        #expect(issues(decodeJSON(escaped)).first?.field == "record")
        let key = Array(#"{"transaction_"#.utf8) + [0xFF] + Array(#"":"a"}"#.utf8)
        #expect(issues(decodeJSON(key)).first?.field == "record")
    }

    @Test func problemsQuoteLongValuesShortly() {
        let long = String(repeating: "z", count: 500)
        let found = issues(decodeJSON(JSONRecord([("currency", "\"\(long)\"")]).line))
        #expect(found.count == 1)
        #expect(found.first.map { $0.problem.count < 200 } == true, "\(found)")
    }

    @Test func labelEventsAreWrittenAsJSONLines() throws {
        let event = LabelEvent(transactionID: "tx \"1\"", isFraud: true, reportedAt: Timestamp(microseconds: 1_500))
        var out: [UInt8] = []
        TransactionEncoder.appendJSONLine(event, to: &out)
        #expect(out.last == UInt8(ascii: "\n"))
        let text = String(decoding: out.dropLast(), as: UTF8.self)
        #expect(text == #"{"transaction_id":"tx \"1\"","is_fraud":1,"reported_at":"1970-01-01T00:00:00.001500Z"}"#)
    }
}
