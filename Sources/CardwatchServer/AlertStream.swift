import HummingbirdWebSocket
import NIOWebSocket

/// One connection of the live alert feed (`WS /alerts/stream`). When the `AccessPolicy`
/// wants a token and the upgrade request carried none, the client sends it as its first
/// message (`Bearer <token>` or the token alone; browsers cannot set headers on a
/// WebSocket) within `tokenWait`; a wrong or missing one closes the socket with 1008
/// (policy violation) before any alert is sent. Then every committed alert is sent as a
/// JSON text message until either side closes.
struct AlertStream: Sendable {
    let feed: AlertFeed
    let policy: AccessPolicy
    let tokenWait: Duration

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, authorized: Bool) async throws {
        let (verdicts, verdict) = AsyncStream<Bool>.makeStream()
        let policy = policy
        let feed = feed
        let tokenWait = tokenWait
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Reads until the client closes; the first message may be the token.
                var first = !authorized
                for try await message in inbound.messages(maxSize: 4_096) {
                    guard first else { continue }
                    first = false
                    guard case .text(let text) = message else {
                        verdict.yield(false)
                        continue
                    }
                    verdict.yield(policy.streamAllowed("Bearer \(text.trimmingPrefix("Bearer "))"))
                }
            }
            group.addTask {
                if !authorized {
                    let allowed = await withTaskGroup(of: Bool.self) { wait in
                        wait.addTask {
                            var iterator = verdicts.makeAsyncIterator()
                            return await iterator.next() ?? false
                        }
                        wait.addTask {
                            try? await Task.sleep(for: tokenWait)
                            return false
                        }
                        let first = await wait.next() ?? false
                        wait.cancelAll()
                        return first
                    }
                    guard allowed else {
                        try await outbound.close(
                            .policyViolation, reason: "the live feed needs the token: send it as the first message")
                        return
                    }
                }
                for await text in feed.subscribe() { try await outbound.write(.text(text)) }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
