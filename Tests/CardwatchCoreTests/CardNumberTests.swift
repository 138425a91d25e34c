import Foundation
import Testing

@testable import CardwatchCore

// Issue 14, item 8: a card number (PAN) only derives card_id by a keyed hash and is never
// kept — not in the stored record, a dead letter, a message — and nothing that reads as a
// card number passes as an identifier.

let panSecret = Array("cardwatch-test-secret-0123456789".utf8)
let testKey = try! PANKey(secret: panSecret)
/// HMAC-SHA256(panSecret, "4111111111111111"), computed independently (Python's hmac module).
let visaCardID = "a22e967028370485758a1da61b429ac54cfd2b1b59223f4fc7660d2ca4ac1c4d"
let visa = "4111111111111111"

/// A record with a card number instead of a card id.
func panRecord(_ pan: String = visa, extra: [(String, String?)] = []) -> JSONRecord {
    JSONRecord([("card_id", nil), ("card_number", "\"\(pan)\"")] + extra)
}

func decodeWithKey(_ line: String, key: PANKey? = testKey) -> (Result<Transaction, RecordError>, [UInt8]?) {
    var decoder = TransactionJSONDecoder(policy: IngestPolicy(panKey: key))
    let result = decoder.decode(line)
    return (result, decoder.redacted)
}

func text(_ bytes: [UInt8]?) -> String { bytes.map { String(decoding: $0, as: UTF8.self) } ?? "" }

