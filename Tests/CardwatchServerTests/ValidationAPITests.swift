import CardwatchCore
import CardwatchPipeline
import CardwatchServer
import CardwatchStorage
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Testing

// Issue 14's bad-data items over HTTP, against the server on a real socket: what the schema
// refuses whatever the server's settings (items 8 and 13; card numbers and event-time bounds
// are in CardNumberAPITests.swift).

/// A transaction dated `seconds` after now (the live bounds take today's dates only).
func current(_ id: String, amount: Double, card: String = "card_1", seconds: Int = 0, extra: String = "") -> String {
    let time = Timestamp(microseconds: Timestamp.now.microseconds + Int64(seconds) * 1_000_000).rfc3339
    return #"{"transaction_id":"\#(id)","card_id":"\#(card)","amount":\#(amount),"timestamp":"\#(time)","#
        + #""merchant_id":"m_1","currency":"USD"\#(extra)}"#
}

func post(_ client: any TestClientProtocol, _ uri: String, _ text: String) async throws -> (HTTPResponse.Status, String) {
    let r = try await client.execute(
        uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: text))
    return (r.status, String(buffer: r.body))
}

func object(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

/// Every row of a query on the fixture's log, as text.
func rows(_ fixture: Fixture, _ sql: String) throws -> [[String]] {
    let db = try DatabaseQueue(path: fixture.dir + "/log.sqlite")
    return try db.read { db in
        try Row.fetchAll(db, sql: sql).map { row in
            row.databaseValues.map { value in
                switch value.storage {
                case .blob(let data): String(decoding: data, as: UTF8.self)
                case .string(let text): text
                case .null: ""
                default: value.description
                }
            }
        }
    }
}

@Suite struct IdentifierAPITests {
    @Test func blankIDsAndAmountsBelowTheMinorUnitAreRefused() async throws {
        try await Fixture().test(.live) { client in
            let (blank, blankText) = try await post(client, "/v1/transactions", current(" ", amount: 5))
            #expect(blank == .unprocessableContent && blankText.contains("blank"), "\(blankText)")
            let (tiny, tinyText) = try await post(client, "/v1/transactions", current("t1", amount: .leastNonzeroMagnitude))
            #expect(tiny == .unprocessableContent && tinyText.contains("smallest unit of USD"), "\(tinyText)")
            let yen = current("t2", amount: 0.5).replacingOccurrences(of: "USD", with: "JPY")
            let (yenStatus, yenText) = try await post(client, "/v1/transactions", yen)
            #expect(yenStatus == .unprocessableContent && yenText.contains("JPY"), "\(yenText)")
        }
    }

    @Test func canonicallyEquivalentIDsInOneBatchAreOneTransaction() async throws {
        let fixture = try Fixture()
        try await fixture.test(.live) { client in
            let batch = "[" + current("caf\u{E9}", amount: 5) + "," + current("cafe\u{301}", amount: 6) + "]"
            let (status, text) = try await post(client, "/v1/transactions", batch)
            #expect(status == .ok, "\(text)")
            let decisions = (object(text)["decisions"] as? [[String: Any]]) ?? []
            #expect(decisions.count == 2 && decisions[1]["duplicate"] as? Bool == true, "\(text)")
            let stored = try rows(fixture, "SELECT transaction_id FROM silver_transactions")
            #expect(stored.map { $0.map { Array($0.utf8) } } == [[Array("caf\u{E9}".utf8)]], "\(stored)")
        }
    }
}

@Suite struct PredictAPITests {
    @Test func predictRefusesPrecomputedFeaturesNamingWhatItNeeds() async throws {
        try await Fixture().test(.live) { client in
            let body = #"{"transaction_amount":120.5,"num_txns_last_hour":3,"user_id":"u1","distance_from_home":12}"#
            let (status, text) = try await post(client, "/predict", body)
            #expect(status == .unprocessableContent, "\(text)")
            let problem = object(text)
            #expect((problem["detail"] as? String)?.contains("computes the features itself") == true, "\(text)")
            let fields = Set(((problem["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String })
            #expect(fields.isSuperset(of: ["transaction_amount", "num_txns_last_hour", "distance_from_home"]), "\(fields)")
            for needed in ["transaction_id", "amount", "merchant_id", "card_id"] { #expect(text.contains(needed)) }
        }
    }
}
