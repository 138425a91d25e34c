public import CardwatchCore
public import CardwatchPipeline
import Foundation
public import Hummingbird
import HummingbirdWebSocket
public import NIOCore

/// What the HTTP API works with: the warehouse, the health records, the model registry,
/// and the running processor.
public struct ServerDependencies: Sendable {
    public var serving: any ServingStore
    public var monitoring: any MonitoringStore
    public var models: any ModelDirectory
    /// Appends a batch to the log and returns once its decisions are committed, on the
    /// calling thread (`EmbeddedRuntime.ingestAndDecide`): the synchronous answers.
    public var decide: @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?)
    /// Rung after an append of labels (feedback), so the runtime picks it up at once.
    public var doorbell: Doorbell?
    /// For hot swaps after a promotion through the API.
    public var modelSwitch: (any ModelTarget)?
    /// How long a duplicate waits for its first copy's decision (sent a moment ago by
    /// another source) before the request gets a 503.
    public var decisionTimeout: Duration = .seconds(5)
    /// Fed by the caller with every decided batch (`observe`); rendered at /metrics.
    public var metrics = PipelineMetrics()
    /// Fed by the caller with every committed batch (`publish`); streamed at /alerts/stream.
    public var feed = AlertFeed()
    /// Records per request, listed errors, dead letters per source (set by `CardwatchAPI` from its settings).
    public var ingestLimits = IngestLimits()
    /// How posted transactions are validated beyond the schema: the PAN key (a `card_number`
    /// is refused without one) and the wall-clock bounds of event times (`cardwatch run`
    /// sets both; by default none).
    public var ingestPolicy = IngestPolicy.offline
    /// The operator's thresholds, applied to a model promoted through the API.
    public var scoring = ScoringPolicy()
    /// The running pipeline's stages and counters, for `/pipeline/health` (nil: judged by the
    /// last stored report alone).
    public var state: PipelineState?
    /// How often the health check runs: a report older than two intervals is stale.
    public var healthInterval: Duration = .seconds(300)
    /// The running pipeline's shape, reported by `/pipeline/health` (nil: null).
    public var topology: Topology?
    /// Why the log cannot be reached now (a Kafka cluster away), nil while it can: reported by
    /// `/pipeline/health` (unhealthy, `log_unavailable`) while the pipeline waits for it.
    public var logUnavailable: (@Sendable () -> String?)?
    /// The records not yet decided in each partition (a Kafka group's lag), for `/metrics`'
    /// `cardwatch_consumer_lag{partition}`; nil: the total lag of `monitoring`.
    public var partitionLag: (@Sendable () -> [Int: Int64])?
    /// `POST /predict?mode=online`'s store and model (nil: no online store; mode=online is a 400).
    public var online: OnlineScoring?

    public init(
        serving: any ServingStore, monitoring: any MonitoringStore, models: any ModelDirectory,
        decide: @escaping @Sendable (IngestBatch) throws -> (IngestOutcome, ProcessedBatch?), doorbell: Doorbell? = nil,
        modelSwitch: (any ModelTarget)? = nil
    ) {
        self.serving = serving
        self.monitoring = monitoring
        self.models = models
        self.decide = decide
        self.doorbell = doorbell
        self.modelSwitch = modelSwitch
    }
}

public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// When set, POST requests need `Authorization: Bearer <token>`, and so does the live feed.
    public var token: String?
    /// When set, reads (all but the dashboard page, /openapi.json, /docs) need it or `token`.
    public var readToken: String?
    /// Origins (`scheme://host[:port]`) besides the server's own allowed to open the live feed
    /// and to write from a browser; `*` for any.
    public var allowedOrigins: [String] = []
    /// Host names answered besides the defaults (`AccessPolicy`); `*` for any.
    public var allowedHosts: [String] = []
    public var maxBodyBytes = 1 << 20
    /// Records in one request at most.
    public var maxRecords = 10_000
    /// Dead letters a client address may cause.
    public var deadLetters = DeadLetterAllowance()
    /// Timeouts, the connection limit, sizes of request heads.
    public var limits = HTTPLimits()
    public init() {}
}

