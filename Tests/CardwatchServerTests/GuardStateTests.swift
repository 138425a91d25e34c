import Foundation
import HTTPTypes
import Testing

@testable import CardwatchServer

/// The connection guards' state machines, without sockets.
@Suite struct ConnectionTimelineTests {
    var limits: HTTPLimits {
        var l = HTTPLimits()
        l.headerTimeout = .seconds(10)
        l.idleTimeout = .seconds(30)
        l.requestTimeout = .seconds(60)
        return l
    }
    static let s: UInt64 = 1_000_000_000

    @Test func aNewConnectionHasTheHeaderTimeoutFromItsAcceptance() {
        var t = ConnectionTimeline(acceptedAt: 5 * Self.s)
        #expect(t.deadline(limits)! == (15 * Self.s, .header))
        #expect(t.isEvictable && !t.receivedSinceAnswer)
        t.bytesArrived(at: 9 * Self.s)  // a slowloris byte does not move the deadline
        #expect(t.deadline(limits)! == (15 * Self.s, .header) && t.receivedSinceAnswer)
    }

    @Test func aRequestMovesFromHeadToBodyToAnswerToIdle() {
        var t = ConnectionTimeline(acceptedAt: 0)
        t.bytesArrived(at: 1 * Self.s)
        t.headReceived(at: 2 * Self.s)
        #expect(t.deadline(limits)! == (60 * Self.s, .request), "the whole request from its first byte (the acceptance)")
        #expect(!t.isEvictable)
        t.requestEnded()
        #expect(t.deadline(limits) == nil, "the server is working: no deadline")
        #expect(!t.isEvictable)
        t.answerEnded(at: 3 * Self.s)
        #expect(t.deadline(limits)! == (33 * Self.s, .idle) && t.isEvictable && !t.receivedSinceAnswer)
        t.bytesArrived(at: 40 * Self.s)
        #expect(t.deadline(limits)! == (50 * Self.s, .header), "the next head from its first byte")
        t.headReceived(at: 41 * Self.s)
        #expect(t.deadline(limits)! == (100 * Self.s, .request))
    }

    @Test func anEarlyAnswerLeavesTheBodyDeadlineUntilTheBodyEnds() {
        var t = ConnectionTimeline(acceptedAt: 0)
        t.headReceived(at: 1 * Self.s)
        t.answerEnded(at: 2 * Self.s)  // a 413 before the body is in
        #expect(!t.isEvictable && t.deadline(limits)!.expiry == .request)
        t.requestEnded()
        #expect(t.isEvictable && t.deadline(limits)! == (32 * Self.s, .idle))
    }

    @Test func webSocketsAndClosingConnectionsHaveNoHTTPDeadline() {
        var t = ConnectionTimeline(acceptedAt: 0)
        t.headReceived(at: 0)
        t.upgraded()
        #expect(t.deadline(limits) == nil && !t.isEvictable)
        var c = ConnectionTimeline(acceptedAt: 0)
        c.closing()
        #expect(c.deadline(limits) == nil && !c.isEvictable)
    }

    @Test func hugeTimeoutsSaturate() {
        var l = limits
        l.idleTimeout = .seconds(Int64.max)
        var t = ConnectionTimeline(acceptedAt: UInt64.max - 5)
        t.headReceived(at: UInt64.max - 5)
        t.requestEnded()
        t.answerEnded(at: UInt64.max - 1)
        #expect(t.deadline(l)! == (UInt64.max, .idle))
    }
}

@Suite struct RequestGuardStateTests {
    let problem = Problem(.badRequest, "Bad Request", detail: "x")

    @Test func aMalformedFirstRequestIsAnsweredAtOnce() {
        var s = RequestGuardState()
        #expect(s.answer(problem, ifIdleOnly: false) == .send)
        #expect(s.write(.head) == .fail, "nothing after the guard's answer")
        #expect(s.head(refused: false, upgrade: false) == .drop)
    }

    @Test func anAnswerWaitsForTheServersAnswersToEarlierRequests() {
        var s = RequestGuardState()
        #expect(s.head(refused: false, upgrade: false) == .pass)
        #expect(s.end() == .pass)
        #expect(s.head(refused: false, upgrade: false) == .pass)
        #expect(s.end() == .pass)
        // A third request does not parse while the first two are being answered.
        #expect(s.answer(problem, ifIdleOnly: false) == .wait)
        #expect(s.body() == .drop)
        #expect(s.write(.head) == .pass && s.write(.body) == .pass && s.write(.end) == .pass)
        #expect(s.write(.head) == .pass)
        #expect(s.write(.end) == .passThenAnswer(problem))
        #expect(s.write(.end) == .fail)
    }

    @Test func aBodyCutShortIsAnsweredWithoutWaitingForItself() {
        var s = RequestGuardState()
        #expect(s.head(refused: false, upgrade: false) == .pass)
        #expect(s.body() == .pass)
        #expect(s.inRequest)
        #expect(s.answer(problem, ifIdleOnly: false) == .send)
    }

    @Test func aResponseBeingWrittenIsNeverInterrupted() {
        var s = RequestGuardState()
        _ = s.head(refused: false, upgrade: false)
        _ = s.end()
        #expect(s.write(.head) == .pass)
        #expect(s.answer(problem, ifIdleOnly: true) == .close, "a timeout does not wait")
        var t = RequestGuardState()
        _ = t.head(refused: false, upgrade: false)
        _ = t.end()
        _ = t.write(.head)
        #expect(t.answer(problem, ifIdleOnly: false) == .wait)
        #expect(t.write(.end) == .passThenAnswer(problem))
    }

