import CardwatchCore
import Foundation
public import NIOCore
public import NIOPosix

/// Commands encoded, how many, and who waits for their replies.
struct RESPRequest: Sendable {
    var bytes: ByteBuffer
    var count: Int
    var promise: EventLoopPromise<[RESPValue]>
}

/// Replies matched to their commands in order (Redis answers a connection's commands in the
/// order sent): each send waits for as many replies as it sent commands.
final class RESPReplies: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<(count: Int, replies: [RESPValue], promise: EventLoopPromise<[RESPValue]>)>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        pending.append((request.count, [], request.promise))
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !pending.isEmpty else {
            // A reply nobody asked for: the stream is out of step; nothing after it can be trusted.
            context.fireErrorCaught(RESPError("a reply without a command"))
            context.close(promise: nil)
            return
        }
        pending[pending.startIndex].replies.append(unwrapInboundIn(data))
        if pending[pending.startIndex].replies.count == pending[pending.startIndex].count {
            let done = pending.removeFirst()
            done.promise.succeed(done.replies)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError("the connection to Redis closed"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let p = pending.popFirst() { p.promise.fail(error) }
    }
}

/// A failure talking to Redis: unreachable, too slow, or an error reply.
public struct RedisError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Where a Redis server is: `redis://[:password@]HOST[:PORT][/DB]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int
    public var description: String { "redis://\(host):\(port)" + (database == 0 ? "" : "/\(database)") }

    public static func parse(_ url: String) throws -> RedisEndpoint {
        guard url.hasPrefix("redis://") else {
            throw RedisError("\(url) is not a Redis URL: give redis://HOST:PORT (redis://[:PASSWORD@]HOST[:PORT][/DB])")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let user = rest[..<at]
            password = user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).last.map(String.init)
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            guard db.isEmpty || Int(db) != nil, (Int(db) ?? 0) >= 0 else {
                throw RedisError("\(url): the database after / must be a number")
            }
            database = Int(db) ?? 0
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisError("\(url): the port must be a number from 1 to 65535")
            }
            port = p
            host = String(rest[..<colon])
        }
        guard !host.isEmpty else { throw RedisError("\(url) names no host") }
        return RedisEndpoint(host: host, port: port, password: password?.isEmpty == true ? nil : password, database: database)
    }
}

/// One connection to Redis, reconnected when it breaks, with every wait bounded: a command
/// that gets no reply within its timeout fails, a connection whose reply is overdue by
/// `stallAfter` is closed (the next command opens a new one), and at most `maxInFlight`
/// commands wait at once, so a stalled server cannot hold memory without bound. Written by hand over SwiftNIO: no listed package speaks RESP, and
/// NIO is already here (hiredis would add a system library and a trait).
public final class RedisClient: Sendable {
    public let endpoint: RedisEndpoint
    public let maxInFlight: Int
    /// How long a reply may be overdue before its connection is taken for stalled and closed.
    public let stallAfter: TimeAmount
    private let group: any EventLoopGroup
    private enum Link: Sendable {
        case none
        case opening(EventLoopFuture<any NIOCore.Channel>)
        case open(any NIOCore.Channel)
    }
    private let state = Locked<(link: Link, inFlight: Int)>((.none, 0))

    public init(
        _ endpoint: RedisEndpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxInFlight: Int = 4096,
        stallAfter: TimeAmount = .seconds(1)
    ) {
        self.endpoint = endpoint
        self.stallAfter = stallAfter
        self.group = group
        self.maxInFlight = maxInFlight
    }

    /// The commands pipelined in one write; their replies in order. An error reply is returned
    /// as `.error`, not thrown: the caller knows which command it answers.
    public func send(_ commands: [[[UInt8]]], timeout: TimeAmount) async throws -> [RESPValue] {
        try await future(commands, timeout: timeout).get()
    }

    func future(_ commands: [[[UInt8]]], timeout: TimeAmount) -> EventLoopFuture<[RESPValue]> {
        var bytes = ByteBufferAllocator().buffer(capacity: 256)
        for c in commands { RESPDecoder.encode(c, into: &bytes) }
        return future(encoded: bytes, count: commands.count, timeout: timeout)
    }

    /// `count` commands already encoded in RESP (`RESPWriter`), pipelined in one write.
    public func sendAndWait(encoded: ByteBuffer, count: Int, timeout: TimeAmount) throws -> [RESPValue] {
        try future(encoded: encoded, count: count, timeout: timeout).wait()
    }

    func future(encoded bytes: ByteBuffer, count: Int, timeout: TimeAmount) -> EventLoopFuture<[RESPValue]> {
        // The open connection's loop when there is one: its replies complete there, no hop.
        let loop = state.withLock { s -> any EventLoop in
            if case .open(let channel) = s.link, channel.isActive { return channel.eventLoop }
            return group.any()
        }
        guard count > 0 else { return loop.makeSucceededFuture([]) }
        let admitted = state.withLock { s -> Bool in
            guard s.inFlight + count <= maxInFlight else { return false }
            s.inFlight += count
            return true
        }
        guard admitted else {
            return loop.makeFailedFuture(RedisError("more than \(maxInFlight) commands wait for Redis at \(endpoint)"))
        }
        let result = loop.makePromise(of: [RESPValue].self)
        let timer = loop.scheduleTask(in: timeout) {
            result.fail(RedisError("Redis at \(self.endpoint) did not answer within \(Self.milliseconds(timeout)) ms"))
        }
        connection(loop: loop, timeout: timeout).whenComplete { connected in
            switch connected {
            case .failure(let error): result.fail(error)
            case .success(let channel):
                let replies = channel.eventLoop.makePromise(of: [RESPValue].self)
                channel.writeAndFlush(RESPRequest(bytes: bytes, count: count, promise: replies), promise: nil)
                // A reply that never comes would keep its place (and the in-flight count) on the
                // connection forever: after `stallAfter` without it the connection is closed,
                // failing what waits on it (the next command opens a new one). Not at the
                // caller's timeout: that would fail every command in flight with it.
                let stall = channel.eventLoop.scheduleTask(in: max(timeout, self.stallAfter)) { channel.close(promise: nil) }
                replies.futureResult.whenComplete { _ in stall.cancel() }
                replies.futureResult.whenComplete { result.completeWith($0) }
                replies.futureResult.whenComplete { _ in self.state.withLock { $0.inFlight -= count } }
                return
            }
            self.state.withLock { $0.inFlight -= count }
        }
        result.futureResult.whenComplete { _ in timer.cancel() }
        return result.futureResult
    }

    /// The open connection, or a new one (AUTH and SELECT sent first when the URL asks).
    private func connection(loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<any NIOCore.Channel> {
        state.withLock { s in
            switch s.link {
            case .open(let channel) where channel.isActive: return channel.eventLoop.makeSucceededFuture(channel)
            case .opening(let future): return future
            default: break
            }
            let opening = ClientBootstrap(group: loop)
                .connectTimeout(max(timeout, .milliseconds(100)))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                        try channel.pipeline.syncOperations.addHandler(RESPReplies())
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port)
                .flatMap { channel in self.handshake(channel) }
            s.link = .opening(opening)
            opening.whenComplete { result in
                self.state.withLock { s in
                    guard case .opening(let f) = s.link, f === opening else { return }
                    switch result {
                    case .success(let channel): s.link = .open(channel)
                    case .failure: s.link = .none
                    }
                }
            }
            return opening
        }
    }

    private func handshake(_ channel: any NIOCore.Channel) -> EventLoopFuture<any NIOCore.Channel> {
        var commands: [[[UInt8]]] = []
        if let password = endpoint.password { commands.append([Array("AUTH".utf8), Array(password.utf8)]) }
        if endpoint.database != 0 { commands.append([Array("SELECT".utf8), Array(String(endpoint.database).utf8)]) }
        guard !commands.isEmpty else { return channel.eventLoop.makeSucceededFuture(channel) }
        var bytes = channel.allocator.buffer(capacity: 64)
        for c in commands { RESPDecoder.encode(c, into: &bytes) }
        let replies = channel.eventLoop.makePromise(of: [RESPValue].self)
        channel.writeAndFlush(RESPRequest(bytes: bytes, count: commands.count, promise: replies), promise: nil)
        return replies.futureResult.flatMapThrowing { replies in
            for case .error(let e) in replies {
                throw RedisError("Redis at \(self.endpoint) refused the connection's setup: \(e)")
            }
            return channel
        }
    }

    public func close() {
        let link = state.withLock { s -> Link in
            defer { s.link = .none }
            return s.link
        }
        switch link {
        case .open(let channel): channel.close(promise: nil)
        case .opening(let future): future.whenSuccess { $0.close(promise: nil) }
        case .none: break
        }
    }

    static func milliseconds(_ t: TimeAmount) -> String {
        let ms = Double(t.nanoseconds) / 1e6
        return ms == ms.rounded() ? String(Int(ms)) : String(format: "%.1f", ms)
    }
}
