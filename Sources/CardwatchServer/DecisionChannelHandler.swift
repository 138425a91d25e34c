import CardwatchCore
import CardwatchPipeline
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Answers `POST /v1/transactions` with one valid transaction (and `POST
/// /predict?mode=online` with one plain schema v1 record, scored from the online store) on the
/// connection's event loop, from the request parts Hummingbird's HTTP decoder produced to the response parts
/// its encoder writes, without entering Swift concurrency. Through the router, a request
/// crosses from the event loop to a task and back, each a thread hand-off and a good part
/// of its cost (BENCHMARKS.md, issue 6); here only the decision crosses, to the
/// `DecisionQueue` and back.
///
/// Everything else passes to the router untouched, and so does every such request that is
/// not plainly fine (no Content-Length or a large one, a missing or wrong token, `Expect`,
/// `Connection: close`, a body that is not exactly one valid transaction, anything the
/// `AccessPolicy` refuses): the route answers
/// or refuses it as it does everything. Duplicates and failures get the route's answers too
/// (`Decide.duplicate`, `Problem`). Answers leave in request order: a request is taken here
/// only when none is with the router, and while one is being decided whatever the client
/// sends next waits here (the connection then reads no more) until its answer is written.
final class DecisionChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    struct Settings: Sendable {
        var decide: Decide
        var maxBodyBytes: Int
        /// The checks every request passes (token, Content-Type, Host, Origin), as the router applies them.
        var policy: AccessPolicy
        var serverName: String
    }

    private enum State {
        case idle
        /// A request's parts go on to the router.
        case forwarding
        /// A request taken here, its body being read into `body`.
        case collecting
        /// A request taken here, waiting for its decision.
        case deciding
    }

    /// Bodies up to this size are taken here; a single transaction is a few hundred bytes.
    static let largestBody = 16 * 1024
    private let settings: Settings
    private var state = State.idle
    private var head: HTTPRequest?
    private var body = ByteBuffer()
    private var began = ContinuousClock.now
    /// Requests passed to the router whose answer has not been written yet.
    private var withRouter = 0
    /// Parts read while deciding, and whether a read and a quiesce event wait with them.
    private var held: [HTTPRequestPart] = []
    private var readPending = false
    /// Parts passed on since the last `channelReadComplete`: the router's channel hands what
    /// it read to its task only at a read complete, which replayed parts need one of too.
    private var passedSinceReadComplete = false
    private var quiescePending = false
    private var removed = false
    /// The request taken is `POST /predict?mode=online` (scored from the online store).
    private var online = false

    init(_ settings: Settings) { self.settings = settings }

    func handlerRemoved(context: ChannelHandlerContext) { removed = true }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if state == .deciding {
            held.append(part)
        } else {
            handle(part, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        passedSinceReadComplete = false
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        // Reading stops only once the client has sent more while a decision is out (it
        // pipelines): for the others the reads go on, and the channel's read interest with them.
        if !held.isEmpty { readPending = true } else { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { withRouter = max(0, withRouter - 1) }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Shutting down closes idle connections: one whose request is here is not idle.
        if event is ChannelShouldQuiesceEvent, state == .collecting || state == .deciding {
            quiescePending = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let request)):
            if withRouter == 0, let length = takes(request) {
                head = request
                online = request.path != "/v1/transactions"
                body = context.channel.allocator.buffer(capacity: length)
                began = .now
                state = .collecting
            } else {
                withRouter += 1
                state = .forwarding
                pass(context, part)
            }
        case (.collecting, .body(var chunk)):
            body.writeBuffer(&chunk)
            if body.readableBytes > Self.largestBody { toRouter(context, end: false) }
        case (.collecting, .end):
            if online {
                guard let scoring = settings.decide.dependencies.online,
                    Decide.isPlainRecord(Array(body.readableBytesView)),
                    let record = Decide.single(body, policy: settings.decide.dependencies.ingestPolicy)
                else {
                    toRouter(context, end: true)
                    return
                }
                state = .deciding
                body = ByteBuffer()
                score(record.transaction, scoring, context: context)
                return
            }
            guard let record = Decide.single(body, policy: settings.decide.dependencies.ingestPolicy) else {
                toRouter(context, end: true)
                return
            }
            state = .deciding
            body = ByteBuffer()
            submit(record, context: context)
        case (.forwarding, _):
            if case .end = part { state = .idle }
            pass(context, part)
        default:
            // Out of order (the decoder does not do this): the router's own checks handle it.
            pass(context, part)
        }
    }

    /// The body's length when this handler takes the request; nil sends it to the router.
    private func takes(_ request: HTTPRequest) -> Int? {
        let fields = request.headerFields
        let online = request.path == "/predict?mode=online" && settings.decide.dependencies.online != nil
        guard request.method == .post, request.path == "/v1/transactions" || online,
            let length = fields[.contentLength].flatMap({ Int($0) }), length > 0,
            length <= min(settings.maxBodyBytes, Self.largestBody), fields[.transferEncoding] == nil,
            fields[.expect] == nil, !(fields[.connection]?.lowercased().contains("close") ?? false)
        else { return nil }
        // Whatever the router would refuse (or answer with CORS headers) goes to the router.
        let policy = settings.policy
        let host = request.authority
        guard AccessPolicy.acceptsContentType(fields[.contentType]), policy.hostAllowed(host),
            fields[.origin] == nil || policy.originCheck(fields[.origin], host: host) == nil,
            policy.writeAllowed(fields[.authorization])
        else { return nil }
        return length
    }

    private func pass(_ context: ChannelHandlerContext, _ part: HTTPRequestPart) {
        passedSinceReadComplete = true
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// The collected request goes to the router after all, as it came.
    private func toRouter(_ context: ChannelHandlerContext, end: Bool) {
        guard let head else { return }
        self.head = nil
        withRouter += 1
        state = end ? .idle : .forwarding
        pass(context, .head(head))
        if body.readableBytes > 0 { pass(context, .body(body)) }
        body = ByteBuffer()
        if end { pass(context, .end(nil)) }
        releaseQuiesce(context)
    }

    private func submit(_ record: IngestRecord, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let id = record.transaction.transactionID
        let began = began
        settings.decide.queue.submit([record], deadLetters: [], on: loop) { result in
            let (handler, context) = bound.value
            handler.decided(result, id: id, began: began, context: context)
        }
    }

    /// `/predict?mode=online`: the profiles' read, then the score and the answer on this loop.
    private func score(_ tx: Transaction, _ scoring: OnlineScoring, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let began = began
        let metrics = settings.decide.dependencies.metrics
        scoring.features(tx) { features, result in
            loop.execute {
                let (handler, context) = bound.value
                let body = scoring.answer(tx, features, result, began: began, metrics: metrics)
                handler.respond(.ok, [.contentType: "application/json"], body, context: context)
            }
        }
    }

    private func decided(
        _ result: Result<Decided, any Error>, id: String, began: ContinuousClock.Instant, context: ChannelHandlerContext
    ) {
        switch result {
        case .success(let decided) where !decided.decisions.isEmpty:
            let body = JSONBody.decisionBody(
                id, decided.decisions[0].decision, latencyMs: Decide.milliseconds(since: began))
            respond(.ok, [.contentType: "application/json"], body, context: context)
        case .success:
            // Sent before: the answer its first copy got, looked up (and perhaps waited for) off the event loop.
            let decide = settings.decide
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            Task {
                let answer: (HTTPResponse.Status, HTTPFields, ByteBuffer)
                do {
                    answer = (.ok, [.contentType: "application/json"], try JSONBody.body(try await decide.duplicate(id)))
                } catch {
                    let problem = Problem(wrapping: error)
                    answer = (problem.status, problem.responseHeaders, problem.body)
                }
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(answer.0, answer.1, answer.2, context: context)
                }
            }
        case .failure(let error):
            let problem = Problem(wrapping: error)
            respond(problem.status, problem.responseHeaders, problem.body, context: context)
        }
    }

    private func respond(_ status: HTTPResponse.Status, _ fields: HTTPFields, _ body: ByteBuffer, context: ChannelHandlerContext)
    {
        state = .idle
        head = nil
        guard !removed else { return }
        var fields = fields
        fields[.contentLength] = String(body.readableBytes)
        fields[.date] = HTTPDate.now
        fields[.server] = settings.serverName
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        // What the client sent meanwhile, in order; a request among it may be taken here again.
        let parts = held
        held.removeAll()
        for (i, part) in parts.enumerated() {
            if state == .deciding {
                held.append(contentsOf: parts[i...])
                return
            }
            handle(part, context: context)
        }
        if passedSinceReadComplete { channelReadComplete(context: context) }
        guard state != .deciding else { return }
        releaseQuiesce(context)
        if readPending {
            readPending = false
            context.read()
        }
    }

    private func releaseQuiesce(_ context: ChannelHandlerContext) {
        guard quiescePending, state != .collecting && state != .deciding else { return }
        quiescePending = false
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted once a second.
enum HTTPDate {
    private static let cache = Locked<(second: Int64, text: String)>((0, ""))  // a lock ThreadSanitizer sees

    static var now: String {
        let micros = Timestamp.now.microseconds
        let second = micros / 1_000_000
        return cache.withLock { c in
            if c.second != second {
                c = (second, imfFixdate(Date(timeIntervalSince1970: Double(second))))
            }
            return c.text
        }
    }

    static func imfFixdate(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: date)
    }
}
