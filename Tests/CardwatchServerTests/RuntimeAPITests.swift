import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchServer
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import CardwatchStorage

/// A pipeline as `cardwatch run` wires it, served over a real socket: the embedded runtime
/// stepped on its own thread (it rebuilds what a failed batch moved by itself), the stages'
/// states, the operator's thresholds, a health interval.
final class PipelineFixture: @unchecked Sendable {
    // `@unchecked Sendable`: the fields are set once in `init` and are Sendable but for `store`, whose type is thread-safe.
    let dir: String
    let store: SQLiteEventLog
    let registry: ModelRegistry
    let state = PipelineState()
    let runtime: EmbeddedRuntime
    let api: CardwatchAPI
    private let stop = StopSignal()
    private let stopped = StopSignal()

    init(
        scoring: ScoringPolicy = ScoringPolicy(), healthInterval: Duration = .seconds(300), stages: [String] = [],
        cooldown: Duration = .milliseconds(300)
    ) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-runtime-\(UUID().uuidString)").path
        store = try SQLiteEventLog(directory: dir, partitions: 1)
        registry = try ModelRegistry(directory: dir)
        // Probability 0.5 at $1,000.
        var weights = [Double](repeating: 0, count: Feature.count)
        weights[Feature.amount.rawValue] = 0.01
        var artifact = ModelArtifact(
            kind: .logistic, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion,
            logistic: LogisticModel(
                means: [Double](repeating: 0, count: Feature.count), scales: [Double](repeating: 1, count: Feature.count),
                weights: weights, intercept: -10),
            thresholds: DecisionThresholds(review: 0.5, decline: 0.99))
        artifact.createdAt = "2026-11-25T00:00:00Z"
        let version = try registry.register(artifact)
        _ = try registry.promote(version: version, rule: PromotionRule(), force: true)
        let store = store
        let state = state
        let scorer = try scoring.scorer(artifact, version: version)
        let runtime = try EmbeddedRuntime(store: store, scorer: scorer, state: state, cooldown: cooldown)
        self.runtime = runtime
        for stage in stages { state.register(stage, policy: SupervisionPolicy()) }
        let stop = stop
        let stopped = stopped
        Thread {
            while !stop.isStopped {
                if (try? runtime.step()) ?? 0 == 0 { state.arrivals.wait(seconds: 0.01) }
            }
            try? runtime.stop()
            stopped.stop()
        }.start()
        var dependencies = ServerDependencies(
            serving: store.serving, monitoring: store.monitoring, models: registry,
            decide: { batch in try runtime.ingestAndDecide(batch) }, doorbell: state.arrivals,
            modelSwitch: runtime.models)
        dependencies.scoring = scoring
        dependencies.state = state
        dependencies.healthInterval = healthInterval
        var topology = Topology.embedded(dataDirectory: dir, sources: [.http(host: "127.0.0.1", port: 0)])
        topology.opened = .init(partitions: store.partitions, partitioner: store.partitioner.rawValue)
        dependencies.topology = topology
        api = CardwatchAPI(dependencies: dependencies, settings: ServerSettings())
    }

    func close() {
        stop.stop()
        state.arrivals.ring()
        while !stopped.isStopped { usleep(1_000) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The server on an ephemeral port, a client over a real socket.
    func live<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        defer { close() }
        return try await api.application().test(.live, body)
    }
}

let jsonType: HTTPFields = [.contentType: "application/json"]

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

