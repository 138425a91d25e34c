import CardwatchServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSTesting
import Testing
import WSCore

/// A malformed request and the answers it may get (nil: a close without one is fine too).
struct Malformed: Sendable, CustomStringConvertible {
    var name: String
    var bytes: @Sendable (Int) -> [UInt8]
    var statuses: Set<Int>
    var description: String { name }

    static let host = "Host: 127.0.0.1\r\n"

    static let cases: [Malformed] = [
        Malformed(
            name: "garbage request line", bytes: { _ in Array("\u{16}\u{17}garbage garbage\r\n\r\n".utf8) }, statuses: [400]),
        Malformed(name: "HTTP/0.9", bytes: { _ in Array("GET /\r\n\r\n".utf8) }, statuses: [400, 505]),
        Malformed(
            name: "unknown method", bytes: { _ in Array("BREW /pot HTTP/1.1\r\n\(host)\r\n".utf8) }, statuses: [400, 405, 501]),
        Malformed(
            name: "100 KB header",
            bytes: { _ in Array("GET / HTTP/1.1\r\n\(host)X-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n".utf8) },
            statuses: [431]),
        Malformed(
            name: "5,000 headers",
            bytes: { _ in Array(("GET / HTTP/1.1\r\n\(host)" + (0..<5_000).map { "X-H\($0): v\r\n" }.joined() + "\r\n").utf8) },
            statuses: [431]),
        Malformed(
            name: "200 KB URL",
            bytes: { _ in Array("GET /\(String(repeating: "u", count: 200_000)) HTTP/1.1\r\n\(host)\r\n".utf8) },
            statuses: [414]),
        Malformed(
            name: "10 KB URL (under the decoder's limit, over the URL limit)",
            bytes: { _ in Array("GET /alerts/\(String(repeating: "u", count: 10_000)) HTTP/1.1\r\n\(host)\r\n".utf8) },
            statuses: [414]),
        Malformed(
            name: "negative Content-Length",
            bytes: { _ in Array("POST /v1/transactions HTTP/1.1\r\n\(host)Content-Length: -5\r\n\r\n".utf8) }, statuses: [400]),
        Malformed(
            name: "huge Content-Length",
            bytes: { _ in Array("POST /v1/transactions HTTP/1.1\r\n\(host)Content-Length: 99999999999999999999999\r\n\r\n".utf8)
            },
            statuses: [400, 413]),
        Malformed(
            name: "duplicate Content-Length",
            bytes: { _ in Array("POST /v1/transactions HTTP/1.1\r\n\(host)Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}".utf8)
            },
            statuses: [400]),
        Malformed(
            name: "Content-Length with Transfer-Encoding",
            bytes: { _ in
                Array(
                    "POST /v1/transactions HTTP/1.1\r\n\(host)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                        .utf8)
            }, statuses: [400]),
        Malformed(
            name: "NUL in the path", bytes: { _ in Array("GET /alerts/a\u{0}b HTTP/1.1\r\n\(host)\r\n".utf8) }, statuses: [400]),
        Malformed(
            name: "TLS ClientHello",
            bytes: { _ in [0x16, 0x03, 0x01, 0x00, 0xC4, 0x01, 0x00, 0x00, 0xC0, 0x03, 0x03] + [UInt8](repeating: 7, count: 64) },
            statuses: [400]),
        Malformed(name: "HTTP/2 preface", bytes: { _ in Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) }, statuses: [400, 505]),
        Malformed(
            name: "bad chunk size",
            bytes: { _ in
                Array(
                    "POST /v1/transactions HTTP/1.1\r\n\(host)Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                        .utf8)
            }, statuses: [400]),
        Malformed(
            name: "Transfer-Encoding: gzip",
            bytes: { _ in
                Array(
                    "POST /v1/transactions HTTP/1.1\r\n\(host)Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}"
                        .utf8)
            }, statuses: [400]),
        Malformed(
            name: "a malformed request pipelined after a good one",
            bytes: { _ in Array("GET /openapi.json HTTP/1.1\r\n\(host)\r\n\u{1}\u{2} nonsense\r\n\r\n".utf8) }, statuses: [200]),
    ]
}

/// Issue 14, item 2: malformed HTTP is answered (4xx) or closed at once, not held until a
/// timeout (the header timeout is 10 s), over real sockets against a live server, and the
/// server goes on answering. "At once" is under 3 s: alone the 17 cases take 0.7 s in all,
/// but beside the whole suite on two cores one took 1.53 s (CI, 2026-12-06).
@Suite struct MalformedHTTPTests {
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1)), arguments: Malformed.cases)
    func isAnsweredOrClosedPromptly(_ request: Malformed) async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            let reply = try await rawExchange(port: port, request.bytes(port))
            let answered = reply.status.map { request.statuses.contains($0) } ?? false
            #expect(answered || (reply.status == nil && reply.closed), "\(request): \(reply)")
            #expect(reply.seconds < 3 * timeScale, "\(request): \(reply)")
            if reply.status.map({ $0 >= 400 }) ?? false {
                #expect(reply.headers["content-type"] == "application/problem+json", "\(request): \(reply.headers)")
            }
            let after = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(after.status == .ok)
        }
    }

    /// The malformed request after a good one on the same connection: the good one answered
    /// first, then the 400, then the close.
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aPipelinedMalformedRequestIsAnsweredAfterTheGoodOne() async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            let (first, second, end) = try await onThread {
                let socket = try RawSocket(port: port)
                socket.send("GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\u{1}\u{2} nonsense\r\n\r\n")
                let first = socket.reply(timeout: 3 * timeScale)
                let second = socket.reply(timeout: 3 * timeScale)
                return (first, second, socket.closes(within: 3 * timeScale))
            }
            #expect(first.status == 200 && second.status == 400 && end.closed, "\(first); \(second)")
        }
    }
}