/// The routes of the Cardwatch API. `routes` lists them as registered (the OpenAPI
/// document is checked against it).
public struct CardwatchAPI: Sendable {
    public let dependencies: ServerDependencies
    public let settings: ServerSettings
    public private(set) var routes = RouteTable()
    /// Shared by the routes and `DecisionChannelHandler`: one group commit for both.
    let queue: DecisionQueue

    public init(dependencies: ServerDependencies, settings: ServerSettings) {
        var dependencies = dependencies
        dependencies.ingestLimits.maxRecords = settings.maxRecords
        dependencies.ingestLimits.deadLetters = DeadLetterBudget(settings.deadLetters)
        self.dependencies = dependencies
        self.settings = settings
        queue = DecisionQueue(decide: dependencies.decide, metrics: dependencies.metrics)
    }

    public func application() -> some ApplicationProtocol {
        var api = self
        let router = api.router()
        let serverName = "cardwatch"
        let fastPath = DecisionChannelHandler.Settings(
            decide: Decide(dependencies: dependencies, queue: queue), maxBodyBytes: settings.maxBodyBytes,
            policy: AccessPolicy(settings: settings), serverName: serverName)
        return Application(
            router: router, server: guardedServer(fastPath: fastPath),
            configuration: .init(
                address: .hostname(settings.host, port: settings.port), serverName: serverName, backlog: 4_096))
    }