@Suite struct RuntimeAPITests {
    /// Item 5: with the store full, writes answer 503 with Retry-After (problem+json), on the
    /// router's path and the event loop's; once there is room, the same requests succeed.
    @Test(.timeLimit(.minutes(2))) func aFullStoreAnswers503WithRetryAfter() async throws {
        // A cooldown long enough that a loaded machine cannot let it pass before the event loop's
        // request (a small write may fit in the full store's free space: that request must be refused
        // by the cooldown, not by chance).
        let fixture = try PipelineFixture(cooldown: .seconds(8))
        try await fixture.live { client in
            let port = try #require(client.port)
            let first = try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonType, body: body(transaction("d0", amount: 10)))
            #expect(first.status == .ok)
            try limitPages(fixture.store, to: 1)  // full
            let many = "[" + (1...200).map { transaction("d\($0)", amount: 10, seconds: $0) }.joined(separator: ",") + "]"
            let full = try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonType, body: body(many))
            #expect(full.status == .serviceUnavailable, "\(String(buffer: full.body))")
            #expect(full.headers[.retryAfter].flatMap { Int($0) } ?? 0 >= 1)
            #expect(full.headers[.contentType] == "application/problem+json")
            #expect(String(buffer: full.body).contains("full"))
            // The event loop's path (one transaction), during the cooldown: 503 too.
            let single = Call(method: .post, uri: "/v1/transactions", body: transaction("d500", amount: 10, seconds: 500))
            let (answer, headers) = try #require(try await RawConnection.open(port: port).exchange([[single]]).first)
            #expect(answer.status == 503 && headers["retry-after"] != nil, "\(answer)")

