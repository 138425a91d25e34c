import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchServer
import CardwatchStorage
import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Testing
import WSCore

/// A data directory with a production model (probability 0.5 at $1,000), a processor
/// running on its own thread (for labels), and the API over them, deciding requests in
/// their append's transaction as `cardwatch run` does.
final class Fixture: @unchecked Sendable {
    // `@unchecked Sendable`: the fields are set once in `init`; the processor is used only by its thread.
    let dir: String
    let store: SQLiteEventLog
    let registry: ModelRegistry
    let api: CardwatchAPI
    var feedSubscribers: Int { api.dependencies.feed.subscriberCount }
    let state = PipelineState()
    private let stop = StopSignal()
    private let stopped = StopSignal()

    /// Publishes each commit's profiles to `online`, when given (`/predict?mode=online` reads it).
    let publisher: OnlinePublisher?

    init(
        token: String? = nil, maxBody: Int = 1 << 20, online: (any OnlineFeatureStore)? = nil,
        breaker: CircuitBreaker = CircuitBreaker(), configure: (inout ServerSettings) -> Void = { _ in }
    ) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-api-\(UUID().uuidString)").path
        store = try SQLiteEventLog(directory: dir, partitions: 2)
        registry = try ModelRegistry(directory: dir)
        let amount = Feature.amount.rawValue
        var weights = [Double](repeating: 0, count: Feature.count)
        weights[amount] = 0.01
        var artifact = ModelArtifact(
            kind: .logistic, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion,
            logistic: LogisticModel(
                means: [Double](repeating: 0, count: Feature.count), scales: [Double](repeating: 1, count: Feature.count),
                weights: weights, intercept: -10),
            thresholds: DecisionThresholds(review: 0.5, decline: 0.99))
        artifact.createdAt = "2026-11-25T00:00:00Z"
        let version = try registry.register(artifact)
        _ = try registry.promote(version: version, rule: PromotionRule(), force: true)
        let runtime = try EmbeddedRuntime(
            store: store, scorer: try Scorer(artifact: artifact, version: version), state: state)
        let metrics = PipelineMetrics()
        let feed = AlertFeed()
        let publisher = online.map { OnlinePublisher(store: $0, breaker: CircuitBreaker()) }
        self.publisher = publisher
        runtime.commits.onCommit {
            metrics.observe($0)
            feed.publish($0)
            publisher?.publish($0)
        }
        let stop = stop
        let stopped = stopped
        let doorbell = state.arrivals
        Thread {
            while !stop.isStopped {
                if (try? runtime.step()) ?? 0 == 0 { doorbell.wait(seconds: 0.01) }
            }
            try? runtime.stop()
            stopped.stop()
        }.start()
        var settings = ServerSettings()
        settings.token = token
        settings.maxBodyBytes = maxBody
        configure(&settings)
        var dependencies = ServerDependencies(
            serving: store.serving, monitoring: store.monitoring, models: registry,
            decide: { batch in try runtime.ingestAndDecide(batch) }, doorbell: state.arrivals,
            modelSwitch: runtime.models)
        dependencies.metrics = metrics
        dependencies.feed = feed
        dependencies.online = online.map { OnlineScoring(store: $0, breaker: breaker, models: runtime.models) }
        api = CardwatchAPI(dependencies: dependencies, settings: settings)
    }

    func close() {
        stop.stop()
        state.arrivals.ring()
        while !stopped.isStopped { usleep(1_000) }
        publisher?.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func test<Value: Sendable>(
        _ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        defer { close() }
        return try await api.application().test(setup, body)
    }
}

func transaction(_ id: String, amount: Double, card: String = "card_1", seconds: Int = 0) -> String {
    let time = Timestamp(microseconds: 1_795_000_000_000_000 + Int64(seconds) * 1_000_000).rfc3339
    return """
        {"transaction_id":"\(id)","card_id":"\(card)","amount":\(amount),"timestamp":"\(time)",\
        "merchant_id":"m_1","currency":"USD","merchant_category":"5411"}
        """
}

