import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// Hummingbird's HTTP/1 channel with the WebSocket upgrade, wrapped in the connection's
/// guards: `ConnectionGuard` first in the pipeline, on the raw bytes, and `HTTPRequestGuard`
/// right after the request decoder. Everything else is Hummingbird's.
struct GuardedHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value
    let inner: HTTP1WebSocketUpgradeChannel
    let limiter: ConnectionLimiter
    let policy: AccessPolicy

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let connection = ConnectionGuard(limiter: limiter)
        do {
            try channel.pipeline.syncOperations.addHandler(connection, position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let policy = policy
        return inner.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(HTTPRequestGuard(connection: connection, policy: policy), position: .after(decoder))
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }

    /// The HTTP/1 decoder's limits from `limits`: a field (the URL is one) and the whole head
    /// at most `maxHeaderBytes`, at most `maxHeaders` fields.
    static func decoderConfiguration(_ limits: HTTPLimits) -> HTTP1Channel.Configuration.DecoderConfiguration {
        .init(
            maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
            maxHeaderFieldCount: limits.maxHeaders)
    }
}

extension CardwatchAPI {
    /// The server: guarded HTTP/1 with the fast path for single decisions, and the live
    /// alert feed as a WebSocket at `/alerts/stream`.
    func guardedServer(fastPath: DecisionChannelHandler.Settings) -> HTTPServerBuilder {
        let limiter = ConnectionLimiter(limits: settings.limits, metrics: dependencies.metrics)
        let policy = AccessPolicy(settings: settings)
        let feed = dependencies.feed
        let tokenWait = settings.limits.streamTokenWait
        let configuration = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(
                additionalChannelHandlers: [HeadConversionCatcher(), DecisionChannelHandler(fastPath)],
                httpDecoderConfiguration: GuardedHTTPChannel.decoderConfiguration(settings.limits)))
        return HTTPServerBuilder { responder in
            GuardedHTTPChannel(
                inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: configuration) { request, _, _ in
                    guard request.path?.split(separator: "?").first == "/alerts/stream" else { return .dontUpgrade }
                    // `HTTPRequestGuard` refused these with their reasons already; checked again here.
                    let host = request.authority
                    guard policy.hostAllowed(host) else { return .dontUpgrade }
                    if case .failure? = policy.originCheck(request.headerFields[.origin], host: host) { return .dontUpgrade }
                    let authorized = policy.streamAllowed(request.headerFields[.authorization])
                    return .upgrade([:]) { inbound, outbound, _ in
                        try await AlertStream(feed: feed, policy: policy, tokenWait: tokenWait).run(
                            inbound: inbound, outbound: outbound, authorized: authorized)
                    }
                }, limiter: limiter, policy: policy)
        }
    }
}
