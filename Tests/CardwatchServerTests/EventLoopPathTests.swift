import CardwatchModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Testing

/// One request of a random session.
struct Call: Sendable, CustomStringConvertible {
    var method: HTTPRequest.Method
    var uri: String
    var authorization: String?
    var body: String

    var description: String { "\(method.rawValue) \(uri) [\(authorization ?? "-")] \(body.prefix(60))" }

    /// As HTTP/1.1 bytes on a connection.
    var raw: [UInt8] {
        var head = "\(method.rawValue) \(uri) HTTP/1.1\r\nHost: localhost\r\n"
        if let authorization { head += "Authorization: \(authorization)\r\n" }
        if method == .post { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        return Array((head + "\r\n" + body).utf8)
    }

    var headers: HTTPFields {
        var h: HTTPFields = [:]
        if let authorization { h[.authorization] = authorization }
        if method == .post {
            h[.contentLength] = String(body.utf8.count)
            h[.contentType] = "application/json"
        }
        return h
    }
}

/// An answer as the tests compare it: status, content type, the JSON body without the
/// fields that depend on timing.
struct Answer: Equatable, Sendable, CustomStringConvertible {
    var status: Int
    var contentType: String?
    var body: String

    init(status: Int, contentType: String?, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        if let json = try? JSONSerialization.jsonObject(with: Data(body)),
            let data = try? JSONSerialization.data(withJSONObject: Self.timeless(json), options: [.sortedKeys])
        {
            self.body = String(decoding: data, as: UTF8.self)
        } else {
            self.body = String(decoding: body, as: UTF8.self)
        }
    }

    static func timeless(_ value: Any) -> Any {
        if let o = value as? [String: Any] {
            return o.filter { $0.key != "latency_ms" && $0.key != "decided_at" }.mapValues(timeless)
        }
        if let a = value as? [Any] { return a.map(timeless) }
        return value
    }

    var description: String { "\(status) \(contentType ?? "-") \(body)" }
}

/// A random session against a server with a token and a 4 KiB body limit: new
/// transactions, repeats, invalid and malformed ones, batches, other routes, missing and
/// wrong tokens, bodies over the limit.
func session(seed: UInt64, count: Int) -> [Call] {
    var rng = SplitMix(seed: seed)
    let token = "Bearer s3cret"
    var calls: [Call] = []
    var sent: [String] = []
    for k in 0..<count {
        let amount = [5.0, 60, 950, 1_500, 4_000][Int.random(in: 0..<5, using: &rng)]
        let card = "card_\(Int.random(in: 0..<3, using: &rng))"
        var call = Call(method: .post, uri: "/v1/transactions", authorization: token, body: "")
        switch Int.random(in: 0..<20, using: &rng) {
        case 0..<9:
            call.body = transaction("n\(k)", amount: amount, card: card, seconds: k)
            sent.append("n\(k)")
        case 9..<11 where !sent.isEmpty:
            call.body = transaction(sent[Int.random(in: 0..<sent.count, using: &rng)], amount: amount, seconds: k)
        case 11:
            call.body = #"{"transaction_id":"bad\#(k)","card_id":"c","amount":-1,"timestamp":"2026-11-25T00:00:00Z"}"#
        case 12:
            // Malformed, not an array, empty, and one object over several lines (JSON Lines of broken halves).
            call.body =
                [
                    #"{"transaction_id": "#, "[1, 2", " ",
                    transaction("p\(k)", amount: amount).replacingOccurrences(of: ",", with: ",\n"),
                ][k % 4]
        case 13:
            call.body = "[\(transaction("a\(k)", amount: amount, seconds: k)), \(transaction("b\(k)", amount: 7, seconds: k))]"
        case 14:
            call.authorization = Bool.random(using: &rng) ? nil : "Bearer wrong"
            call.body = transaction("t\(k)", amount: amount, seconds: k)
        case 15:
            call.body = String(repeating: " ", count: 4_200) + transaction("big\(k)", amount: amount)
        case 16:
            call.uri = "/predict"
            call.body =
                #"{"transaction_id":"p\#(k)","user_id":"\#(card)","amount":\#(amount),"merchant_id":"m_2","timestamp":"2026-11-25T01:00:00Z"}"#
        case 17 where !sent.isEmpty:
            call = Call(method: .get, uri: "/alerts/\(sent[Int.random(in: 0..<sent.count, using: &rng)])", body: "")
        case 18:
            call = Call(method: .get, uri: ["/nowhere", "/v1/transactions", "/alerts/recent?limit=3"][k % 3], body: "")
        default:
            // A transaction as JSON Lines with blank lines around it: still a single one.
            call.body = "\n" + transaction("l\(k)", amount: amount, card: card, seconds: k) + "\n\n"
            sent.append("l\(k)")
        }
        calls.append(call)
    }
    return calls
}

/// A plain HTTP/1.1 connection: requests written as given (several at once when pipelined),
/// answers read back in order.
struct RawConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func open(port: Int) async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return RawConnection(channel: channel)
    }

    /// Sends the calls, each group in one write, and returns the answers with their headers.
    func exchange(_ groups: [[Call]]) async throws -> [(Answer, [String: String])] {
        try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var buffer = ByteBuffer()
            var answers: [(Answer, [String: String])] = []
            for group in groups {
                try await outbound.write(ByteBuffer(bytes: group.flatMap(\.raw)))
                for _ in group {
                    while true {
                        if let parsed = Self.parse(&buffer) {
                            answers.append(parsed)
                            break
                        }
                        guard var more = try await iterator.next() else {
                            throw CancellationError()  // the server closed the connection early
                        }
                        buffer.writeBuffer(&more)
                    }
                }
            }
            return answers
        }
    }

    /// One whole response off the front of `buffer`, or nil when it is not all there yet.
    static func parse(_ buffer: inout ByteBuffer) -> (Answer, [String: String])? {
        let bytes = Array(buffer.readableBytesView)
        guard let end = bytes.indices.dropLast(3).first(where: { bytes[$0...$0 + 3] == [13, 10, 13, 10] }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard bytes.count >= end + 4 + length else { return nil }
        buffer.moveReaderIndex(forwardBy: end + 4 + length)
        let body = Array(bytes[(end + 4)..<(end + 4 + length)])
        return (Answer(status: status, contentType: headers["content-type"], body: body), headers)
    }
}