/// The body as a JSON object (an issue, and empty, when it is not one).
func json(_ response: TestResponse) -> [String: Any] {
    guard let o = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] else {
        Issue.record("not a JSON object: \(String(buffer: response.body))")
        return [:]
    }
    return o
}

func jsonArray(_ response: TestResponse) -> [[String: Any]] {
    guard let a = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [[String: Any]] else {
        Issue.record("not a JSON array: \(String(buffer: response.body))")
        return []
    }
    return a
}

func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// What a POST with a body must say (else 415).
let jsonContent: HTTPFields = [.contentType: "application/json"]

@Suite struct TransactionRouteTests {
    @Test func oneTransactionIsDecidedSynchronously() async throws {
        try await Fixture().test { client in
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(transaction("t1", amount: 1_500))
            ) {
                #expect($0.status == .ok)
                let d = json($0)
                #expect(d["transaction_id"] as? String == "t1")
                #expect(d["risk_tier"] as? String == "high" || d["risk_tier"] as? String == "critical")
                #expect(d["action"] as? String != "approve")
                #expect(d["model_version"] as? Int == 1)
                #expect((d["fraud_probability"] as? Double ?? 0) > 0.99)
                let reasons = try #require(d["reasons"] as? [[String: Any]])
                #expect(reasons.first?["name"] as? String == "amount" && reasons.first?["value"] as? Double == 1_500)
                #expect((d["latency_ms"] as? Double ?? -1) >= 0)
            }
            // The same id again: the first answer, not a second decision.
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(transaction("t1", amount: 1))
            ) {
                #expect($0.status == .ok)
                let d = json($0)
                #expect(d["duplicate"] as? Bool == true && (d["fraud_probability"] as? Double ?? 0) > 0.99)
            }
        }
    }

    @Test func theSameTransactionSentTwiceAtOnceIsDecidedOnce() async throws {
        try await Fixture().test { client in
            // Answers as (duplicate, probability): the first copy decided, the others given its answer.
            try await withThrowingTaskGroup(of: (Bool, Double).self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let r = try await client.execute(
                            uri: "/v1/transactions", method: .post, headers: jsonContent,
                            body: body(transaction("d1", amount: 2_500)))
                        #expect(r.status == .ok)
                        let o = json(r)
                        return (o["duplicate"] as? Bool ?? false, o["fraud_probability"] as? Double ?? -1)
                    }
                }
                var answers: [(Bool, Double)] = []
                for try await a in group { answers.append(a) }
                #expect(answers.count == 4)
                #expect(answers.filter(\.0).count == 3)
                #expect(Set(answers.map(\.1)).count == 1)
            }
        }
    }

    @Test func batchesAsArraysAndJSONLinesWithInvalidRecordsReported() async throws {
        try await Fixture().test { client in
            let array = "[\(transaction("a1", amount: 20)), \(transaction("a2", amount: 30, seconds: 5))]"
            try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(array)) {
                #expect($0.status == .ok)
                let decisions = try #require(json($0)["decisions"] as? [[String: Any]])
                #expect(decisions.map { $0["transaction_id"] as? String } == ["a1", "a2"])
                #expect(decisions.allSatisfy { $0["action"] as? String == "approve" })
            }
            let lines = transaction("b1", amount: 10, seconds: 9) + "\n" + #"{"transaction_id":"b2","amount":"x"}"# + "\n"
            try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(lines)) {
                #expect($0.status == .ok)
                let o = json($0)
                #expect((o["decisions"] as? [[String: Any]])?.count == 1)
                let invalid = try #require(o["invalid"] as? [[String: Any]])
                #expect(invalid.first?["index"] as? Int == 1)
            }
        }
    }

    @Test func badInputsAreProblemsNamingWhatIsWrong() async throws {
        try await Fixture(maxBody: 2_048).test { client in
            // Malformed JSON.
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body("{\"transaction_id\": ")
            ) {
                #expect($0.status == .unprocessableContent)
                #expect($0.headers[.contentType] == "application/problem+json")
            }
            try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonContent, body: body("[1, 2")) {
                #expect($0.status == .badRequest)
                #expect(json($0)["title"] as? String == "Bad Request")
            }
            // Wrong types and missing fields: each field's problem.
            let bad =
                #"{"transaction_id":"x1","amount":"lots","timestamp":"2026-01-01T00:00:00Z","merchant_id":"m","currency":"USD"}"#
            try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(bad)) {
                #expect($0.status == .unprocessableContent)
                let errors = try #require(json($0)["errors"] as? [[String: String]])
                #expect(errors.contains { $0["field"] == "amount" })
                #expect(errors.contains { $0["field"] == "card_id" })
            }
            // Too large.
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent,
                body: body(String(repeating: " ", count: 4_096) + "{}")
            ) {
                #expect($0.status == .contentTooLarge)
                #expect($0.headers[.contentType] == "application/problem+json")
            }
            try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonContent, body: body("")) {
                #expect($0.status == .badRequest)
            }
        }
    }

    @Test func predictTakesTheOriginalSystemsShape() async throws {
        try await Fixture().test { client in
            let request = #"{"transaction_id":"p1","user_id":"u7","amount":2500,"merchant_id":"m9","is_international":true}"#
            try await client.execute(uri: "/predict", method: .post, headers: jsonContent, body: body(request)) {
                #expect($0.status == .ok)
                let d = json($0)
                #expect(d["transaction_id"] as? String == "p1" && d["action"] as? String == "decline")
            }
            try await client.execute(
                uri: "/predict", method: .post, headers: jsonContent, body: body(#"{"transaction_id":"p2","amount":5}"#)
            ) {
                #expect($0.status == .unprocessableContent)
                let errors = try #require(json($0)["errors"] as? [[String: String]])
                #expect(errors.contains { $0["field"] == "card_id" } && errors.contains { $0["field"] == "merchant_id" })
            }
        }
    }
}

