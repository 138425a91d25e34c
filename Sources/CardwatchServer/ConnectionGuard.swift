import CardwatchCore
import HTTPTypes
import NIOCore
import Synchronization

/// The server's open connections: the connection limit (`HTTPLimits.maxConnections`) and the
/// deadlines. Each event loop has its own table (`LoopConnections`), touched only on that
/// loop; the count across loops is atomic.
final class ConnectionLimiter: Sendable {
    let limits: HTTPLimits
    let metrics: PipelineMetrics
    private let open = Atomic<Int>(0)
    private let tables = Locked<[ObjectIdentifier: LoopConnections]>([:])

    init(limits: HTTPLimits, metrics: PipelineMetrics) {
        self.limits = limits
        self.metrics = metrics
    }

    func table(for loop: any EventLoop) -> LoopConnections {
        tables.withLock { tables in
            if let table = tables[ObjectIdentifier(loop)] { return table }
            let table = LoopConnections(loop: loop, limits: limits, metrics: metrics)
            tables[ObjectIdentifier(loop)] = table
            return table
        }
    }

    /// A new connection on `table`'s loop: true when it may stay, after closing the
    /// longest-idle connection without a request in progress when at the limit (on this loop,
    /// else on another); false when every connection is busy and it must be refused.
    func admit(on table: LoopConnections) -> Bool {
        let count = open.add(1, ordering: .relaxed).newValue
        metrics.setOpenConnections(count)
        if count <= limits.maxConnections || table.evictOldest() { return true }
        let others = tables.withLock { Array($0.values) }
        if let other = others.first(where: { $0 !== table && $0.evictable.load(ordering: .relaxed) > 0 }) {
            // The other loop closes one of its own; until then the count is one over (the
            // limit leaves descriptors in reserve).
            other.loop.execute { _ = other.evictOldest() }
            return true
        }
        released()
        return false
    }

    func released() {
        metrics.setOpenConnections(open.subtract(1, ordering: .relaxed).newValue)
    }
}

/// One event loop's connections: their deadlines, checked every second, and the order in
/// which they became evictable (idle, or still sending a head), oldest first.
final class LoopConnections: @unchecked Sendable {
    // `@unchecked Sendable`: everything but `evictable` (an atomic) is touched only on
    // `loop` (asserted in each method), like a channel handler's state.
    let loop: any EventLoop
    let limits: HTTPLimits
    let metrics: PipelineMetrics
    /// Evictable connections on this loop (read from other loops too).
    let evictable = Atomic<Int>(0)
    private var members: [ConnectionGuard] = []
    /// Evictable connections in the order they became so, with the stamp they had then; an
    /// entry whose connection has since changed stamp (or closed) is stale and skipped.
    private var queue: [(connection: ConnectionGuard, stamp: UInt64)] = []
    private var queueHead = 0
    private var nextStamp: UInt64 = 1
    private var sweep: Scheduled<Void>?

    init(loop: any EventLoop, limits: HTTPLimits, metrics: PipelineMetrics) {
        self.loop = loop
        self.limits = limits
        self.metrics = metrics
    }

    func add(_ connection: ConnectionGuard) {
        loop.preconditionInEventLoop()
        connection.tableIndex = members.count
        members.append(connection)
        if sweep == nil { scheduleSweep() }
    }

