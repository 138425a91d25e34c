import CardwatchCore
import CardwatchFeatures
import CardwatchPipeline
import CardwatchRedis
import CardwatchServer
import CardwatchStorage
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// `POST /predict?mode=online`: features from the online store's profiles, and an answer
/// whatever the store does.
@Suite struct OnlinePredictTests {
    static func predict(_ id: String, card: String, amount: Double, seconds: Int) -> ByteBuffer {
        let time = Timestamp(microseconds: 1_795_000_000_000_000 + Int64(seconds) * 1_000_000).rfc3339
        return body(
            #"{"transaction_id":"\#(id)","user_id":"\#(card)","amount":\#(amount),"merchant_id":"m_1","timestamp":"\#(time)"}"#)
    }

    @Test func aDecidedCardIsScoredFromItsProfileAndANewOneFromDefaults() async throws {
        let store = MemoryOnlineStore()
        let fixture = try Fixture(online: store)
        try await fixture.test { client in
            for (i, seconds) in [0, 60, 120].enumerated() {
                try await client.execute(
                    uri: "/v1/transactions", method: .post, headers: jsonContent,
                    body: body(transaction("t\(i)", amount: 20, seconds: seconds))
                ) { #expect($0.status == .ok) }
            }
            fixture.publisher?.flush()
            let profile = try await store.profiles(card: "card_1", merchant: "m_1", timeout: .seconds(1))
            #expect(profile.card?.transactionID == "t2" && profile.card?.features[.txCount5min] == 3)
            try await client.execute(
                uri: "/predict?mode=online", method: .post, headers: jsonContent,
                body: Self.predict("p1", card: "card_1", amount: 25, seconds: 150)
            ) {
                #expect($0.status == .ok)
                let d = json($0)
                #expect(d["features"] as? String == "online" && d["mode"] as? String == "online")
                #expect(d["transaction_id"] as? String == "p1")
            }
            try await client.execute(
                uri: "/predict?mode=online", method: .post, headers: jsonContent,
                body: Self.predict("p2", card: "card_never_seen", amount: 25, seconds: 150)
            ) { #expect(json($0)["features"] as? String == "new_card") }
            // Scoring online appends nothing: the stream never saw p1.
            #expect(try fixture.store.serving.decision(transactionID: "p1") == nil)
            #expect(try fixture.store.serving.decision(transactionID: "t2") != nil)
            try await client.execute(uri: "/metrics", method: .get) {
                let text = String(buffer: $0.body)
                #expect(text.contains(#"cardwatch_feature_cache_hits_total{result="hit"} 3"#), "\(text)")
                #expect(text.contains(#"cardwatch_feature_cache_hits_total{result="miss"} 2"#), "\(text)")
            }
        }
    }

    /// Redis away (nothing listening) and stalled (accepts, never answers): every answer is a
    /// 200 with `features: "fallback"`, the breaker opens after five failures and answers
    /// without waiting while open.
    // Bounded by the time limit (without the client's timeouts a stalled server would hang it),
    // not by timing each answer: the test process runs many cases at once on two cores.
    @Test(.timeLimit(.minutes(1)), arguments: ["closed", "stalled"])
    func anUnreachableStoreGivesTheFallbackAndOpensTheBreaker(_ how: String) async throws {
        let listener = try StalledSocket()
        defer { listener.close() }
        let port = how == "closed" ? try StalledSocket.closedPort() : listener.port
        let store = RedisOnlineStore(RedisClient(try RedisEndpoint.parse("redis://127.0.0.1:\(port)")))
        let breaker = CircuitBreaker(threshold: 5, openFor: .seconds(30))
        let fixture = try Fixture(online: store, breaker: breaker)
        try await fixture.test { client in
            for i in 0..<12 {
                try await client.execute(
                    uri: "/predict?mode=online", method: .post, headers: jsonContent,
                    body: Self.predict("f\(i)", card: "card_1", amount: 30, seconds: i)
                ) {
                    #expect($0.status == .ok)
                    #expect(json($0)["features"] as? String == "fallback")
                }
            }
            #expect(breaker.state == .open && breaker.timesOpened == 1)
            try await client.execute(uri: "/metrics", method: .get) {
                #expect(String(buffer: $0.body).contains(#"cardwatch_feature_cache_hits_total{result="fallback"} 12"#))
            }
        }
    }

    @Test func theModeIsCheckedAndOnlineNeedsAStore() async throws {
        try await Fixture().test { client in
            try await client.execute(
                uri: "/predict?mode=online", method: .post, headers: jsonContent,
                body: Self.predict("x", card: "c", amount: 1, seconds: 0)
            ) {
                #expect($0.status == .badRequest)
                #expect(String(buffer: $0.body).contains("--online-store"))
            }
            try await client.execute(
                uri: "/predict?mode=offline", method: .post, headers: jsonContent,
                body: Self.predict("x", card: "c", amount: 1, seconds: 0)
            ) { #expect($0.status == .badRequest) }
        }
    }
}

/// Redis away or stalled: every read fails within its timeout, never hangs, and the client
/// comes back by itself when the server does.
@Suite struct RedisFailureTests {
    static func oneCard() -> OnlineUpdate {
        var u = OnlineUpdate()
        u.cards = [
            CardProfile(
                cardID: "c", features: FeatureVector(), eventTime: Timestamp(microseconds: 0), location: nil, merchantID: "m",
                transactionID: "t", committedAt: 0)
        ]
        return u
    }

    @Test(.timeLimit(.minutes(1))) func nothingListeningFails() async throws {
        let port = try StalledSocket.closedPort()
        let store = RedisOnlineStore(RedisClient(try RedisEndpoint.parse("redis://127.0.0.1:\(port)")))
        await #expect(throws: (any Error).self) { try await store.profiles(card: "c", merchant: "m", timeout: .milliseconds(5)) }
        #expect(throws: (any Error).self) { try store.write(Self.oneCard()) }
    }

    /// A server that accepts and never answers: each read gives up after its 5 ms, and the
    /// waiting commands stay bounded.
    @Test(.timeLimit(.minutes(1))) func aStalledServerTimesOutAndTheWaitingStaysBounded() async throws {
        let listener = try StalledSocket()
        defer { listener.close() }
        let client = RedisClient(
            try RedisEndpoint.parse("redis://127.0.0.1:\(listener.port)"), maxInFlight: 8, stallAfter: .milliseconds(50))
        defer { client.close() }
        let store = RedisOnlineStore(client)
        // One after another, more than the eight allowed to wait: each gives up after its 5 ms, and
        // the stalled connection is closed 50 ms on (its commands no longer wait), so none is refused.
        for _ in 0..<8 {
            await #expect {
                _ = try await store.profiles(card: "c", merchant: "m", timeout: .milliseconds(5))
            } throws: { "\($0)".contains("did not answer within 5 ms") }
            try await Task.sleep(for: .milliseconds(150))
        }
        // Ten at once, two commands each: past the eight allowed to wait, refused at once.
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do {
                        _ = try await store.profiles(card: "c", merchant: "m", timeout: .seconds(2))
                        return "answered"
                    } catch { return "\(error)" }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0.contains("more than 8 commands wait") }.count >= 6, "\(outcomes)")
        #expect(!outcomes.contains("answered"))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CARDWATCH_TEST_REDIS"] != nil))
    func theClientReconnectsAfterTheConnectionDrops() async throws {
        let client = RedisClient(try RedisEndpoint.parse(ProcessInfo.processInfo.environment["CARDWATCH_TEST_REDIS"]!))
        defer { client.close() }
        #expect(try await client.send([[Array("PING".utf8)]], timeout: .seconds(2)) == [.simple("PONG")])
        // Another connection kills this one (by its id); the next command opens a new connection.
        let id = try await client.send([[Array("CLIENT".utf8), Array("ID".utf8)]], timeout: .seconds(2))
        guard case .integer(let n) = id.first else {
            Issue.record("CLIENT ID: \(id)")
            return
        }
        let other = RedisClient(try RedisEndpoint.parse(ProcessInfo.processInfo.environment["CARDWATCH_TEST_REDIS"]!))
        defer { other.close() }
        let killed = try await other.send(
            [[Array("CLIENT".utf8), Array("KILL".utf8), Array("ID".utf8), Array(String(n).utf8)]], timeout: .seconds(2))
        #expect(killed == [.integer(1)])
        try await Task.sleep(for: .milliseconds(100))
        var answered = false
        for _ in 0..<3 where !answered {
            answered = (try? await client.send([[Array("PING".utf8)]], timeout: .seconds(2))) == [.simple("PONG")]
        }
        #expect(answered)
    }
}

/// A loopback socket that listens and never accepts (connections complete; nothing answers).
final class StalledSocket: Sendable {
    let fd: Int32
    let port: Int
    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw RedisError("cannot listen on loopback") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }
    func close() { _ = Glibc.close(fd) }
    static func closedPort() throws -> Int {
        let s = try StalledSocket()
        s.close()
        return s.port
    }
}