    /// Builds the router (and fills `routes`).
    public mutating func router() -> Router<APIRequestContext> {
        typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response
        var endpoints: [(method: String, path: String, handler: Handler)] = []
        let d = dependencies
        let s = settings
        let queue = queue
        func get(_ path: String, _ handler: @escaping Handler) { endpoints.append(("GET", path, handler)) }
        func post(_ path: String, _ handler: @escaping Handler) { endpoints.append(("POST", path, handler)) }

        post("/v1/transactions") { request, context in
            let body = try await Body.collect(request, limit: s.maxBodyBytes)
            return try await Decide(dependencies: d, queue: queue).transactions(body, source: context.source)
        }
        post("/predict") { request, context in
            let body = try await Body.collect(request, limit: s.maxBodyBytes)
            let mode = request.uri.queryParameters["mode"].map(String.init) ?? "stream"
            guard mode == "stream" || mode == "online" else {
                throw Problem(
                    .badRequest, "Bad Request", detail: "mode must be stream (the default) or online, not \(mode.prefix(40))")
            }
            return try await Decide(dependencies: d, queue: queue).predict(body, source: context.source, online: mode == "online")
        }
        post("/transaction") { request, context in
            let body = try await Body.collect(request, limit: s.maxBodyBytes)
            return try await Decide(dependencies: d, queue: queue).gateway(body, source: context.source)
        }
        get("/alerts/recent") { request, _ in
            let limit = try Query.int(request, "limit", default: 20, range: 1...1000)
            return try JSONBody.response(try d.serving.recentAlerts(limit: limit).map(JSONBody.alert))
        }
        get("/alerts/stream") { _, _ in
            throw Problem(
                .upgradeRequired, "Upgrade Required", detail: "/alerts/stream is a WebSocket: connect with Upgrade: websocket",
                headers: [.upgrade: "websocket"])
        }
        get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: Dashboard.page)))
        }
        get("/alerts/card/{card_id}") { request, context in
            let card = try context.parameters.require("card_id")
            let limit = try Query.int(request, "limit", default: 100, range: 1...1000)
            return try JSONBody.response(try d.serving.alerts(cardID: card, limit: limit).map(JSONBody.alert))
        }
        get("/alerts/{transaction_id}") { _, context in
            let id = try context.parameters.require("transaction_id")
            guard let alert = try d.serving.alert(transactionID: id) else {
                throw Problem(.notFound, "Not Found", detail: "no alert for transaction '\(id)'")
            }
            return try JSONBody.response(JSONBody.alert(alert))
        }
        post("/alerts/{transaction_id}/feedback") { request, context in
            let id = try context.parameters.require("transaction_id")
            let body = try await Body.collect(request, limit: min(s.maxBodyBytes, Feedback.maxBodyBytes))
            let verdict = try Feedback.parse(body, analystRequired: false)
            let feedback = AnalystFeedback(
                transactionID: id, fraud: verdict.fraud, analyst: verdict.analyst, note: verdict.note,
                at: Timestamp.now.microseconds)
            guard try d.serving.recordFeedback(feedback, alertsOnly: true) != nil else {
                throw Problem(.notFound, "Not Found", detail: "no alert for transaction '\(id)'")
            }
            d.doorbell?.ring()
            return try JSONBody.response(
                ["transaction_id": id, "feedback": verdict.fraud ? "fraud" : "legitimate", "label": "appended to the labels log"])
        }
        post("/v1/transactions/{transaction_id}/feedback") { request, context in
            let id = try context.parameters.require("transaction_id")
            let body = try await Body.collect(request, limit: min(s.maxBodyBytes, Feedback.maxBodyBytes))
            let verdict = try Feedback.parse(body, analystRequired: true)
            let feedback = AnalystFeedback(
                transactionID: id, fraud: verdict.fraud, analyst: verdict.analyst, note: verdict.note,
                at: Timestamp.now.microseconds)
            guard let alert = try d.serving.recordFeedback(feedback, alertsOnly: false) else {
                throw Problem(.notFound, "Not Found", detail: "no decided transaction '\(id)'")
            }
            d.doorbell?.ring()
            return try JSONBody.response(JSONBody.feedback(feedback, alert: alert))
        }
        get("/stats/summary") { _, _ in
            let now = Timestamp.now.microseconds
            return try JSONBody.response(JSONBody.summary(try d.serving.stats(from: now - 86_400_000_000)))
        }
        get("/stats/timeseries") { request, _ in
            let bucket = try Query.duration(request, "bucket", default: 60, range: 60...86_400)
            let window = try Query.duration(request, "window", default: 3_600, range: 60...(30 * 86_400))
            let now = Timestamp.now.microseconds
            let buckets = try d.serving.timeseries(from: now - Int64(window) * 1_000_000, bucketMicros: Int64(bucket) * 1_000_000)
            return try JSONBody.response([
                "bucket_seconds": bucket, "window_seconds": window, "buckets": buckets.map(JSONBody.bucket),
            ])
        }
        get("/pipeline/health") { _, _ in
            // Taken now: the stages as they are, the last report only while it is fresh. With the
            // warehouse away for now, the running pipeline's own state still answers, and says so.
            var unavailable: String?
            let report: HealthReport?
            do { report = try d.monitoring.latestHealth() } catch  where d.state != nil && StorageFailure.isTransient(error) {
                report = nil
                unavailable = "\(error)"
            }
            guard d.state != nil || report != nil else {
                throw Problem(.notFound, "Not Found", detail: "no pipeline runs here and no health check has run yet")
            }
            let health = PipelineHealth.at(
                Timestamp.now.microseconds, state: d.state, lastReport: report, interval: d.healthInterval)
            var body = JSONBody.health(
                health, lag: try? d.monitoring.processorLag(),
                deadLettersTotal: (try? d.monitoring.deadLetterCounts(since: 0))?.total)
            body["topology"] = d.topology?.json ?? NSNull()
            if let unavailable {
                body["status"] = "unhealthy"
                body["healthy"] = false
                body["warehouse_unavailable"] = unavailable
            }
            if let away = d.logUnavailable?() {
                body["status"] = "unhealthy"
                body["healthy"] = false
                body["log_unavailable"] = away
            }
            return try JSONBody.response(body)
        }
        get("/pipeline/alerts") { request, _ in
            let limit = try Query.int(request, "limit", default: 50, range: 1...1000)
            return try JSONBody.response(try d.monitoring.systemAlerts(limit: limit).map(JSONBody.systemAlert))
        }
        get("/metrics") { _, _ in
            if let partitionLag = d.partitionLag { d.metrics.recordLag(byPartition: partitionLag()) }
            let text = d.metrics.render(
                lag: d.partitionLag == nil ? try? d.monitoring.processorLag() : nil,
                deadLettersTotal: (try? d.monitoring.deadLetterCounts(since: 0))?.total)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPI.document)))
        }
        get("/docs") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPI.page)))
        }
        get("/models") { _, _ in
            try JSONBody.response(try d.models.models().map(JSONBody.model))
        }
        post("/models/{version}/promote") { request, context in
            guard let version = Int(try context.parameters.require("version")) else {
                throw Problem(.badRequest, "Bad Request", detail: "the model version must be a number")
            }
            guard try d.models.models().contains(where: { $0.version == version }) else {
                throw Problem(.notFound, "Not Found", detail: "no model version \(version)")
            }
            // The registry's rule on the stored test metrics (no data to re-score on here), or
            // `force=true`: the operator's decision, as `cardwatch models promote --force`.
            let force = try Query.bool(request, "force")
            let decision =
                force
                ? try d.models.promoteForced(version: version) : try d.models.promote(version: version, productionAP: nil)
            if decision.promoted, let modelSwitch = d.modelSwitch {
                modelSwitch.swap(to: try d.scoring.scorer(try d.models.artifact(of: version), version: version))
            }
            return try JSONBody.response(["version": version, "promoted": decision.promoted, "reason": decision.reason])
        }
        // Middleware first: Hummingbird applies to a route only the middleware added before it.
        var table = RouteTable()
        for e in endpoints { table.add(e.method, e.path) }
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: ProblemMiddleware(routes: table))
        router.add(middleware: AccessMiddleware(policy: AccessPolicy(settings: s)))
        router.add(middleware: MemoryReturnMiddleware())
        for e in endpoints {
            let path = RouterPath(hummingbird(e.path))
            if e.method == "GET" { router.get(path, use: e.handler) } else { router.post(path, use: e.handler) }
        }
        routes = table
        return router
    }

    /// `{name}` (OpenAPI) as `:name` (Hummingbird).
    func hummingbird(_ path: String) -> String {
        path.split(separator: "/").map { $0.hasPrefix("{") ? ":" + $0.dropFirst().dropLast() : String($0) }
            .joined(separator: "/").withLeadingSlash
    }
}