    func remove(_ connection: ConnectionGuard) {
        loop.preconditionInEventLoop()
        setEvictable(connection, false)
        let i = connection.tableIndex
        guard i >= 0, i < members.count, members[i] === connection else { return }
        members.swapAt(i, members.count - 1)
        members[i].tableIndex = i
        members.removeLast()
        connection.tableIndex = -1
        if members.isEmpty {
            sweep?.cancel()
            sweep = nil
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
    }

    /// Whether the connection may be closed to make room: it may from its acceptance, and
    /// again from each answer that leaves it idle; not while a request is in progress.
    func setEvictable(_ connection: ConnectionGuard, _ isEvictable: Bool) {
        loop.assertInEventLoop()
        guard connection.isCountedEvictable != isEvictable else { return }
        connection.isCountedEvictable = isEvictable
        guard isEvictable else {
            evictable.subtract(1, ordering: .relaxed)
            return
        }
        evictable.add(1, ordering: .relaxed)
        connection.evictionStamp = nextStamp
        queue.append((connection, nextStamp))
        nextStamp += 1
        if queue.count - queueHead > 2 * members.count + 64 { compact() }
    }

    /// Closes the connection evictable the longest; false when there is none.
    @discardableResult
    func evictOldest() -> Bool {
        loop.preconditionInEventLoop()
        while queueHead < queue.count {
            let (connection, stamp) = queue[queueHead]
            queueHead += 1
            if isCurrent(connection, stamp) {
                setEvictable(connection, false)
                connection.evict()
                return true
            }
        }
        queue.removeAll(keepingCapacity: true)
        queueHead = 0
        return false
    }

    private func isCurrent(_ connection: ConnectionGuard, _ stamp: UInt64) -> Bool {
        connection.isCountedEvictable && connection.evictionStamp == stamp
    }

    /// Drops used and stale entries, in place (the queue keeps its capacity).
    private func compact() {
        queue.removeSubrange(0..<queueHead)
        queueHead = 0
        queue.removeAll { !isCurrent($0.connection, $0.stamp) }
    }

    private func scheduleSweep() {
        sweep = loop.assumeIsolated().scheduleTask(in: .seconds(1)) { [self] in
            sweep = nil
            let now = NIODeadline.now().uptimeNanoseconds
            for connection in members {
                if let (at, expiry) = connection.timeline.deadline(limits), now >= at { connection.expire(expiry) }
            }
            if !members.isEmpty && sweep == nil { scheduleSweep() }
        }
    }
}

/// The first handler of every connection, on its raw bytes: admits it under the connection
/// limit (or answers 503 and closes it), keeps its `ConnectionTimeline` (deadlines checked by
/// `LoopConnections`), tells 414 from 431 when the decoder refuses a head as too large
/// (`RequestLineTracker`), and closes it after an answer that ends the connection: output
/// closed once the answer is out, input drained, all closed a second later or when the
/// client closes (closing at once with unread input would reset the connection, and the
/// client might never read the answer). `HTTPRequestGuard` is its HTTP side.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let limiter: ConnectionLimiter
    fileprivate(set) var timeline = ConnectionTimeline(acceptedAt: 0)
    private(set) var lines: RequestLineTracker
    /// The HTTP side, for answers and quiet closes; set when it is added.
    weak var http: HTTPRequestGuard?
    private var context: ChannelHandlerContext?
    private var table: LoopConnections?
    fileprivate(set) var tableIndex = -1
    fileprivate(set) var evictionStamp: UInt64 = 0
    fileprivate(set) var isCountedEvictable = false
    private var admitted = false
    private var lingering: Scheduled<Void>?

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
        lines = RequestLineTracker(limit: limiter.limits.maxURLBytes)
    }

    static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard table == nil else { return }
        let table = limiter.table(for: context.eventLoop)
        self.table = table
        timeline = ConnectionTimeline(acceptedAt: Self.now)
        guard limiter.admit(on: table) else {
            refuse(context)
            return
        }
        admitted = true
        table.add(self)
        table.setEvictable(self, true)
    }

    private func leave() {
        lingering?.cancel()
        lingering = nil
        guard admitted else { return }
        admitted = false
        table?.remove(self)
        limiter.released()
    }

    /// At the limit with every connection busy: 503, and closed.
    private func refuse(_ context: ChannelHandlerContext) {
        limiter.metrics.connectionRefused()
        let body =
            #"{"detail":"the server has its maximum of open connections, all busy; retry shortly","status":503,"title":"Service Unavailable","type":"about:blank"}"#
        let head =
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\ncontent-length: \(body.utf8.count)\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
        // Closed once written, without lingering: refused connections must not pile up.
        closing()
        context.writeAndFlush(NIOAny(ByteBuffer(string: head + body))).assumeIsolated().whenComplete { _ in
            self.closeQuietly()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch timeline.mode {
        case .closing:
            return  // drained: an answer has ended this connection
        case .webSocket:
            context.fireChannelRead(data)
        case .http:
            let bytes = unwrapInboundIn(data)
            timeline.bytesArrived(at: Self.now)
            bytes.withUnsafeReadableBytes { lines.consume($0) }
            context.fireChannelRead(data)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if timeline.mode == .closing, let event = event as? ChannelEvent, event == .inputClosed {
            closeQuietly()
            return
        }
        // Shutting down: a connection that never sent a request has nothing to wait for.
        if event is ChannelShouldQuiesceEvent, timeline.heads == 0, timeline.isEvictable {
            closeQuietly()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: From the HTTP side

    func headReceived() {
        timeline.headReceived(at: Self.now)
        lines.reset()
        table?.setEvictable(self, timeline.isEvictable)
    }

    func requestEnded() {
        timeline.requestEnded()
        table?.setEvictable(self, timeline.isEvictable)
    }

    func answerEnded() {
        timeline.answerEnded(at: Self.now)
        table?.setEvictable(self, timeline.isEvictable)
    }

    private func closing() {
        timeline.closing()
        table?.setEvictable(self, false)
    }

    /// A WebSocket from now on: no HTTP deadline, never evicted.
    func upgraded() {
        timeline.upgraded()
        table?.setEvictable(self, false)
    }

    // MARK: Deadlines and eviction

    func expire(_ expiry: ConnectionTimeline.Expiry) {
        switch expiry {
        case .idle: limiter.metrics.connectionClosed(.idle)
        case .header: limiter.metrics.connectionClosed(.headerTimeout)
        case .request: limiter.metrics.connectionClosed(.requestTimeout)
        }
        // A connection that sent part of a request hears why it is closed; an idle one does not.
        guard expiry != .idle, timeline.receivedSinceAnswer, let http else {
            closeQuietly()
            return
        }
        http.answer(
            Problem(
                .requestTimeout, "Request Timeout",
                detail: expiry == .header
                    ? "the request head did not arrive within \(limiter.limits.headerTimeout)"
                    : "the request did not arrive within \(limiter.limits.requestTimeout)"),
            ifIdleOnly: true)
    }

    func evict() {
        limiter.metrics.connectionClosed(.evicted)
        closeQuietly()
    }

    /// After an answer that ends the connection: no more input is read; the output is closed
    /// once the answer is out, everything a second later or when the client closes its side.
    /// (Before the first request the output stays open: NIO would close the whole channel
    /// when the client then closes its side, ending the upgrade handler's wait as an error.)
    func linger(after written: EventLoopFuture<Void>) {
        closing()
        guard let context, lingering == nil else { return }
        if http?.awaitsFirstRequest != true {
            written.assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
        }
        lingering = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { [self] in
            lingering = nil
            closeQuietly()
        }
    }

    /// Closes the connection without an answer (through the HTTP side, which knows how to
    /// end a pending WebSocket negotiation without an error).
    func closeQuietly() {
        closing()
        if let http {
            http.closeQuietly()
        } else {
            context?.close(promise: nil)
        }
    }
}

/// Follows the lines of a connection's input to tell, when the HTTP decoder refuses a head
/// as too large, whether its request line was over the URL limit (414) or its header fields
/// were too many or too large (431). A line is a request line when it starts with a method
/// token and a space; a header line has a colon before any space.
struct RequestLineTracker {
    private enum Kind { case unknown, requestLine, other }
    private var kind = Kind.unknown
    private var length = 0
    private var tokenLength = 0
    /// A request line longer than `limit` was seen since the last complete head.
    private(set) var sawLongRequestLine = false
    let limit: Int

    init(limit: Int) { self.limit = limit }

    mutating func reset() { sawLongRequestLine = false }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            if kind == .unknown {
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: "\n") {
                    endLine()
                    continue
                }
                length += 1
                if c == UInt8(ascii: " ") {
                    kind = tokenLength > 0 ? .requestLine : .other
                } else if Self.isTokenCharacter(c) && tokenLength < 32 {
                    tokenLength += 1
                } else {
                    kind = .other
                }
                continue
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[i...])
            guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")) else {
                length += rest.count
                check()
                return
            }
            length += newline
            check()
            endLine()
            i += newline + 1
        }
        check()
    }

    private mutating func check() {
        if kind == .requestLine && length > limit { sawLongRequestLine = true }
    }

    private mutating func endLine() {
        kind = .unknown
        length = 0
        tokenLength = 0
    }

    private static func isTokenCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