/// Issue 14, item 3: idle and read timeouts, the connection limit.
@Suite struct ConnectionLimitTests {
    static func shortTimeouts(_ s: inout ServerSettings) {
        s.limits.headerTimeout = .milliseconds(Int64(1_000 * timeScale))
        s.limits.idleTimeout = .milliseconds(Int64(1_500 * timeScale))
        s.limits.requestTimeout = .milliseconds(Int64(2_000 * timeScale))
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aConnectionThatSendsNothingIsClosedAfterTheHeaderTimeout()
        async throws
    {
        try await Fixture(configure: Self.shortTimeouts).test(.live) { client in
            let port = try #require(client.port)
            let end = try await onThread { try RawSocket(port: port).closes(within: 5 * timeScale) }
            #expect(end.closed && end.seconds >= 0.9 * timeScale && end.seconds < 2.6 * timeScale && end.data.isEmpty, "\(end)")
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func slowlorisGets408AfterTheHeaderTimeout() async throws {
        try await Fixture(configure: Self.shortTimeouts).test(.live) { client in
            let port = try #require(client.port)
            let (reply, sends) = try await onThread {
                let socket = try RawSocket(port: port)
                var sends = 0
                // A header line every 200 ms: the head never completes.
                socket.send("GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                let began = Date()
                while Date().timeIntervalSince(began) < 5 * timeScale, socket.send("X-Slow-\(sends): 1\r\n") {
                    sends += 1
                    if case let r = socket.reply(timeout: 0.2 * timeScale), r.status != nil || r.closed { return (r, sends) }
                }
                return (socket.reply(timeout: 1 * timeScale), sends)
            }
            #expect(reply.status == 408, "\(reply) after \(sends) header lines")
            #expect(sends >= 3 && sends <= 14 * Int(timeScale), "\(sends) header lines sent before the answer")
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aSlowBodyGets408AfterTheRequestTimeout() async throws {
        try await Fixture(configure: Self.shortTimeouts).test(.live) { client in
            let port = try #require(client.port)
            let reply = try await onThread {
                let socket = try RawSocket(port: port)
                socket.send(
                    "POST /v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                )
                let began = Date()
                while Date().timeIntervalSince(began) < 5 * timeScale, socket.send(" ") {
                    let r = socket.reply(timeout: 0.3 * timeScale)
                    if r.status != nil || r.closed { return r }
                }
                return socket.reply(timeout: 1 * timeScale)
            }
            #expect(reply.status == 408, "\(reply)")
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func aKeepAliveConnectionIsClosedAfterTheIdleTimeoutNotBefore()
        async throws
    {
        try await Fixture(configure: Self.shortTimeouts).test(.live) { client in
            let port = try #require(client.port)
            let (first, second, end) = try await onThread {
                let socket = try RawSocket(port: port)
                socket.send(rawRequest("GET", "/openapi.json", port: port))
                let first = socket.reply(timeout: 3 * timeScale)
                Thread.sleep(forTimeInterval: 1 * timeScale)  // idle, but under the 1.5 s: still open
                socket.send(rawRequest("GET", "/openapi.json", port: port))
                let second = socket.reply(timeout: 3 * timeScale)
                return (first, second, socket.closes(within: 5 * timeScale))
            }
            #expect(first.status == 200 && second.status == 200 && !second.closed)
            #expect(end.closed && end.seconds >= 1.4 * timeScale && end.seconds < 3.1 * timeScale, "\(end)")
        }
    }

    /// At the limit, a new connection closes a longest-idle one (on its event loop, else on
    /// another); with every connection busy (a body in progress), it is answered 503 with
    /// Retry-After.
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func atTheLimitIdleConnectionsMakeRoomAndBusyOnesDoNot() async throws {
        try await Fixture(configure: { $0.limits.maxConnections = 4 }).test(.live) { client in
            let port = try #require(client.port)
            let outcome = try await onThread {
                let idle = try (0..<4).map { _ in try RawSocket(port: port) }
                Thread.sleep(forTimeInterval: 0.2)
                let newcomer = try RawSocket(port: port)
                newcomer.send(rawRequest("GET", "/openapi.json", port: port))
                let served = newcomer.reply(timeout: 3 * timeScale)
                // The longest idle (on the newcomer's event loop first) are closed.
                let closed = idle.filter { $0.closes(within: 0.5 * timeScale).closed }.count
                // Now connections each in the middle of a body (none may be closed), until every
                // connection is busy (the idle ones, the test client's too, made room meanwhile)
                // and the next one is refused.
                let partial =
                    "POST /v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
                var busy: [RawSocket] = []
                var refused = RawReply()
                for _ in 0..<10 {
                    let socket = try RawSocket(port: port)
                    let reply = socket.reply(timeout: 0.5 * timeScale)
                    if reply.status != nil || reply.closed {
                        refused = reply
                        break
                    }
                    socket.send(partial)
                    busy.append(socket)
                }
                return (served, closed, refused, idle, busy)
            }
            #expect(outcome.0.status == 200, "the newcomer: \(outcome.0)")
            // (The test client's own connection counts too: it may have made room first.)
            #expect(outcome.1 >= 1, "\(outcome.1) idle connections closed to make room")
            #expect(outcome.2.status == 503 && outcome.2.headers["retry-after"] == "1", "\(outcome.2)")
            #expect(outcome.4.count >= 4, "\(outcome.4.count) busy connections before the refusal")
        }
    }

    /// The live feed is not an idle HTTP connection: it outlives the idle and header timeouts.
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func theLiveFeedIsNotCutByTheIdleTimeout() async throws {
        let fixture = try Fixture(configure: Self.shortTimeouts)
        let received = Messages()
        try await fixture.test(.live) { client in
            try await client.ws("/alerts/stream") { inbound, _, _ in
                let port = try #require(client.port)
                let post = Task {
                    while fixture.feedSubscribers == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    try await Task.sleep(for: .milliseconds(Int64(3_000 * timeScale)))  // twice the idle timeout
                    // On a new connection: the test client's own would have been closed as idle by now.
                    let request = rawRequest(
                        "POST", "/v1/transactions", headers: [("Content-Type", "application/json")],
                        body: transaction("ws1", amount: 5_000), port: port)
                    return try await rawExchange(port: port, request).status ?? 0
                }
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    if case .text(let text) = message {
                        received.add(text)
                        break
                    }
                }
                let status = try await post.value
                received.add("status \(status)")
            }
        }
        let all = received.all
        #expect(all.first?.contains("\"ws1\"") == true && all.last == "status 200", "\(all)")
    }

    /// While many connections sit idle and many heads trickle in, the server goes on
    /// answering (the latency under 20,000 and 500 is benchmarks/hostile-load.py's to
    /// measure, not a debug build's on a loaded machine: the bound here is only "answered").
    /// The wait is long because 350 connects in a burst overflow the accept queue, and a
    /// handshake the kernel dropped is retried after 1, 2, 4 s while the rest of the suite
    /// shares the two cores (a 5 s wait failed once in CI).
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 2))) func healthAnswersWhileConnectionsAreHeld() async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            let replies = try await onThread {
                let idle = try (0..<300).map { _ in try RawSocket(port: port) }
                let slow = try (0..<50).map { _ in try RawSocket(port: port) }
                for s in slow { s.send("GET /pipeline/health HTTP/1.1\r\nHost: 127.0.0.1\r\n") }
                var replies: [RawReply] = []
                for _ in 0..<20 {
                    let socket = try RawSocket(port: port)
                    socket.send(rawRequest("GET", "/pipeline/alerts", port: port))
                    replies.append(socket.reply(timeout: 20 * timeScale))
                }
                _ = (idle, slow)
                return replies
            }
            #expect(replies.allSatisfy { $0.status == 200 }, "\(replies)")
        }
    }
}