/// The router's request context: Hummingbird's basic one, plus the client's address (charged
/// for the dead letters its requests cause).
public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The source a request's dead letters are charged to: the client's IP address.
    var source: String { remoteAddress?.ipAddress ?? "local" }
}

extension String {
    var withLeadingSlash: String { hasPrefix("/") ? self : "/" + self }
}

enum Body {
    /// The request body, at most `limit` bytes (413 beyond: a length header over it is refused
    /// before reading, a body without one as soon as it passes the limit).
    static func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw Problem(.contentTooLarge, "Content Too Large", detail: "the body has \(length) bytes; the limit is \(limit)")
        }
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            bytes.append(contentsOf: chunk.readableBytesView)
            if bytes.count > limit {
                throw Problem(.contentTooLarge, "Content Too Large", detail: "the body is over the limit of \(limit) bytes")
            }
        }
        return bytes
    }
}

/// Query parameters, checked: a bad one is a 400 naming it.
enum Query {
    /// `true` or `false` (absent: false).
    static func bool(_ request: Request, _ name: String) throws -> Bool {
        guard let text = request.uri.queryParameters[name[...]] else { return false }
        guard text == "true" || text == "false" else {
            throw Problem(
                .badRequest, "Bad Request", detail: "query parameter '\(name)' must be true or false",
                errors: [FieldIssue(field: name, problem: "'\(text.prefix(64))' is not true or false")])
        }
        return text == "true"
    }

    static func int(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[name[...]] else { return value }
        guard let n = Int(String(text)), range.contains(n) else {
            throw Problem(
                .badRequest, "Bad Request",
                detail: "query parameter '\(name)' must be an integer in \(range.lowerBound)...\(range.upperBound)",
                errors: [
                    FieldIssue(
                        field: name,
                        problem: "'\(text.prefix(64))' is not an integer in \(range.lowerBound)...\(range.upperBound)")
                ])
        }
        return n
    }

