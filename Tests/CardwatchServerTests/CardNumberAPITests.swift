import CardwatchCore
import CardwatchPipeline
import CardwatchServer
import CardwatchStorage
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

// Issue 14's bad-data items over HTTP, against the server on a real socket, with the
// settings of `cardwatch run`: card numbers (item 8) and event-time bounds (item 10).

let apiPANKey = try! PANKey(secret: Array("api-test-secret-0123456789abcdef".utf8))
/// HMAC-SHA256("api-test-secret-0123456789abcdef", "4111111111111111"), by Python's hmac module.
let apiVisaCardID = "d711bc79a3f2939e8b9b5d4beeddea8890c895851e22eefd41aece2fcb0d3cde"

/// The fixture's API as `cardwatch run` configures it: a PAN secret (unless `key` is nil) and
/// the live event-time bounds, served on an ephemeral port.
func withLiveAPI(
    key: PANKey? = apiPANKey, _ body: @Sendable (any TestClientProtocol, Fixture) async throws -> Void
) async throws {
    let fixture = try Fixture()
    defer { fixture.close() }
    var dependencies = fixture.api.dependencies
    dependencies.ingestPolicy = IngestPolicy(panKey: key, eventTimes: .live)
    let api = CardwatchAPI(dependencies: dependencies, settings: fixture.api.settings)
    try await api.application().test(.live) { client in try await body(client, fixture) }
}