    @Test func onlyTheFirstRequestCanBecomeAWebSocket() {
        var s = RequestGuardState()
        #expect(s.awaitsFirstRequest)
        #expect(s.head(refused: false, upgrade: true) == .pass && s.passthrough)
        var t = RequestGuardState()
        _ = t.head(refused: false, upgrade: false)
        _ = t.end()
        _ = t.write(.end)
        #expect(t.head(refused: false, upgrade: true) == .pass && !t.passthrough)
        var r = RequestGuardState()
        #expect(r.head(refused: true, upgrade: true) == .refuse && !r.passthrough && r.awaitsFirstRequest)
    }
}

@Suite struct RequestLineTrackerTests {
    static func feed(_ text: String, in pieces: Int, limit: Int = 100) -> RequestLineTracker {
        var tracker = RequestLineTracker(limit: limit)
        let bytes = Array(text.utf8)
        let size = max(1, bytes.count / pieces)
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + size)
            bytes[i..<end].withUnsafeBytes { tracker.consume($0) }
            i = end
        }
        return tracker
    }

    @Test(arguments: [1, 3, 17, 1_000])
    func aLongRequestLineIsTellingEvenAcrossReads(pieces: Int) {
        let long = "GET /" + String(repeating: "u", count: 500)
        #expect(Self.feed(long, in: pieces).sawLongRequestLine)
        #expect(Self.feed(long + " HTTP/1.1\r\nHost: x\r\n", in: pieces).sawLongRequestLine)
        #expect(!Self.feed("GET /short HTTP/1.1\r\nX-Big: " + String(repeating: "v", count: 500), in: pieces).sawLongRequestLine)
        #expect(
            !Self.feed("GET /short HTTP/1.1\r\n" + String(repeating: "X-H: v\r\n", count: 200), in: pieces).sawLongRequestLine)
        #expect(!Self.feed("{\"json\": \"" + String(repeating: "b", count: 500), in: pieces).sawLongRequestLine)
    }

    @Test func resetForgetsEarlierLines() {
        var tracker = Self.feed("GET /" + String(repeating: "u", count: 500) + "\r\n", in: 1)
        tracker.reset()
        #expect(!tracker.sawLongRequestLine)
    }
}

@Suite struct AccessPolicyTests {
    static func policy(host: String = "127.0.0.1", hosts: [String] = [], origins: [String] = []) -> AccessPolicy {
        var s = ServerSettings()
        s.host = host
        s.allowedHosts = hosts
        s.allowedOrigins = origins
        return AccessPolicy(settings: s)
    }

    @Test func loopbackServersAnswerLoopbackNamesOnly() {
        let p = Self.policy()
        for ok in [nil, "localhost", "localhost:8080", "LocalHost.", "127.0.0.1:1", "127.9.9.9", "[::1]:8080", "a.localhost"] {
            #expect(p.hostAllowed(ok), "\(ok ?? "nil")")
        }
        for bad in ["example.com", "localhost.example.com", "127.0.0.1.example.com", "10.0.0.1", "[::2]", "127.0.0.256"] {
            #expect(!p.hostAllowed(bad), "\(bad)")
        }
        #expect(Self.policy(hosts: ["cw.internal"]).hostAllowed("cw.internal:8080"))
        #expect(Self.policy(hosts: ["*"]).hostAllowed("anything"))
    }

    @Test func otherServersAnswerAnyHostUnlessNamed() {
        #expect(Self.policy(host: "0.0.0.0").hostAllowed("cardwatch.example.com"))
        let named = Self.policy(host: "0.0.0.0", hosts: ["*.example.com"])
        #expect(named.hostAllowed("a.example.com") && named.hostAllowed("10.1.2.3:8080") && named.hostAllowed("[fe80::1]"))
        #expect(!named.hostAllowed("example.com") && !named.hostAllowed("evil.test"))
    }

    @Test func originsAreTheServersOwnOrNamed() {
        let p = Self.policy(origins: ["https://ops.example.com/"])
        #expect(p.originCheck(nil, host: "localhost:8080") == nil)
        #expect(p.originCheck("http://localhost:8080", host: "localhost:8080") == nil)
        #expect(p.originCheck("ws://localhost", host: "localhost:8080") == nil, "what WebSocket libraries send")
        #expect(p.originCheck("https://OPS.example.com", host: "localhost:8080") == .success(true))
        for foreign in [
            "http://localhost:9090", "http://localhost", "null", "http://evil.test", "https://ops.example.com.evil.test",
        ] {
            if case .failure(let problem)? = p.originCheck(foreign, host: "localhost:8080") {
                #expect(problem.status == .forbidden)
            } else {
                Issue.record("\(foreign) allowed")
            }
        }
    }

    @Test func contentTypesThatAreJSON() {
        for ok in ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/x-ndjson"] {
            #expect(AccessPolicy.acceptsContentType(ok), "\(ok)")
        }
        for bad in [nil, "", "text/plain", "application/jsonx", "application/x-www-form-urlencoded", "multipart/form-data"] {
            #expect(!AccessPolicy.acceptsContentType(bad), "\(bad ?? "nil")")
        }
    }
}