@Suite struct CardNumberTests {
    @Test func luhnAndLengthsAreChecked() {
        for valid in ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "6011000990139424"] {
            #expect((try? CardNumber.digits(valid.utf8).get()) != nil, "\(valid)")
        }
        #expect(CardNumber.digits("4111111111111112".utf8) == .failure(.checkDigit))
        #expect(CardNumber.digits("41111111111".utf8) == .failure(.length(11)))
        #expect(CardNumber.digits("41111111111111111111".utf8) == .failure(.length(20)))
        for bad in ["4111x11111111111", "4111  1111", "-4111", "4111-", " 4111", ""] {
            #expect(CardNumber.digits(bad.utf8) == .failure(bad.isEmpty ? .length(0) : .notDigits), "\(bad)")
        }
        #expect(CardNumber.masked(Array(visa.utf8)) == "411111******1111")
        #expect(CardNumber.masked(Array("411111111116".utf8)) == "********1116")
    }

    @Test func aCardNumberDerivesTheCardIDByHMAC() throws {
        let (result, stored) = decodeWithKey(panRecord().line)
        let t = try result.get()
        #expect(t.cardID == visaCardID)
        // Written with spaces or dashes, the same card.
        for written in ["4111 1111 1111 1111", "4111-1111-1111-1111"] {
            #expect(try decodeWithKey(panRecord(written).line).0.get().cardID == visaCardID)
        }
        // The stored record has the card id and no card number, and decodes to the same transaction.
        let s = text(stored)
        #expect(!s.contains("4111") && !s.contains("card_number") && s.contains(visaCardID), "\(s)")
        var replay = TransactionJSONDecoder(policy: .log)
        #expect(try replay.decode(s).get() == t)
        var offline = TransactionJSONDecoder()
        #expect(try offline.decode(s).get() == t)
    }

    @Test(arguments: [
        // card_number first, in the middle, last; with card_id equal or null; with white space.
        #"{"card_number":"4111111111111111","transaction_id":"t","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m"}"#,
        #"{"transaction_id":"t","amount":1, "card_number" : "4111 1111 1111 1111" ,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m"}"#,
        #"{"transaction_id":"t","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m","card_number":"4111111111111111"}"#,
        #"{"card_id":null,"transaction_id":"t","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m","card_number":"4111111111111111"}"#,
        #"{"card_number":"4111111111111111" , "card_id":"a22e967028370485758a1da61b429ac54cfd2b1b59223f4fc7660d2ca4ac1c4d","transaction_id":"t","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m"}"#,
        #"{"transaction_id":"t","card_id":"a22e967028370485758a1da61b429ac54cfd2b1b59223f4fc7660d2ca4ac1c4d","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m","card_number":"4111111111111111"}"#,
    ])
    func theStoredRecordKeepsEverythingButTheCardNumber(_ line: String) throws {
        let (result, stored) = decodeWithKey(line)
        let t = try result.get()
        let s = text(stored)
        #expect(!s.contains("4111") && !s.contains("card_number"), "\(s)")
        var replay = TransactionJSONDecoder(policy: .log)
        #expect(try replay.decode(s).get() == t, "\(s)")
        // Every other member's bytes are as they came.
        #expect(s.contains(#""transaction_id":"t""#) && s.contains(#""timestamp":"2026-03-01T12:30:00Z""#))
        #expect((try? JSONSerialization.jsonObject(with: Data(s.utf8))) != nil, "\(s)")
    }

    @Test func aRecordWithoutACardNumberIsStoredAsItCame() throws {
        let (result, stored) = decodeWithKey(JSONRecord([("note", #""no card here""#)]).line)
        _ = try result.get()
        #expect(stored == nil)
    }

    @Test func aCardNumberIsRefusedWithoutASecretOrWhenInvalidAndNeverQuoted() {
        let cases: [(String, PANKey?, [String])] = [
            (visa, nil, ["no PAN secret", "--pan-secret-file", "CARDWATCH_PAN_SECRET"]),
            ("4111111111111112", testKey, ["check digit"]),
            ("41111111", testKey, ["8 digits"]),
            ("4111-1111-1111-111x", testKey, ["only digits"]),
        ]
        for (pan, key, words) in cases {
            let (result, stored) = decodeWithKey(panRecord(pan).line, key: key)
            expectSingleIssue(result, field: "card_number", mentions: words)
            #expect(stored == nil)
            for issue in issues(result) { #expect(!issue.problem.contains("41111111"), "\(issue)") }
        }
        // A JSON number loses digits: refused as such.
        let number = JSONRecord([("card_id", nil), ("card_number", visa)])
        expectSingleIssue(decodeWithKey(number.line).0, field: "card_number", mentions: ["string"])
    }

    @Test func aCardIDOtherThanTheDerivedOneIsRefused() {
        let record = JSONRecord([("card_number", "\"\(visa)\"")])  // card_id "card-1" stays
        expectSingleIssue(decodeWithKey(record.line).0, field: "card_id", mentions: ["differs", "card_number"])
    }

    @Test func withoutCardIDOrCardNumberTheCardIsMissing() {
        expectSingleIssue(decodeWithKey(JSONRecord([("card_id", nil)]).line).0, field: "card_id", mentions: ["missing"])
    }

    @Test func lookalikesInUnknownMembersAreMaskedInTheStoredRecord() throws {
        let record = JSONRecord([
            ("pan", "\"\(visa)\""), ("card", "5500000000000004"), ("note", #""paid with 4111 1111 1111 1111 today""#),
            ("order", #""123456789012345678901234""#), ("nested", #"{"n":[378282246310005]}"#),
            ("total", "0.4012888888881881"),
        ])
        let (result, stored) = decodeWithKey(record.line)
        let t = try result.get()
        let s = text(stored)
        for pan in ["4111111111111111", "5500000000000004", "4111 1111 1111 1111", "378282246310005"] {
            #expect(!s.contains(pan), "\(pan) in \(s)")
        }
        #expect(s.contains(#""pan":"411111******1111""#), "\(s)")
        #expect(s.contains(#""card":null"#), "a bare number goes whole, JSON stays valid: \(s)")
        #expect(s.contains("123456789012345678901234"), "a run of 24 digits is no card number: \(s)")
        #expect(s.contains("0.4012888888881881"), "a decimal fraction is no card number: \(s)")
        #expect((try? JSONSerialization.jsonObject(with: Data(s.utf8))) != nil, "still JSON: \(s)")
        var replay = TransactionJSONDecoder(policy: .log)
        #expect(try replay.decode(s).get() == t)
    }

    @Test(arguments: [
        // Valid and invalid card numbers, in valid records and broken ones.
        #"{"card_number":"4111111111111111","transaction_id":" ","amount":1,"timestamp":"x","merchant_id":"m"}"#,
        #"{"card_number":"4111111111111112","transaction_id":"t","amount":1,"timestamp":"2026-03-01T12:30:00Z","merchant_id":"m"}"#,
        #"{"card_number": "4111-1111-1111-1112" ,"transaction_id":"t","amount":1}"#,
        #"{"card_number":4111111111111111,"transaction_id":"t"}"#,
        #"{"card_number":"4111111111111111","transaction_id":"t","amount":1,"#,
        #"{"card_id":"4111111111111111","transaction_id":"t"}"#,
        #"{"transaction_id":"t","timestamp":"5555555555554444","note":"4111 1111 1111 1111"}"#,
        #"{"card_number":"\u0034111111111111111","transaction_id":"t"}"#,
    ])
    func deadLetteredTextHasCardNumbersMasked(_ line: String) {
        let masked = text(CardNumber.deadLetterText(Array(line.utf8)))
        for pan in ["4111111111111111", "4111111111111112", "4111-1111-1111-1112", "5555555555554444", "4111 1111 1111 1111"] {
            #expect(!masked.contains(pan), "\(pan) in \(masked)")
        }
        #expect(!masked.contains("111111111111"), "\(masked)")
        #expect(masked.contains("card_number") || !line.contains("card_number"))
        // Messages about the record never quote a card number either.
        let (result, _) = decodeWithKey(line)
        for issue in issues(result) {
            #expect(!issue.description.contains("11111111"), "\(issue)")
            #expect(!issue.description.contains("55555555"), "\(issue)")
        }
    }

    @Test func numbersAreNotCardNumbersButCardNumbersInWordsAre() {
        let kept = ["0.4012888888881881", "1.5e4012888888881881", "4012888888881881.5", "4012888888881881e-3"]
        for text in kept { #expect(CardNumber.masked(text: text) == text, "\(text)") }
        let masked = ["no.4012888888881881", "EXP4012888888881881", "pan 4012 8888 8888 1881.", "-4012888888881881"]
        for text in masked { #expect(!CardNumber.masked(text: text).contains("888888"), "\(text)") }
    }

    @Test func csvTakesACardNumberColumnAndMasksItInDeadLetters() throws {
        let header = "transaction_id,card_number,amount,timestamp,merchant_id"
        let decoder = header.utf8.withContiguousStorageIfAvailable {
            TransactionCSVDecoder(header: UnsafeRawBufferPointer($0), policy: IngestPolicy(panKey: testKey))
        }!
        #expect(decoder.headerIssues.isEmpty)
        var d = decoder
        let t = try d.decode("t1,4111 1111 1111 1111,10,2026-03-01T12:30:00Z,m").get()
        #expect(t.cardID == visaCardID)
        for row in [
            "t2,4111111111111112,10,2026-03-01T12:30:00Z,m", "t3,\"4111-1111-1111-1111\",0,x,m", "t4,4111111111111111,\"bad",
        ] {
            #expect(throws: Never.self) { _ = d.decode(row) }
            let masked = row.utf8.withContiguousStorageIfAvailable { d.deadLetterText(UnsafeRawBufferPointer($0)) }!
            let s = text(masked)
            #expect(!s.contains("1111111111") && !s.contains("1111-1111-1111"), "\(s)")
            #expect(s.contains("4111"), "the first digits stay: \(s)")
        }
    }

    @Test func filesHandOutNoCardNumber() throws {
        let jsonl = [
            panRecord().line, panRecord("4111111111111112").line,
            JSONRecord([("card_id", nil), ("card_number", #""5500 0000 0000 0004""#), ("transaction_id", #""t2""#)]).line,
        ].joined(separator: "\n")
        let csv =
            "transaction_id,card_number,amount,timestamp,merchant_id\nt1,4111111111111111,1,2026-03-01T12:30:00Z,m\n"
            + "t2,4111111111111112,1,2026-03-01T12:30:00Z,m\nt3,5500000000000004,1,never,m\n"
        for (content, suffix, validCount) in [(jsonl, ".jsonl", 2), (csv, ".csv", 1)] {
            try withTempFile(Array(content.utf8), suffix: suffix) { path in
                var reader = try TransactionFileReader(path: path, policy: IngestPolicy(panKey: testKey))
                defer { reader.close() }
                var valid = 0
                try reader.forEachRecord { _, outcome in
                    let raw: UnsafeRawBufferPointer
                    switch outcome {
                    case .valid(_, let r):
                        valid += 1
                        raw = r
                    case .invalid(let e, let r):
                        raw = r
                        #expect(!e.description.contains("11111111"))
                    }
                    let s = String(decoding: raw, as: UTF8.self)
                    #expect(!s.contains("1111111111") && !s.contains("0000 0000") && !s.contains("000000000"), "\(s)")
                }
                #expect(valid == validCount, "\(suffix)")
            }
        }
    }

    @Test func aKeyNeedsSixteenBytesAndIgnoresATrailingLineBreak() throws {
        #expect(throws: PANKey.SecretError.self) { try PANKey(secret: Array("short".utf8)) }
        let withNewline = try PANKey(secret: panSecret + [0x0A])
        #expect(withNewline.cardID(digits: Array(visa.utf8)) == visaCardID)
    }
}

// Issue 14, item 10: event times outside a configurable skew from the wall clock are refused
// where records enter the live log; files of history are read without the bound.
@Suite struct EventTimeBoundTests {
    func decode(_ time: String, _ bounds: EventTimeBounds?) -> Result<Transaction, RecordError> {
        var decoder = TransactionJSONDecoder(policy: IngestPolicy(eventTimes: bounds))
        return decoder.decode(JSONRecord([("timestamp", "\"\(time)\"")]).line)
    }

    @Test func farFutureAndFarPastAreRefusedNamingTheBoundAndTheSetting() {
        expectSingleIssue(
            decode("9999-12-31T00:00:00Z", .live), field: "timestamp",
            mentions: ["9999-12-31", "ahead of the wall clock", "at most 1 day", "--max-event-lead"])
        expectSingleIssue(
            decode("0001-01-01T00:00:00Z", .live), field: "timestamp",
            mentions: ["0001-01-01", "behind the wall clock", "at most 30 days", "--max-event-age", "none"])
        let tomorrowAndAHalf = Timestamp(microseconds: Timestamp.now.microseconds + 36 * 3_600_000_000).rfc3339
        expectSingleIssue(decode(tomorrowAndAHalf, .live), field: "timestamp", mentions: ["1.5 days ahead"])
    }

    @Test func timesWithinTheBoundsAndWithoutBoundsPass() throws {
        let now = Timestamp.now.microseconds
        for offset: Int64 in [0, -29 * EventTimeBounds.day, 23 * 3_600_000_000] {
            _ = try decode(Timestamp(microseconds: now + offset).rfc3339, .live).get()
        }
        // Files of history (no bounds), and a historical import (no past bound).
        _ = try decode("2018-04-01T00:00:00Z", nil).get()
        _ = try decode("9999-12-31T00:00:00Z", nil).get()
        _ = try decode("2018-04-01T00:00:00Z", EventTimeBounds(ahead: EventTimeBounds.day, behind: nil)).get()
    }

    @Test func durationsParse() throws {
        #expect(try EventTimeBounds.parseDuration("1d", setting: "x") == EventTimeBounds.day)
        #expect(try EventTimeBounds.parseDuration("90s", setting: "x") == 90_000_000)
        #expect(try EventTimeBounds.parseDuration("12h", setting: "x") == 12 * 3_600_000_000)
        #expect(try EventTimeBounds.parseDuration("none", setting: "x") == nil)
        for bad in ["", "d", "-1d", "1w", "1e300d", "nan"] {
            #expect(throws: EventTimeBounds.DurationError.self) { try EventTimeBounds.parseDuration(bad, setting: "x") }
        }
    }
}

// Issue 14, item 13: canonically equivalent ids are one id.
@Suite struct UnicodeIDTests {
    @Test func idsAreKeptInNFC() throws {
        let decomposed = "caf\u{65}\u{301}"  // e + combining acute
        let composed = "caf\u{E9}"
        let a = try decodeJSON(JSONRecord([("transaction_id", "\"\(decomposed)\"")]).line).get()
        let b = try decodeJSON(JSONRecord([("transaction_id", "\"\(composed)\"")]).line).get()
        #expect(Array(a.transactionID.utf8) == Array(composed.utf8))
        #expect(Array(a.transactionID.utf8) == Array(b.transactionID.utf8))
        // Escaped in JSON, in a CSV cell, and in every identifier field.
        let escaped = try decodeJSON(JSONRecord([("card_id", #""caf\u0065\u0301""#), ("merchant_id", "\"\(decomposed)\"")]).line)
            .get()
        #expect(Array(escaped.cardID.utf8) == Array(composed.utf8) && Array(escaped.merchantID.utf8) == Array(composed.utf8))
        var csv = csvDecoder()
        let row = CSVRecord([("transaction_id", decomposed)]).row
        #expect(Array(try csv.decode(row).get().transactionID.utf8) == Array(composed.utf8))
        // An ASCII id is passed through as it is.
        #expect(try decodeJSON(JSONRecord().line).get().transactionID == "tx-1")
    }
}

@Suite struct FieldNameTests {
    /// The scanner's look-up of member names knows every field, and nothing else.
    @Test func everyFieldIsFoundByItsNameAndNothingElse() {
        for f in TransactionField.allCases {
            let found = Array(f.name.utf8).withUnsafeBytes { TransactionField(name: $0) }
            #expect(found == f, "\(f.name)")
            for wrong in [f.name + "x", String(f.name.dropLast()) + "X", "X" + f.name.dropFirst(), f.name.uppercased()] {
                #expect(Array(wrong.utf8).withUnsafeBytes { TransactionField(name: $0) } == nil, "\(wrong)")
            }
        }
        #expect([UInt8]().withUnsafeBytes { TransactionField(name: $0) } == nil)
    }
}
