import CardwatchServer
import CardwatchStorage
import Foundation
import HummingbirdTesting
import Testing

/// Issue 14, item 4: what one request may cost. Records per request are bounded (413
/// before anything is written), an answer lists the errors of the first records and counts
/// the rest, a member given twice is refused inside an array element and on /predict, and a
/// source's dead letters are bounded (429 with Retry-After, counted) with nothing accepted lost.
@Suite struct AmplificationTests {
    static func post(_ body: String, port: Int, path: String = "/v1/transactions", type: String = "application/json")
        async throws -> RawReply
    {
        try await rawExchange(port: port, rawRequest("POST", path, headers: [("Content-Type", type)], body: body, port: port))
    }

    static func object(_ reply: RawReply) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]) ?? [:]
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func moreRecordsThanTheLimitAre413BeforeAnythingIsWritten() async throws {
        let fixture = try Fixture(configure: { $0.maxRecords = 50 })
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let before = try fixture.store.monitoring.deadLetterCounts(since: 0).total
            // 51 `{}` lines, 51 in an array, 51 valid transactions: all refused whole.
            for body in [
                Array(repeating: "{}", count: 51).joined(separator: "\n"),
                "[" + Array(repeating: "{}", count: 51).joined(separator: ",") + "]",
                (0..<51).map { transaction("m\($0)", amount: 5, seconds: $0) }.joined(separator: "\n"),
            ] {
                let reply = try await Self.post(body, port: port)
                #expect(reply.status == 413 && reply.body.contains("51 records"), "\(reply) \(reply.body)")
            }
            let exactly = try await Self.post(
                (0..<50).map { transaction("e\($0)", amount: 5, seconds: $0) }.joined(separator: "\n"), port: port)
            #expect(exactly.status == 200)
            #expect(try fixture.store.monitoring.deadLetterCounts(since: 0).total == before, "no dead letter written")
            let decided = Self.object(exactly)["decisions"] as? [Any]
            #expect(decided?.count == 50)
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func answersListTheFirstErrorsAndCountTheRest() async throws {
        let fixture = try Fixture(configure: { $0.deadLetters = DeadLetterAllowance(perSecond: 0, burst: 10_000) })
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let allInvalid = try await Self.post(Array(repeating: "{}", count: 1_000).joined(separator: "\n"), port: port)
            let problem = Self.object(allInvalid)
            let errors = problem["errors"] as? [[String: Any]] ?? []
            #expect(allInvalid.status == 422 && problem["invalid_count"] as? Int == 1_000)
            let indexes = Set(errors.compactMap { ($0["field"] as? String)?.split(separator: "]").first })
            #expect(indexes.count == 100, "the errors of the first 100 records: \(indexes.count)")
            #expect(allInvalid.body.utf8.count < 64_000, "\(allInvalid.body.utf8.count) bytes")
            let mixed = try await Self.post(
                ([transaction("ok1", amount: 5)] + Array(repeating: "{}", count: 300)).joined(separator: "\n"), port: port)
            let answer = Self.object(mixed)
            #expect(mixed.status == 200 && answer["invalid_count"] as? Int == 300)
            #expect((answer["invalid"] as? [Any])?.count == 100 && (answer["decisions"] as? [Any])?.count == 1)
            // Every invalid record is in the dead-letter log all the same.
            #expect(try fixture.store.monitoring.deadLetterCounts(since: 0).total == 1_300)
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aMemberGivenTwiceIsRefusedInsideAnArrayAndOnPredict() async throws {
        let fixture = try Fixture()
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let twice = String(transaction("dup1", amount: 5).dropLast()) + #","amount":9000}"#
            let batch = try await Self.post("[\(twice), \(transaction("dup2", amount: 5))]", port: port)
            let invalid = Self.object(batch)["invalid"] as? [[String: Any]] ?? []
            let issues = invalid.first?["errors"] as? [[String: Any]] ?? []
            #expect(batch.status == 200 && invalid.first?["index"] as? Int == 0, "\(batch.body)")
            #expect(issues.contains { $0["field"] as? String == "amount" }, "\(issues)")
            let predict = try await Self.post(
                #"{"transaction_id":"p1","user_id":"u1","amount":5,"merchant_id":"m","merchant_id":"n"}"#, port: port,
                path: "/predict")
            let problem = Self.object(predict)
            #expect(predict.status == 422, "\(predict) \(predict.body)")
            #expect((problem["errors"] as? [[String: Any]])?.first?["field"] as? String == "merchant_id")
            #expect(try fixture.store.monitoring.deadLetterCounts(since: 0).total == 2, "both kept as dead letters")
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aFloodOfInvalidRecordsIsRefusedWith429AndCounted() async throws {
        let fixture = try Fixture(configure: { $0.deadLetters = DeadLetterAllowance(perSecond: 1, burst: 20) })
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let fifteen = Array(repeating: "{}", count: 15).joined(separator: "\n")
            let first = try await Self.post(fifteen, port: port)
            #expect(first.status == 422)
            // Ten more invalid records, with two valid ones: refused whole, nothing written.
            let second = try await Self.post(
                ([transaction("f1", amount: 5), transaction("f2", amount: 5)] + Array(repeating: "{}", count: 10))
                    .joined(separator: "\n"), port: port)
            #expect(second.status == 429, "\(second) \(second.body)")
            let retry = Int(second.headers["retry-after"] ?? "") ?? 0
            #expect(retry >= 1 && retry <= 10, "Retry-After: \(retry)")
            #expect(try fixture.store.monitoring.deadLetterCounts(since: 0).total == 15)
            let f1 = try await rawExchange(port: port, rawRequest("GET", "/alerts/f1", port: port))
            #expect(f1.status == 404)
            // More than a source may ever write at once: 422, not "retry later".
            let tooMany = try await Self.post(Array(repeating: "{}", count: 21).joined(separator: "\n"), port: port)
            #expect(tooMany.status == 422 && tooMany.headers["retry-after"] == nil && tooMany.body.contains("at once"))
            let metrics = try await rawExchange(port: port, rawRequest("GET", "/metrics", port: port))
            #expect(metrics.body.contains("cardwatch_dead_letters_refused_total 31"), "\(metrics.body)")
            // A valid transaction still passes: the allowance is for dead letters only.
            let valid = try await Self.post(transaction("f3", amount: 5), port: port)
            #expect(valid.status == 200)
        }
    }

    @Test func deadLetterBucketsRefillAndAreKeptPerSource() {
        let budget = DeadLetterBudget(DeadLetterAllowance(perSecond: 10, burst: 100))
        let t0 = ContinuousClock.now
        #expect(budget.take(100, source: "a", now: t0) == .granted)
        #expect(budget.take(1, source: "a", now: t0) == .later(seconds: 1))
        #expect(budget.take(100, source: "b", now: t0) == .granted, "another source has its own")
        #expect(budget.take(50, source: "a", now: t0 + .seconds(2)) == .later(seconds: 3))
        #expect(budget.take(20, source: "a", now: t0 + .seconds(2)) == .granted)
        #expect(budget.take(101, source: "c", now: t0) == .never)
        #expect(budget.take(0, source: "a", now: t0) == .granted)
    }
}
