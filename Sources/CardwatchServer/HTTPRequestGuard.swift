import HTTPTypes
import NIOCore
import NIOHTTP1

/// The HTTP side of `ConnectionGuard`, placed right after NIO's request decoder, where every
/// request head and every decoding error passes first. Hummingbird's HTTP/1 channel runs the
/// decoder without NIO's error handler, and before a connection's first request NIO's upgrade
/// handler waits for a head that a decoding error never delivers: a malformed request was
/// neither answered nor closed. Here every such request is answered and the connection
/// closed: 400 for what does not parse, 414 for a URL over `maxURLBytes`, 431 for a head over
/// `maxHeaderBytes` or `maxHeaders`, 505 for an HTTP version other than 1.x (0.9, the HTTP/2
/// preface), 408 for a head or body that does not arrive in time; a WebSocket upgrade the
/// `AccessPolicy` refuses gets 421, 403 or 401 before it is negotiated. Answers wait for the
/// answers to earlier pipelined requests and leave in order.
final class HTTPRequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let connection: ConnectionGuard
    let policy: AccessPolicy
    private var limits: HTTPLimits { connection.limiter.limits }
    private var context: ChannelHandlerContext?
    private var state = RequestGuardState()

    init(connection: ConnectionGuard, policy: AccessPolicy) {
        self.connection = connection
        self.policy = policy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection.http = self
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if state.passthrough {
            context.fireChannelRead(data)
            return
        }
        let action: RequestGuardState.ReadAction
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard state.reading else { return }
            connection.headReceived()
            let refusal = refusal(of: head)
            action = state.head(refused: refusal != nil, upgrade: Self.isWebSocketUpgrade(head))
            if case .refuse = action, let refusal { answer(refusal) }
            if state.passthrough { connection.upgraded() }
        case .body:
            action = state.body()
        case .end:
            action = state.end()
            if case .pass = action { connection.requestEnded() }
        }
        if case .pass = action { context.fireChannelRead(data) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !state.passthrough, error is HTTPParserError || error is ByteToMessageDecoderError else {
            context.fireErrorCaught(error)
            return
        }
        guard state.reading else { return }  // the decoder's later complaints
        // A route reading this request's body must see it fail, not end.
        let bodyCutShort = state.inRequest
        answer(problem(for: error))
        if bodyCutShort { context.fireErrorCaught(error) }
    }

    /// A head the request decoder let through but HTTP types refused (reported by
    /// `HeadConversionCatcher`).
    func headNotConvertible(_ error: any Error) {
        guard state.reading else { return }
        answer(Problem(.badRequest, "Bad Request", detail: "the request head is not valid HTTP: \(error)"))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if state.passthrough {
            context.write(data, promise: promise)
            return
        }
        let part: RequestGuardState.Part
        switch unwrapOutboundIn(data) {
        case .head: part = .head
        case .body: part = .body
        case .end: part = .end
        }
        switch state.write(part) {
        case .fail:
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .pass:
            context.write(data, promise: promise)
            if part == .end { connection.answerEnded() }
        case .passThenAnswer(let problem):
            context.write(data, promise: promise)
            connection.answerEnded()
            send(problem, context: context)
        }
    }

    // MARK: Answers

    /// Answers `problem` and closes the connection, once the answers to earlier requests are
    /// written (at once with `ifIdleOnly`, closing without an answer if they are not).
    func answer(_ problem: Problem, ifIdleOnly: Bool = false) {
        guard let context else { return }
        guard !state.passthrough else {
            // Not HTTP any more: no answer can be written.
            context.close(promise: nil)
            return
        }
        switch state.answer(problem, ifIdleOnly: ifIdleOnly) {
        case .send:
            if problem.status != .requestTimeout { connection.limiter.metrics.connectionClosed(.malformed) }
            send(problem, context: context)
        case .wait:
            connection.limiter.metrics.connectionClosed(.malformed)
        case .close:
            closeQuietly()
        case .ignore:
            break
        }
    }

    private func send(_ problem: Problem, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: Int(problem.status.code)))
        for field in problem.responseHeaders { head.headers.add(name: field.name.rawName, value: field.value) }
        let body = problem.body
        head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        connection.linger(after: context.writeAndFlush(wrapOutboundOut(.end(nil))))
    }

    /// No request has reached NIO's upgrade handler yet: it is waiting for one.
    var awaitsFirstRequest: Bool { state.awaitsFirstRequest }

    /// Closes without an answer. Before the first request NIO's upgrade handler waits for a
    /// head: told that the input closed, it closes the connection and ends its wait as a
    /// closed input (an outright close would end it as an error, logged by Hummingbird).
    func closeQuietly() {
        guard let context else { return }
        if state.awaitsFirstRequest {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        context.close(promise: nil)
    }

    // MARK: What is refused

    private func refusal(of head: HTTPRequestHead) -> Problem? {
        if head.version.major != 1 {
            return Problem(
                .httpVersionNotSupported, "HTTP Version Not Supported",
                detail: "this server speaks HTTP/1.1 (and 1.0); the request said HTTP/\(head.version.major).\(head.version.minor)"
            )
        }
        if head.uri.utf8.count > limits.maxURLBytes {
            return uriTooLong
        }
        if Self.isWebSocketUpgrade(head) {
            let host = head.headers.first(name: "host")
            if let problem = policy.hostProblem(host) { return problem }
            if case .failure(let problem)? = policy.originCheck(head.headers.first(name: "origin"), host: host) {
                return problem
            }
            // Without an Authorization header the token may come as the first message.
            if let authorization = head.headers.first(name: "authorization"), !policy.streamAllowed(authorization) {
                return AccessPolicy.unauthorized("the bearer token is not valid", invalid: true)
            }
        }
        return nil
    }

    private var uriTooLong: Problem {
        Problem(.uriTooLong, "URI Too Long", detail: "the request target is over \(limits.maxURLBytes) bytes")
    }

    private func problem(for error: any Error) -> Problem {
        switch error as? HTTPParserError {
        case .headerOverflow?:
            if connection.lines.sawLongRequestLine { return uriTooLong }
            return Problem(
                .requestHeaderFieldsTooLarge, "Request Header Fields Too Large",
                detail: "the request head is over \(limits.maxHeaderBytes) bytes or has more than \(limits.maxHeaders) fields")
        case .paused?:
            // The decoder stops at the HTTP/2 connection preface.
            return Problem(
                .httpVersionNotSupported, "HTTP Version Not Supported", detail: "this server speaks HTTP/1.1, not HTTP/2")
        case .invalidVersion?:
            return Problem(.httpVersionNotSupported, "HTTP Version Not Supported", detail: "this server speaks HTTP/1.1")
        case let parserError?:
            return Problem(
                .badRequest, "Bad Request", detail: "the request is not valid HTTP/1.1 (\(Self.describe(parserError)))")
        case nil:
            return Problem(.badRequest, "Bad Request", detail: "the request is not valid HTTP/1.1")
        }
    }

    static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidMethod: "unknown method"
        case .invalidURL: "invalid request target"
        case .invalidChunkSize: "invalid chunk size"
        case .invalidContentLength: "invalid Content-Length"
        case .unexpectedContentLength: "Content-Length where it is not allowed, or with Transfer-Encoding"
        case .invalidHeaderToken: "invalid header field"
        case .invalidConstant: "malformed request line"
        case .unknown: "invalid Transfer-Encoding or framing"
        default: "\(error)"
        }
    }

    static func isWebSocketUpgrade(_ head: HTTPRequestHead) -> Bool {
        head.headers.contains(name: "upgrade")
            && head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
    }
}