@Suite struct EventLoopPathTests {
    /// The event loop's answers (`DecisionChannelHandler`, requests pipelined in random
    /// groups on one connection) against the router's, request by request, for random
    /// sessions: the same statuses, content types and bodies, in request order.
    @Test(.timeLimit(.minutes(2)), arguments: [1, 2, 3] as [UInt64])
    func theEventLoopAnswersAsTheRouterDoes(seed: UInt64) async throws {
        let calls = session(seed: seed, count: 90)
        let expected = try await Fixture(token: "s3cret", maxBody: 4_096).test(.router) { client in
            var expected: [Answer] = []
            for call in calls {
                let r = try await client.execute(
                    uri: call.uri, method: call.method, headers: call.headers,
                    body: call.method == .post ? body(call.body) : nil)
                expected.append(
                    Answer(
                        status: Int(r.status.code), contentType: r.headers[.contentType], body: Array(r.body.readableBytesView)))
            }
            return expected
        }
        var rng = SplitMix(seed: seed + 100)
        var cuts: [[Call]] = []
        var i = 0
        while i < calls.count {
            let n = Int.random(in: 1...4, using: &rng)
            cuts.append(Array(calls[i..<min(calls.count, i + n)]))
            i += n
        }
        let groups = cuts
        let fixture = try Fixture(token: "s3cret", maxBody: 4_096)
        try await fixture.test(.live) { client in
            let port = try #require(client.port)
            let answers = try await RawConnection.open(port: port).exchange(groups)
            #expect(answers.count == calls.count)
            for (k, (answer, headers)) in answers.enumerated() where k < expected.count {
                #expect(answer == expected[k], "request \(k): \(calls[k])")
                #expect(headers["server"] == "cardwatch" && headers["date"]?.hasSuffix(" GMT") == true)
            }
            #expect(expected.contains { $0.status == 200 } && expected.contains { $0.status == 422 })
            #expect(expected.contains { $0.body.contains("\"duplicate\":true") })
            #expect(Set(expected.map(\.status)).isSuperset(of: [200, 400, 401, 404, 405, 413, 422]))
        }
    }

    /// The answer written on the event loop carries what Hummingbird's would.
    @Test(.timeLimit(.minutes(1))) func theEventLoopsAnswerHasTheServersHeaders() async throws {
        try await Fixture().test(.live) { client in
            let port = try #require(client.port)
            let call = Call(method: .post, uri: "/v1/transactions", body: transaction("h1", amount: 3_000))
            let answers = try await RawConnection.open(port: port).exchange([[call]])
            let (answer, headers) = try #require(answers.first)
            #expect(answer.status == 200 && answer.contentType == "application/json")
            #expect(answer.body.contains("\"transaction_id\":\"h1\"") && answer.body.contains("\"risk_tier\":\"critical\""))
            #expect(headers["content-length"].flatMap { Int($0) } ?? 0 > 0)
            let date = try #require(headers["date"])
            let parser = DateFormatter()
            parser.locale = Locale(identifier: "en_US_POSIX")
            parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            parser.timeZone = TimeZone(identifier: "GMT")
            let sent = try #require(parser.date(from: date), "an IMF-fixdate: \(date)")
            #expect(abs(sent.timeIntervalSinceNow) < 60)
            // And through the test client (which speaks HTTP itself), the same decision.
            let again = try await client.execute(
                uri: "/v1/transactions", method: .post, headers: jsonContent, body: body(transaction("h2", amount: 3_000)))
            #expect(again.status == .ok && json(again)["risk_tier"] as? String == "critical")
        }
    }
}