@Suite struct ReadAndWriteRouteTests {
    @Test func alertsByRecencyIdAndCardAndFeedback() async throws {
        try await Fixture().test { client in
            let batch = (0..<5).map {
                transaction("r\($0)", amount: $0 % 2 == 0 ? 1_800 : 15, card: "card_\($0 % 2)", seconds: $0)
            }
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(batch.joined(separator: "\n"))
            ) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/alerts/recent?limit=2", method: .get) {
                #expect($0.status == .ok)
                #expect(jsonArray($0).count == 2)
            }
            try await client.execute(uri: "/alerts/recent", method: .get) {
                let alerts = jsonArray($0)
                #expect(Set(alerts.compactMap { $0["transaction_id"] as? String }) == ["r0", "r2", "r4"])
            }
            try await client.execute(uri: "/alerts/recent?limit=zero", method: .get) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/alerts/r2", method: .get) {
                #expect($0.status == .ok)
                let a = json($0)
                #expect(a["card_id"] as? String == "card_0" && (a["reasons"] as? [Any])?.isEmpty == false)
            }
            try await client.execute(uri: "/alerts/r1", method: .get) {
                #expect($0.status == .notFound)
                #expect(json($0)["detail"] as? String == "no alert for transaction 'r1'")
            }
            try await client.execute(uri: "/alerts/card/card_0", method: .get) {
                #expect(jsonArray($0).count == 3)
            }
            try await client.execute(uri: "/alerts/card/card_1", method: .get) { #expect(jsonArray($0).isEmpty) }
            try await client.execute(
                uri: "/alerts/r2/feedback", method: .post, headers: jsonContent, body: body(#"{"label":"legitimate"}"#)
            ) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/alerts/r2", method: .get) { #expect(json($0)["feedback"] as? String == "legitimate") }
            try await client.execute(
                uri: "/alerts/r2/feedback", method: .post, headers: jsonContent, body: body(#"{"label":"maybe"}"#)
            ) {
                #expect($0.status == .unprocessableContent)
            }
            try await client.execute(
                uri: "/alerts/nope/feedback", method: .post, headers: jsonContent, body: body(#"{"label":"fraud"}"#)
            ) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func statsPipelineAndModels() async throws {
        let fixture = try Fixture()
        try await fixture.test { client in
            let batch = (0..<4).map { transaction("s\($0)", amount: $0 == 0 ? 2_000 : 10, seconds: $0) }
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(batch.joined(separator: "\n"))
            ) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/stats/summary", method: .get) {
                let s = json($0)
                #expect(s["transactions"] as? Int == 4 && s["alerts"] as? Int == 1)
                #expect((s["alerts_by_tier"] as? [String: Int])?["critical"] == 1)
            }
            try await client.execute(uri: "/stats/timeseries?bucket=5m&window=1h", method: .get) {
                let t = json($0)
                #expect(t["bucket_seconds"] as? Int == 300)
                let buckets = try #require(t["buckets"] as? [[String: Any]])
                #expect(buckets.reduce(0) { $0 + ($1["transactions"] as? Int ?? 0) } == 4)
            }
            try await client.execute(uri: "/stats/timeseries?bucket=1y", method: .get) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/pipeline/health", method: .get) { #expect($0.status == .notFound) }
            var check = HealthCheck(store: fixture.store.monitoring, state: fixture.state)
            _ = try check.run(now: Int64(Date().timeIntervalSince1970 * 1e6))
            try await client.execute(uri: "/pipeline/health", method: .get) {
                #expect($0.status == .ok)
                #expect(json($0)["healthy"] as? Bool == true)
            }
            try await client.execute(uri: "/pipeline/alerts", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/models", method: .get) {
                let models = jsonArray($0)
                #expect(models.first?["stage"] as? String == "production")
            }
            try await client.execute(uri: "/models/1/promote", method: .post) {
                #expect($0.status == .ok)
                #expect(json($0)["version"] as? Int == 1)
            }
            try await client.execute(uri: "/models/9/promote", method: .post) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/models/x/promote", method: .post) { #expect($0.status == .badRequest) }
        }
    }

    @Test func unknownRoutesWrongMethodsAndTokens() async throws {
        try await Fixture(token: "s3cret").test { client in
            try await client.execute(uri: "/nowhere", method: .get) {
                #expect($0.status == .notFound)
                #expect($0.headers[.contentType] == "application/problem+json")
            }
            try await client.execute(uri: "/alerts/recent", method: .delete) {
                #expect($0.status == .methodNotAllowed)
                #expect($0.headers[.allow] == "GET")
            }
            try await client.execute(uri: "/v1/transactions", method: .get) {
                #expect($0.status == .methodNotAllowed)
                #expect($0.headers[.allow] == "POST")
            }
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(transaction("k1", amount: 5))
            ) {
                #expect($0.status == .unauthorized)
                #expect($0.headers[.wwwAuthenticate] == "Bearer")
            }
            try await client.execute(
                uri: "/v1/transactions", method: .post,
                headers: [.authorization: "Bearer wrong", .contentType: "application/json"],
                body: body(transaction("k1", amount: 5))
            ) { #expect($0.status == .unauthorized) }
            try await client.execute(
                uri: "/v1/transactions", method: .post,
                headers: [.authorization: "Bearer s3cret", .contentType: "application/json"],
                body: body(transaction("k1", amount: 5))
            ) { #expect($0.status == .ok) }
            // Reads stay open.
            try await client.execute(uri: "/models", method: .get) { #expect($0.status == .ok) }
        }
    }
}

@Suite struct MetricsRouteTests {
    @Test func prometheusTextCountsDecisions() async throws {
        try await Fixture().test { client in
            let lines = [transaction("m1", amount: 3_000), transaction("m2", amount: 10, seconds: 30)].joined(separator: "\n")
            try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(lines + "\nnot json")
            ) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/metrics", method: .get) {
                #expect($0.status == .ok)
                #expect($0.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: $0.body)
                for line in [
                    #"cardwatch_transactions_total{outcome="approve"} 1"#, #"cardwatch_transactions_total{outcome="decline"} 1"#,
                    #"cardwatch_predictions_total{risk_tier="critical"} 1"#, "cardwatch_alerts_total 1",
                    "cardwatch_dead_letters_total 1", "cardwatch_model_version 1.0", "cardwatch_consumer_lag ",
                    #"cardwatch_feature_cache_hits_total{result="hit"} 1"#,
                    #"cardwatch_feature_cache_hits_total{result="miss"} 1"#,
                    "cardwatch_prediction_latency_seconds_count 2",
                ] {
                    #expect(text.contains(line), "missing \(line) in\n\(text)")
                }
            }
        }
    }
}

@Suite struct OpenAPITests {
    @Test func theDocumentListsExactlyTheServersRoutes() throws {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPI.document.utf8)) as? [String: Any])
        #expect(doc["openapi"] as? String == "3.1.0")
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, ops in ops.keys.map { "\($0.uppercased()) \(path)" } })
        let fixture = try Fixture()
        defer { fixture.close() }
        var api = fixture.api
        _ = api.router()
        let served = Set(api.routes.routes.map { "\($0.method) \($0.path)" })
        #expect(
            documented == served,
            "documented only: \(documented.subtracting(served)); served only: \(served.subtracting(documented))")
        // Every path parameter of a route is declared in the document.
        for (path, ops) in paths {
            let names = path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
            for (_, op) in ops {
                let declared = ((op as? [String: Any])?["parameters"] as? [[String: Any]] ?? []).compactMap {
                    ($0["name"] as? String) ?? ($0["$ref"] as? String)?.split(separator: "/").last.map(String.init)
                }
                for name in names { #expect(declared.contains(name), "\(path) does not declare {\(name)}") }
            }
        }
    }

    @Test func theDocumentAndItsPageAreServed() async throws {
        try await Fixture().test { client in
            try await client.execute(uri: "/openapi.json", method: .get) {
                #expect($0.status == .ok)
                #expect(json($0)["openapi"] as? String == "3.1.0")
            }
            try await client.execute(uri: "/docs", method: .get) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body).contains("fetch('/openapi.json')"))
            }
        }
    }
}

