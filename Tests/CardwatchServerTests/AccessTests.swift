import CardwatchServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import NIOWebSocket
import Testing
import WSClient
import WSCore

/// An upgrade request for the live feed, as raw bytes.
func webSocketUpgrade(port: Int, headers: [(String, String)] = []) -> [UInt8] {
    rawRequest(
        "GET", "/alerts/stream",
        headers: [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ] + headers, port: port)
}

/// Issue 14, item 7: writes need a JSON Content-Type (on the event loop's fast path too),
/// the Host is checked (DNS rebinding), browsers' Origins are checked (the live feed and
/// writes), the live feed needs the token when there is one.
@Suite struct WriteProtectionTests {
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func writesNeedAJSONContentTypeOnBothPaths() async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            let one = transaction("ct1", amount: 5)
            for contentType in [nil, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
                let headers = contentType.map { [("Content-Type", $0)] } ?? []
                // A single transaction (the event loop's fast path) and a batch (the router).
                for body in [one, "[\(one)]"] {
                    let reply = try await rawExchange(
                        port: port, rawRequest("POST", "/v1/transactions", headers: headers, body: body, port: port))
                    #expect(reply.status == 415, "\(contentType ?? "none"): \(reply)")
                    #expect(reply.headers["accept"] == "application/json, application/x-ndjson")
                }
                let feedback = try await rawExchange(
                    port: port,
                    rawRequest("POST", "/alerts/x/feedback", headers: headers, body: #"{"label":"fraud"}"#, port: port))
                #expect(feedback.status == 415)
            }
            for contentType in [
                "application/json", "application/json; charset=utf-8", "Application/JSON", "application/x-ndjson",
            ] {
                let reply = try await rawExchange(
                    port: port,
                    rawRequest(
                        "POST", "/v1/transactions", headers: [("Content-Type", contentType)],
                        body: transaction("ct-\(contentType.count)", amount: 5), port: port))
                #expect(reply.status == 200, "\(contentType): \(reply)")
            }
            // A POST without a body needs none (what a page could send that way carries an Origin).
            let promote = try await rawExchange(port: port, rawRequest("POST", "/models/1/promote", port: port))
            #expect(promote.status == 200, "\(promote)")
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func theHostIsCheckedAgainstDNSRebinding() async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            for host in ["attacker.example", "attacker.example:\(port)", "localhost.attacker.example", "127.0.0.1.nip.io"] {
                for request in [
                    rawRequest("GET", "/alerts/recent", headers: [("Host", host)], port: port),
                    rawRequest(
                        "POST", "/v1/transactions", headers: [("Host", host), ("Content-Type", "application/json")],
                        body: transaction("h-\(host)", amount: 5), port: port),
                    webSocketUpgrade(port: port, headers: [("Host", host)]),
                ] {
                    let reply = try await rawExchange(port: port, request)
                    #expect(reply.status == 421, "\(host): \(reply)")
                }
            }
            for host in ["localhost:\(port)", "127.0.0.1:\(port)", "127.5.6.7", "[::1]:\(port)", "app.localhost", "LOCALHOST"] {
                let reply = try await rawExchange(
                    port: port, rawRequest("GET", "/alerts/recent", headers: [("Host", host)], port: port))
                #expect(reply.status == 200, "\(host): \(reply)")
            }
        }
        try await Fixture(configure: { $0.allowedHosts = ["cardwatch.internal", "*.fraud.example"] }).test(.live) { client in
            let port = try #require(client.port)
            for (host, status) in [("cardwatch.internal", 200), ("a.fraud.example", 200), ("fraud.example", 421), ("other", 421)]
            {
                let reply = try await rawExchange(port: port, rawRequest("GET", "/models", headers: [("Host", host)], port: port))
                #expect(reply.status == status, "\(host): \(reply)")
            }
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func browsersFromOtherOriginsCannotWriteOrOpenTheFeed() async throws {
        try await Fixture(configure: { $0.allowedOrigins = ["https://ops.example.com"] }).test(.live) { client in
            let port = try #require(client.port)
            func post(_ origin: String, _ id: String) async throws -> RawReply {
                try await rawExchange(
                    port: port,
                    rawRequest(
                        "POST", "/v1/transactions", headers: [("Origin", origin), ("Content-Type", "application/json")],
                        body: transaction(id, amount: 5), port: port))
            }
            let foreign = try await post("http://attacker.example", "o1")
            #expect(foreign.status == 403, "\(foreign)")
            let sameOrigin = try await post("http://127.0.0.1:\(port)", "o2")
            #expect(sameOrigin.status == 200 && sameOrigin.headers["access-control-allow-origin"] == nil, "\(sameOrigin)")
            let allowed = try await post("https://ops.example.com", "o3")
            #expect(allowed.status == 200 && allowed.headers["access-control-allow-origin"] == "https://ops.example.com")
            // The allowed origin's preflight is answered; another's is refused.
            let preflight = try await rawExchange(
                port: port,
                rawRequest(
                    "OPTIONS", "/v1/transactions",
                    headers: [("Origin", "https://ops.example.com"), ("Access-Control-Request-Method", "POST")], port: port))
            #expect(
                preflight.status == 204 && preflight.headers["access-control-allow-headers"]?.contains("Authorization") == true)
            let foreignPreflight = try await rawExchange(
                port: port,
                rawRequest(
                    "OPTIONS", "/v1/transactions",
                    headers: [("Origin", "http://attacker.example"), ("Access-Control-Request-Method", "POST")], port: port))
            #expect(foreignPreflight.status == 403)
            // The live feed: a page elsewhere cannot open it; the server's own page and the allowed origin can.
            let stolen = try await rawExchange(
                port: port, webSocketUpgrade(port: port, headers: [("Origin", "http://attacker.example")]))
            #expect(stolen.status == 403, "\(stolen)")
            for origin in ["http://127.0.0.1:\(port)", "https://ops.example.com"] {
                let opened = try await rawExchange(port: port, webSocketUpgrade(port: port, headers: [("Origin", origin)]))
                #expect(opened.status == 101, "\(origin): \(opened)")
            }
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func withATokenTheLiveFeedNeedsIt() async throws {
        let fixture = try Fixture(token: "s3cret", configure: { $0.limits.streamTokenWait = .milliseconds(500) })
        let received = Messages()
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let wrong = try await rawExchange(
                port: port, webSocketUpgrade(port: port, headers: [("Authorization", "Bearer nope")]))
            #expect(wrong.status == 401, "\(wrong)")
            // No token at all: closed with 1008 (policy violation) once the wait for a first message is over.
            let silent = try await client.ws("/alerts/stream") { inbound, _, _ in
                for try await _ in inbound.messages(maxSize: 1 << 16) { received.add("unexpected message") }
            }
            #expect(silent?.closeCode == .policyViolation, "\(String(describing: silent))")
            let guessed = try await client.ws("/alerts/stream") { inbound, outbound, _ in
                try await outbound.write(.text("Bearer guess"))
                for try await _ in inbound.messages(maxSize: 1 << 16) { received.add("unexpected message") }
            }
            #expect(guessed?.closeCode == .policyViolation)
            // The token as the first message (what the dashboard sends), and as a header: alerts.
            for header in [false, true] {
                var configuration = WebSocketClientConfiguration()
                if header { configuration.additionalHeaders = [.authorization: "Bearer s3cret"] }
                try await client.ws("/alerts/stream", configuration: configuration) { inbound, outbound, _ in
                    if !header { try await outbound.write(.text("s3cret")) }
                    let post = Task {
                        while fixture.feedSubscribers == 0 { try await Task.sleep(for: .milliseconds(5)) }
                        let request = rawRequest(
                            "POST", "/v1/transactions",
                            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer s3cret")],
                            body: transaction("tok-\(header)", amount: 5_000), port: port)
                        return try await rawExchange(port: port, request).status
                    }
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        if case .text(let text) = message {
                            received.add(text)
                            break
                        }
                    }
                    _ = try await post.value
                }
            }
        }
        let all = received.all
        #expect(all.count == 2 && all[0].contains("tok-false") && all[1].contains("tok-true"), "\(all)")
    }

    @Test func tokensCompareInConstantTimeAndExactly() {
        let expected = Array("Bearer s3cret".utf8)
        #expect(AccessPolicy.constantTimeEquals("Bearer s3cret", expected))
        for other in ["", "Bearer", "Bearer s3cre", "Bearer s3cret ", "Bearer s3creT", "bearer s3cret", "Bearer s3cret\u{0}"] {
            #expect(!AccessPolicy.constantTimeEquals(other, expected), "\(other)")
        }
    }
}

/// Issue 14, item 9: with `--read-token`, reads need it (or the write token); the dashboard
/// page, the OpenAPI document and its page stay open.
@Suite struct ReadTokenTests {
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func readsNeedTheReadTokenExceptThePagesAndTheDocument() async throws {
        let fixture = try Fixture(token: "writer", configure: { $0.readToken = "reader" })
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let closed = [
                "/alerts/recent", "/alerts/t1", "/alerts/card/card_1", "/stats/summary", "/stats/timeseries",
                "/pipeline/health", "/pipeline/alerts", "/models", "/metrics",
            ]
            for path in closed {
                let none = try await rawExchange(port: port, rawRequest("GET", path, port: port))
                #expect(none.status == 401 && none.headers["www-authenticate"] == "Bearer", "\(path): \(none)")
                let wrong = try await rawExchange(
                    port: port, rawRequest("GET", path, headers: [("Authorization", "Bearer nope")], port: port))
                #expect(wrong.status == 401, "\(path): \(wrong)")
                for token in ["reader", "writer"] {
                    let reply = try await rawExchange(
                        port: port, rawRequest("GET", path, headers: [("Authorization", "Bearer \(token)")], port: port))
                    #expect(reply.status != 401 && reply.status.map { $0 < 500 } == true, "\(path) with \(token): \(reply)")
                }
            }
            for path in ["/", "/openapi.json", "/docs"] {
                let reply = try await rawExchange(port: port, rawRequest("GET", path, port: port))
                #expect(reply.status == 200, "\(path): \(reply)")
            }
            // The read token does not write.
            let write = try await rawExchange(
                port: port,
                rawRequest(
                    "POST", "/v1/transactions",
                    headers: [("Authorization", "Bearer reader"), ("Content-Type", "application/json")],
                    body: transaction("r1", amount: 5), port: port))
            #expect(write.status == 401)
            // The live feed takes the read token.
            let feed = try await rawExchange(
                port: port, webSocketUpgrade(port: port, headers: [("Authorization", "Bearer reader")]))
            #expect(feed.status == 101)
        }
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 1))) func theDashboardAsksForTheTokenAndKeepsItForTheSession() async throws {
        try await Fixture(configure: { $0.readToken = "reader" }).test(.live) { client in
            let port = try #require(client.port)
            let page = try await rawExchange(port: port, rawRequest("GET", "/", port: port)).body
            #expect(page.contains("sessionStorage.setItem('cardwatch-token'"))
            #expect(!page.contains("localStorage"))
            #expect(page.contains("ws.send(token())"))  // the token as the live feed's first message
        }
    }
}