@Suite struct CardNumberAPITests {
    @Test func aCardNumberDerivesTheCardAndIsNeitherAnsweredNorStored() async throws {
        try await withLiveAPI { client, fixture in
            let one = current("p1", amount: 20, extra: #","card_number":"4111 1111 1111 1111""#)
                .replacingOccurrences(of: #""card_id":"card_1","#, with: "")
            let (status, text) = try await post(client, "/v1/transactions", one)  // the event-loop path
            #expect(status == .ok, "\(text)")
            let bad = current("p2", amount: 20, card: "c", extra: #","card_number":"4111111111111112""#)
            let (badStatus, badText) = try await post(client, "/v1/transactions", bad)
            #expect(badStatus == .unprocessableContent && badText.contains("check digit"), "\(badText)")
            let many =
                "[" + current("p3", amount: 30, extra: #","card_number":"5500000000000004""#) + ","
                + current("p4", amount: 30, card: "4111111111111111") + "]"
            let (_, manyText) = try await post(client, "/v1/transactions", many)
            #expect(manyText.contains("card number"), "the card_id that is a card number is refused: \(manyText)")
            for answer in [text, badText, manyText] {
                #expect(!answer.contains("41111111") && !answer.contains("55000000"), "\(answer)")
            }
            let cards = try rows(fixture, "SELECT card_id FROM silver_transactions WHERE transaction_id = 'p1'")
            #expect(cards == [[apiVisaCardID]])
            let stored = try rows(fixture, "SELECT payload FROM records").joined().joined()
            #expect(!stored.contains("41111111") && !stored.contains("55000000"), "\(stored)")
            #expect(stored.contains("411111******1112"), "the dead letter keeps the first six and last four")
        }
    }

    @Test func withoutASecretACardNumberIsRefusedSayingWhy() async throws {
        try await withLiveAPI(key: nil) { client, _ in
            let record = current("n1", amount: 5, extra: #","card_number":"4111111111111111""#)
            let (status, text) = try await post(client, "/v1/transactions", record)
            #expect(status == .unprocessableContent, "\(text)")
            #expect(text.contains("PAN secret") && text.contains("--pan-secret-file") && !text.contains("41111111"), "\(text)")
        }
    }

    @Test func theGatewayBodyIsDecidedAsV1WithItsLocationKept() async throws {
        try await withLiveAPI { client, fixture in
            let now = Timestamp.now.rfc3339
            let gateway =
                #"{"transaction_id":"g1","user_id":"u1","card_number":"4111111111111111","amount":1500,"#
                + #""merchant":"Shop A","merchant_category":"electronics","location":"Online","timestamp":"\#(now)"}"#
            let (status, text) = try await post(client, "/transaction", gateway)
            #expect(status == .ok, "\(text)")
            let (v1Status, v1Text) = try await post(client, "/v1/transactions", current("v1", amount: 1500))
            #expect(v1Status == .ok)
            #expect(Set(object(text).keys) == Set(object(v1Text).keys), "\(text) vs \(v1Text)")
            #expect(object(text)["transaction_id"] as? String == "g1" && !text.contains("41111111"))
            // A second copy is a duplicate, answered as /v1 answers one.
            let (_, again) = try await post(client, "/transaction", gateway)
            #expect(object(again)["duplicate"] as? Bool == true, "\(again)")

            let city =
                #"{"transaction_id":"g2","user_id":"u1","card_number":"4111-1111-1111-1111","amount":20,"#
                + #""merchant_id":"m9","location":"New York, NY"}"#
            let (cityStatus, cityText) = try await post(client, "/transaction", city)
            #expect(cityStatus == .ok, "\(cityText)")

            let silver = try rows(
                fixture,
                "SELECT transaction_id, card_id, merchant_id, channel FROM silver_transactions "
                    + "WHERE transaction_id IN ('g1', 'g2') ORDER BY transaction_id")
            #expect(
                silver == [
                    ["g1", apiVisaCardID, "Shop A", "online"], ["g2", apiVisaCardID, "m9", ""],
                ], "\(silver)")
            let bronze = try rows(fixture, "SELECT payload FROM records WHERE topic = 'transactions'").joined().joined()
            #expect(bronze.contains(#""location":"Online""#) && bronze.contains(#""location":"New York, NY""#), "\(bronze)")
            #expect(!bronze.contains("4111") && !bronze.contains("card_number"), "\(bronze)")
            #expect(bronze.contains(#""customer_id":"u1""#), "user_id is the customer: \(bronze)")
        }
    }

    @Test func aBadGatewayBodySaysWhatIsWrong() async throws {
        try await withLiveAPI { client, _ in
            let cases: [(String, String)] = [
                (#"{"transaction_id":"g3","amount":5,"merchant":"m"}"#, "card_number"),
                (
                    #"{"transaction_id":"g4","card_number":"4111111111111111","amount":5,"merchant":"m","merchant_id":"m"}"#,
                    "not both"
                ),
                (
                    #"{"transaction_id":"g5","card_number":"4111111111111111","card_number":"4111111111111111","amount":5}"#,
                    "more than once"
                ),
                (#"{"transaction_id":"g6","card_number":"4111111111111113","amount":5,"merchant":"m"}"#, "check digit"),
                (#"{"transaction_id":"#, "JSON object"),
            ]
            for (body, words) in cases {
                let (status, text) = try await post(client, "/transaction", body)
                #expect(status == .unprocessableContent || status == .badRequest, "\(text)")
                #expect(text.contains(words) && !text.contains("41111111"), "\(body): \(text)")
            }
        }
    }
}

@Suite struct EventTimeAPITests {
    @Test func eventTimesBeyondTheBoundsAreRefusedAndDeadLettered() async throws {
        try await withLiveAPI { client, fixture in
            for (id, time, words) in [
                ("f1", "9999-12-31T00:00:00Z", ["ahead of the wall clock", "--max-event-lead"]),
                ("f2", "0001-01-01T00:00:00Z", ["behind the wall clock", "--max-event-age"]),
            ] {
                let record = #"{"transaction_id":"\#(id)","card_id":"c","amount":5,"timestamp":"\#(time)","merchant_id":"m"}"#
                let (status, text) = try await post(client, "/v1/transactions", record)
                #expect(status == .unprocessableContent, "\(text)")
                for w in words { #expect(text.contains(w), "\(text)") }
            }
            let (ok, text) = try await post(client, "/v1/transactions", current("f3", amount: 5, seconds: 3_600))
            #expect(ok == .ok, "an hour ahead is within the bound: \(text)")
            let dead = try rows(fixture, "SELECT COUNT(*) FROM dead_letters")
            #expect(dead == [["2"]])
        }
    }
}