@Suite struct LiveFeedTests {
    @Test func alertsArriveOverTheWebSocketAndTheDashboardIsServed() async throws {
        let fixture = try Fixture()
        let received = Messages()
        try await fixture.test(.live) { client in
            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(String(buffer: page.body).contains("/alerts/stream"))
            let plain = try await client.execute(uri: "/alerts/stream", method: .get)
            #expect(plain.status == .upgradeRequired)
            try await client.ws("/alerts/stream") { inbound, _, _ in
                // Once subscribed, decide a fraud-looking and a normal transaction through the API.
                let post = Task {
                    while fixture.feedSubscribers == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    let lines = [transaction("w1", amount: 5_000), transaction("w2", amount: 3, seconds: 2)]
                    let response = try await client.execute(
                        uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(lines.joined(separator: "\n")))
                    return response.status
                }
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    if case .text(let text) = message {
                        received.add(text)
                        break
                    }
                }
                let status = try await post.value
                received.add("status \(status.code)")
            }
        }
        let all = received.all
        #expect(all.last == "status 200")
        let first = try #require(all.first)
        let alert = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
        #expect(alert["transaction_id"] as? String == "w1" && alert["card_id"] as? String == "card_1")
        #expect((alert["reasons"] as? [Any])?.isEmpty == false)
    }
}

final class Messages: @unchecked Sendable {
    // `@unchecked Sendable`: `list` is touched only under `lock`.
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.withLock { list.append(s) } }
    var all: [String] { lock.withLock { list } }
}