    /// Seconds, written `90`, `90s`, `15m`, `1h` or `7d`.
    static func duration(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters[name[...]].map(String.init) else { return value }
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        var number = text
        var unit = 1
        if let last = text.last, let u = units[last] {
            unit = u
            number = String(text.dropLast())
        }
        // Bounded: at most 20 characters, and n × unit checked (a huge n is a 400, never an overflow).
        guard text.utf8.count <= 20, let n = Int(number), case (let seconds, false) = n.multipliedReportingOverflow(by: unit),
            range.contains(seconds)
        else {
            throw Problem(
                .badRequest, "Bad Request",
                detail:
                    "query parameter '\(name)' must be a duration like 60s, 15m, 1h or 7d between \(range.lowerBound) and \(range.upperBound) seconds",
                errors: [FieldIssue(field: name, problem: "'\(text.prefix(64))' is not such a duration")])
        }
        return seconds
    }
}

/// An analyst's verdict in a request body: `{"label": "fraud" | "legitimate", "analyst": "…",
/// "note": "…"}`; unknown members are ignored, a member given twice is refused.
enum Feedback {
    static let maxBodyBytes = 16 << 10
    static let maxAnalystLength = 64
    static let maxNoteLength = 2_000

    struct Verdict {
        var fraud: Bool
        var analyst: String?
        var note: String?
    }

    /// Every problem of the body at once (422), or the verdict. `analystRequired`: the name must
    /// be given (the transaction route; the alert route keeps accepting the label alone).
    static func parse(_ body: [UInt8], analystRequired: Bool) throws -> Verdict {
        let shape = "{\"label\": \"fraud\" | \"legitimate\", \"analyst\": \"name\", \"note\": \"text\"}"
        let repeated = repeatedMembers(body, among: ["label", "analyst", "note"]).map {
            FieldIssue(field: $0, problem: "given more than once")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            if !repeated.isEmpty {
                throw Problem(
                    .unprocessableContent, "Unprocessable Content", detail: "the feedback is not valid: \(shape)",
                    errors: repeated)
            }
            throw Problem(.badRequest, "Bad Request", detail: "the body must be a JSON object: \(shape)")
        }
        var issues = repeated
        let label = object["label"] as? String
        if label != "fraud" && label != "legitimate" {
            issues.append(FieldIssue(field: "label", problem: "must be \"fraud\" or \"legitimate\""))
        }
        func text(_ key: String, max: Int, required: Bool, lines: Bool) -> String? {
            guard let value = object[key], !(value is NSNull) else {
                if required { issues.append(FieldIssue(field: key, problem: "missing")) }
                return nil
            }
            guard let string = value as? String else {
                issues.append(FieldIssue(field: key, problem: "must be a string"))
                return nil
            }
            if string.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                issues.append(FieldIssue(field: key, problem: "must not be blank"))
            } else if string.count > max {
                issues.append(FieldIssue(field: key, problem: "must be at most \(max) characters, not \(string.count)"))
            } else if string.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control && !(lines && ($0 == "\n" || $0 == "\t"))
            }) {
                issues.append(FieldIssue(field: key, problem: "must not contain control characters"))
            }
            return string
        }
        let analyst = text("analyst", max: maxAnalystLength, required: analystRequired, lines: false)
        let note = text("note", max: maxNoteLength, required: false, lines: true)
        guard issues.isEmpty else {
            throw Problem(
                .unprocessableContent, "Unprocessable Content", detail: "the feedback is not valid: \(shape)", errors: issues)
        }
        return Verdict(fraud: label == "fraud", analyst: analyst, note: note)
    }

    /// The keys among `known` that the object's top level gives more than once
    /// (JSONSerialization keeps one of them silently).
    static func repeatedMembers(_ body: [UInt8], among known: Set<String>) -> [String] {
        struct Counter: JSONFieldSink {
            let known: Set<String>
            var counts: [String: Int] = [:]
            mutating func member(key: UnsafeRawBufferPointer, value: RawValue) {
                let name = String(decoding: key, as: UTF8.self)
                if known.contains(name) { counts[name, default: 0] += 1 }
            }
        }
        var counter = Counter(known: known)
        let scanned: Bool = body.withUnsafeBytes { raw in
            do {
                try JSONScanner.scanObject(raw, into: &counter)
                return true
            } catch { return false }
        }
        guard scanned else { return [] }
        return counter.counts.filter { $0.value > 1 }.map(\.key).sorted()
    }
}