            try limitPages(fixture.store, to: 1_073_741_823)
            let resumed = try await eventually(40) {
                try await client.execute(uri: "/v1/transactions", method: .post, headers: jsonType, body: body(many)).status
                    == .ok
            }
            #expect(resumed)
            let decided: [Int] = try fixtureQuery(fixture, "SELECT COUNT(DISTINCT transaction_id) FROM silver_transactions")
            let rows: [Int] = try fixtureQuery(fixture, "SELECT COUNT(*) FROM silver_transactions")
            #expect(decided == [201] && rows == [201])
        }
    }

    /// Item 6: `/pipeline/health` answers from the first second with every stage's status;
    /// a stage failing shows as restarting with its error (degraded); a report older than two
    /// intervals is not believed (unhealthy, healthy false).
    @Test(.timeLimit(.minutes(1))) func healthTellsTheStagesFromTheStartAndDoesNotTrustAStaleReport() async throws {
        let fixture = try PipelineFixture(healthInterval: .seconds(300), stages: ["processor", "generator", "health"])
        fixture.state.stageStarted("processor")
        fixture.state.stageStarted("health")
        try await fixture.live { client in
            var h = json(try await client.execute(uri: "/pipeline/health", method: .get))
            #expect(h["status"] as? String == "healthy" && h["healthy"] as? Bool == true)
            let stages = try #require(h["stages"] as? [String: [String: Any]])
            #expect(stages["processor"]?["status"] as? String == "running")
            #expect(stages["generator"]?["status"] as? String == "starting")
            #expect(h["last_check"] is NSNull)
            let topology = try #require(h["topology"] as? [String: Any])
            #expect(topology["log"] as? String == "sqlite:\(fixture.dir)/log.sqlite")
            #expect(topology["warehouse"] as? String == topology["log"] as? String)
            #expect(topology["partitions"] as? Int == 1 && topology["partitioner"] as? String == "murmur2")
            #expect(topology["consumer_group"] as? String == "processor")

            fixture.state.stageFailed("generator", EventLogError(.unavailable, "appending failed: database or disk is full"))
            h = json(try await client.execute(uri: "/pipeline/health", method: .get))
            #expect(h["status"] as? String == "degraded")
            let generator = try #require((h["stages"] as? [String: [String: Any]])?["generator"])
            #expect(generator["status"] as? String == "restarting" && generator["restarts"] as? Int == 1)
            #expect((generator["last_error"] as? String)?.contains("disk is full") == true)
            let alerts = try #require(h["alerts"] as? [[String: Any]])
            #expect(alerts.contains { ($0["message"] as? String)?.contains("generator") == true })

            // The last report is 11 minutes old (two intervals are 10): the health stage has gone quiet.
            let now = Timestamp.now.microseconds
            var check = HealthCheck(store: fixture.store.monitoring, state: fixture.state)
            _ = try check.run(now: now - 660_000_000)
            h = json(try await client.execute(uri: "/pipeline/health", method: .get))
            #expect(h["status"] as? String == "unhealthy" && h["healthy"] as? Bool == false)
            #expect((h["last_check"] as? [String: Any])?["stale"] as? Bool == true)
            #expect((h["alerts"] as? [[String: Any]])?.contains { $0["kind"] as? String == "health_stale" } == true)
            let checkedAt = try #require(h["checked_at"] as? String)
            #expect(abs((Timestamp(rfc3339: checkedAt)?.microseconds ?? 0) - Timestamp.now.microseconds) < 60_000_000)
            // A fresh report: believed again.
            _ = try check.run(now: now)
            h = json(try await client.execute(uri: "/pipeline/health", method: .get))
            #expect((h["last_check"] as? [String: Any])?["stale"] as? Bool == false)
            #expect(h["status"] as? String != "unhealthy")
        }
    }

    /// Item 19 (and 10): feedback on any decided transaction, with the analyst and a note,
    /// validated; it becomes a label, so the summary's confirmed figures move, apart from the
    /// alert rate. Decisions and alerts carry their event time and their decision time.
    @Test(.timeLimit(.minutes(1))) func feedbackOnAnyDecidedTransactionAndTheSummarysConfirmedFigures() async throws {
        let fixture = try PipelineFixture()
        try await fixture.live { client in
            func post(_ uri: String, _ text: String) async throws -> TestResponse {
                try await client.execute(uri: uri, method: .post, headers: jsonType, body: body(text))
            }
            let approved = json(try await post("/v1/transactions", transaction("miss", amount: 40)))
            #expect(approved["action"] as? String == "approve")
            #expect(approved["event_time"] as? String == "2026-11-18T11:06:40Z")
            let decidedAt = try #require((approved["decided_at"] as? String).flatMap { Timestamp(rfc3339: $0) })
            #expect(abs(decidedAt.microseconds - Timestamp.now.microseconds) < 10_000_000)
            #expect(json(try await post("/v1/transactions", transaction("big", amount: 1_800, seconds: 60)))["risk_tier"] != nil)
            let alert = json(try await client.execute(uri: "/alerts/big", method: .get))
            #expect(alert["event_time"] as? String == "2026-11-18T11:07:40Z" && alert["decided_at"] is String)

            // A missed fraud reported on a transaction that raised no alert.
            let given = try await post(
                "/v1/transactions/miss/feedback", #"{"label": "fraud", "analyst": "Ana Lima", "note": "customer called\nfirst"}"#)
            #expect(given.status == .ok)
            let receipt = json(given)
            #expect(receipt["alert"] as? Bool == false && receipt["analyst"] as? String == "Ana Lima")
            // The alert confirmed legitimate, through the alert route (label alone, as before).
            #expect(try await post("/alerts/big/feedback", #"{"label": "legitimate"}"#).status == .ok)
            #expect(try await post("/alerts/miss/feedback", #"{"label": "fraud"}"#).status == .notFound)

            let settled = try await eventually {
                let s = json(try await client.execute(uri: "/stats/summary", method: .get))
                return s["confirmed_frauds"] as? Int == 1 && s["alerts_with_outcome"] as? Int == 1
            }
            #expect(settled)
            let s = json(try await client.execute(uri: "/stats/summary", method: .get))
            #expect(s["fraud_rate"] == nil, "the alert rate is not called a fraud rate")
            #expect(s["alert_rate"] as? Double == 0.5 && s["confirmed_fraud_rate"] as? Double == 0.5)
            #expect(s["fraud_amount"] as? Double == 40 && s["alert_precision"] as? Double == 0)
            let t = json(try await client.execute(uri: "/stats/timeseries?bucket=1h&window=1h", method: .get))
            let buckets = try #require(t["buckets"] as? [[String: Any]])
            #expect(buckets.allSatisfy { $0["alert_rate"] != nil && $0["fraud_rate"] == nil })
            let notes: [String] = try fixtureQuery(
                fixture, "SELECT COALESCE(analyst, '-') || '|' || COALESCE(note, '-') FROM feedback ORDER BY id")
            #expect(notes == ["Ana Lima|customer called\nfirst", "-|-"])

            // Bad bodies: every problem named, nothing stored.
            for (text, status, fields) in [
                (#"{"label": "fraud"}"#, 422, ["analyst"]),
                (#"{"label": "maybe", "analyst": " "}"#, 422, ["label", "analyst"]),
                (#"{"label": "fraud", "analyst": "a\u0007b", "note": 5}"#, 422, ["analyst", "note"]),
                (#"{"label": "fraud", "analyst": "\#(String(repeating: "x", count: 65))"}"#, 422, ["analyst"]),
                (#"{"label": "fraud", "analyst": "a", "note": "\#(String(repeating: "n", count: 2_001))"}"#, 422, ["note"]),
                (#"{"label": "fraud", "label": "legitimate", "analyst": "a"}"#, 422, ["label"]),
                ("not json", 400, []),
            ] as [(String, Int, [String])] {
                let r = try await post("/v1/transactions/miss/feedback", text)
                #expect(Int(r.status.code) == status, "\(text)")
                #expect(r.headers[.contentType] == "application/problem+json")
                let named = ((json(r)["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String }
                #expect(named == fields, "\(text): \(named)")
            }
            #expect(
                try await post("/v1/transactions/nobody/feedback", #"{"label": "fraud", "analyst": "a"}"#).status == .notFound)
            let huge = #"{"label": "fraud", "analyst": "a", "pad": "\#(String(repeating: "p", count: 20_000))"}"#
            #expect(try await post("/v1/transactions/miss/feedback", huge).status == .contentTooLarge)
            let stored: [Int] = try fixtureQuery(fixture, "SELECT COUNT(*) FROM feedback")
            #expect(stored == [2])
        }
    }

    /// Item 17: a promotion through the API hot-swaps a scorer under the operator's thresholds.
    @Test(.timeLimit(.minutes(1))) func aPromotionThroughTheAPIKeepsTheOperatorsThresholds() async throws {
        let policy = try ScoringPolicy(highThreshold: 0.2, criticalThreshold: 0.7)
        let fixture = try PipelineFixture(scoring: policy)
        var next = try fixture.registry.artifact(version: 1)
        next.thresholds = DecisionThresholds(review: 0.9, decline: 0.95)
        next.metrics = EvaluationMetrics(
            rows: 1000, positives: 20, rocAUC: 0.95, averagePrecision: 0.9, threshold: 0.5, precision: 0.8, recall: 0.7,
            f1: 0.75, truePositives: 14, falsePositives: 4, trueNegatives: 976, falseNegatives: 6, recallAt1PctFPR: 0.75,
            cardPrecisionAt100: nil, perPatternRecall: [:])
        let v2 = try fixture.registry.register(next)
        try await fixture.live { client in
            let r = try await client.execute(uri: "/models/\(v2)/promote", method: .post, headers: jsonType)
            #expect(r.status == .ok && json(r)["promoted"] as? Bool == true, "\(String(buffer: r.body))")
            // $900: probability ~0.27, under the model's own 0.9, over the operator's 0.2.
            let d = json(
                try await client.execute(
                    uri: "/v1/transactions", method: .post, headers: jsonType, body: body(transaction("p1", amount: 900))))
            #expect(d["model_version"] as? Int == v2)
            #expect(d["risk_tier"] as? String == "high" && d["action"] as? String == "review")
            let applied = fixture.runtime.models.current.scorer.policy
            #expect(applied.high == 0.2 && applied.critical == 0.7)
        }
    }
}

/// SQLite's page limit on the store's writer: at its current size, the database is full (SQLITE_FULL).
func limitPages(_ store: SQLiteEventLog, to pages: Int) throws {
    try store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = \(pages)") }
}

func fixtureQuery<T: DatabaseValueConvertible>(_ fixture: PipelineFixture, _ sql: String) throws -> [T] {
    try fixture.store.pool.read { db in try T.fetchAll(db, sql: sql) }
}