/// Placed after the HTTP types codec (first of the channel's additional handlers): a head
/// that NIO's decoder accepted but HTTP types refuse (a NUL in the path, say) is reported to
/// `HTTPRequestGuard`, which answers it; decoding errors pass on.
final class HeadConversionCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError || error is ByteToMessageDecoderError || error is IOError || error is ChannelError {
            context.fireErrorCaught(error)
            return
        }
        if let guardHandler = try? context.pipeline.syncOperations.handler(type: HTTPRequestGuard.self) {
            guardHandler.headNotConvertible(error)
        } else {
            context.fireErrorCaught(error)
        }
    }
}

/// The bookkeeping of `HTTPRequestGuard`: which requests went on to the server and which of
/// them are answered, and when the guard's own answer (which ends the connection) may be
/// written: after the server's answers to every earlier request, never inside one.
struct RequestGuardState: Equatable {
    enum Part: Equatable { case head, body, end }
    enum ReadAction: Equatable {
        /// On to the server.
        case pass
        /// Dropped: the connection is being answered and closed.
        case drop
        /// The head is refused: the guard answers it.
        case refuse
    }
    enum WriteAction: Equatable {
        case pass
        /// Written after the guard's own answer: refused.
        case fail
        /// The answer the guard was waiting to give goes right after this part.
        case passThenAnswer(Problem)
    }
    enum AnswerAction: Equatable {
        case send
        /// Given once the server's earlier answers are written.
        case wait
        /// Answers are outstanding and the answer is not worth waiting for: close.
        case close
        /// Answered already.
        case ignore
    }

    /// Heads passed on to the server, and answers written to their end.
    private(set) var headsPassed = 0
    private(set) var answersEnded = 0
    /// A head was passed on and its end has not come yet.
    private(set) var inRequest = false
    private(set) var responseOpen = false
    /// The guard's answer, waiting for the server's answers to earlier requests.
    private(set) var pending: Problem?
    /// The guard's answer is decided: nothing more is read or written as HTTP.
    private(set) var answered = false
    /// A WebSocket negotiation was let through: what follows is not HTTP.
    private(set) var passthrough = false

    /// Requests are still read (no answer of the guard's decided).
    var reading: Bool { !answered && pending == nil }

    /// No request has reached NIO's upgrade handler yet.
    var awaitsFirstRequest: Bool { headsPassed == 0 && !passthrough }

    mutating func head(refused: Bool, upgrade: Bool) -> ReadAction {
        guard reading else { return .drop }
        if refused { return .refuse }
        // Only a connection's first request can be upgraded (NIO's upgrade handler is gone after it).
        if upgrade && headsPassed == 0 { passthrough = true }
        headsPassed += 1
        inRequest = true
        return .pass
    }

    mutating func body() -> ReadAction { reading ? .pass : .drop }

    mutating func end() -> ReadAction {
        guard reading else { return .drop }
        inRequest = false
        return .pass
    }

    /// Every request before the one being refused has its answer written (the refused one,
    /// if its head was passed on, never completes: its answer is the guard's).
    private var readyToAnswer: Bool { !responseOpen && answersEnded >= headsPassed - (inRequest ? 1 : 0) }

    mutating func answer(_ problem: Problem, ifIdleOnly: Bool) -> AnswerAction {
        guard reading else { return .ignore }
        if readyToAnswer {
            answered = true
            return .send
        }
        if ifIdleOnly {
            answered = true
            return .close
        }
        pending = problem
        return .wait
    }

    mutating func write(_ part: Part) -> WriteAction {
        if answered { return .fail }
        switch part {
        case .head: responseOpen = true
        case .body: break
        case .end:
            responseOpen = false
            answersEnded += 1
            if let problem = pending, readyToAnswer {
                pending = nil
                answered = true
                return .passThenAnswer(problem)
            }
        }
        return .pass
    }
}
