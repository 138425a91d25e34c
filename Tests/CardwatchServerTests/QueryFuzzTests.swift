import CardwatchModel
import CardwatchServer
import Foundation
import HummingbirdTesting
import Testing

/// Issue 14, item 1: no query parameter, path segment or header can crash the server. Every
/// parameter of every route is taken from the OpenAPI document (which a test holds to the
/// router's routes), so a new one is fuzzed as soon as it is documented; random and extreme
/// values (seeded) go to a live server over real sockets, each answer must be 2xx or 4xx,
/// and the server must still answer afterwards.
@Suite struct QueryFuzzTests {
    /// A route of the document with its parameters.
    struct Operation {
        var method: String
        var path: String
        var query: [String]
        var pathParameters: [String]
    }

    static func operations() throws -> [Operation] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPI.document.utf8)) as? [String: Any])
        let shared = ((doc["components"] as? [String: Any])?["parameters"] as? [String: [String: Any]]) ?? [:]
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var operations: [Operation] = []
        for (path, item) in paths {
            for (method, op) in item {
                let parameters = ((op as? [String: Any])?["parameters"] as? [[String: Any]] ?? []).compactMap { p in
                    (p["$ref"] as? String).map { shared[String($0.split(separator: "/").last ?? "")] ?? [:] } ?? p
                }
                operations.append(
                    Operation(
                        method: method.uppercased(), path: path,
                        query: parameters.filter { $0["in"] as? String == "query" }.compactMap { $0["name"] as? String },
                        pathParameters: parameters.filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String }))
            }
        }
        return operations
    }

    /// Values that break naive parsers: overflows, signs, bases, units, encodings, lengths.
    static let extremes = [
        "", "0", "-0", "-1", "1", "+1", "1e308", "-1e308", "NaN", "inf", "0x10", "1_000", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "18446744073709551616", String(repeating: "9", count: 40),
        "999999999999999999d", "9223372036854775807s", "-9223372036854775808m", "106751991167300d", "1.5h", " 1m", "1m ",
        "m", "d", "%00", "%", "%zz", "%ff%fe", "%F0%9F%92%A5", "%E9", "a%00b", "..", "../..", "%2e%2e%2f", "é", "💥",
        String(repeating: "a", count: 3_000), String(repeating: "%41", count: 500),
    ]

    static func randomValue(_ rng: inout SplitMix) -> String {
        if Bool.random(using: &rng) { return extremes[Int.random(in: 0..<extremes.count, using: &rng)] }
        // A random printable or percent-encoded string of random length.
        let alphabet = Array("0123456789abcdefxyzSMHD-+.%_~!$&'()*,;=:@/?#[]")
        let count = Int.random(in: 0...24, using: &rng)
        return String((0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    /// Percent-encodes what cannot stand in a request target as it is.
    static func encoded(_ value: String, inPath: Bool) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~%!$'()*,;:@" + (inPath ? "" : "/?"))
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 3))) func everyQueryParameterOfEveryRouteWithRandomAndExtremeValues()
        async throws
    {
        let operations = try Self.operations()
        let documented = Set(operations.flatMap(\.query))
        #expect(documented.isSuperset(of: ["limit", "bucket", "window"]), "\(documented)")
        try await Fixture(token: "t0ken").test(.live) { client in
            let port = try #require(client.port)
            var rng = SplitMix(seed: 14)
            var failures: [String] = []
            var sent = 0
            for operation in operations where operation.path != "/alerts/stream" {
                // First every extreme value in every parameter (each round shifts them by one),
                // then random ones.
                for round in 0..<(Self.extremes.count + 25) {
                    func value(_ k: Int) -> String {
                        round < Self.extremes.count
                            ? Self.extremes[(round + k) % Self.extremes.count] : Self.randomValue(&rng)
                    }
                    var target = operation.path
                    for (k, name) in operation.pathParameters.enumerated() {
                        target = target.replacingOccurrences(of: "{\(name)}", with: Self.encoded(value(k), inPath: true))
                    }
                    // Every documented parameter, plus an undocumented one, some of them twice.
                    var names = operation.query + ["x\(round % 3)"]
                    if Bool.random(using: &rng), let again = operation.query.randomElement(using: &rng) { names.append(again) }
                    let query = names.enumerated().map { k, name in
                        "\(name)=\(Self.encoded(value(k + operation.pathParameters.count), inPath: false))"
                    }
                    target += "?" + query.joined(separator: "&")
                    var headers: [(String, String)] = [("Authorization", "Bearer t0ken")]
                    var body: String?
                    if operation.method == "POST" {
                        headers.append(("Content-Type", "application/json"))
                        body = [#"{"label":"fraud"}"#, "{}", "[]", Self.randomValue(&rng)][round % 4]
                    }
                    let reply = try await rawExchange(
                        port: port, rawRequest(operation.method, target, headers: headers, body: body, port: port))
                    sent += 1
                    let ok = reply.status.map { (200..<500).contains($0) || $0 == 503 } ?? false
                    if !ok { failures.append("\(operation.method) \(target.prefix(120)): \(reply)") }
                }
            }
            #expect(failures.isEmpty, "\(failures.count) of \(sent): \(failures.prefix(5))")
            let after = try await rawExchange(port: port, rawRequest("GET", "/openapi.json", port: port))
            #expect(after.status == 200, "the server answers afterwards")
        }
    }

    /// Header values a client controls, random and extreme, on the routes that read them.
    @Test(.timeLimit(.minutes(timeScale > 1 ? 10 : 2))) func headersWithRandomAndExtremeValues() async throws {
        try await Fixture(token: "t0ken").test(.live) { client in
            let port = try #require(client.port)
            var rng = SplitMix(seed: 15)
            let names = [
                "Content-Length", "Authorization", "Host", "Origin", "Content-Type", "Connection", "Expect", "Upgrade",
                "Transfer-Encoding", "Accept", "Cookie", "X-Forwarded-For",
            ]
            var failures: [String] = []
            for round in 0..<200 {
                let name = names[round % names.count]
                let value = Self.randomValue(&rng).replacingOccurrences(of: "\r", with: "").replacingOccurrences(
                    of: "\n", with: "")
                let method = round % 2 == 0 ? "POST" : "GET"
                let target = method == "POST" ? "/v1/transactions" : "/alerts/recent"
                var headers = [("Authorization", "Bearer t0ken"), ("Content-Type", "application/json")]
                headers.removeAll { $0.0 == name }
                headers.append((name, value))
                let body = method == "POST" ? transaction("h\(round)", amount: 5) : nil
                let reply = try await rawExchange(
                    port: port, rawRequest(method, target, headers: headers, body: body, port: port))
                let ok = reply.status.map { $0 < 500 || $0 == 503 } ?? reply.closed
                if !ok { failures.append("\(name): \(value.prefix(40)) → \(reply)") }
            }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            let after = try await rawExchange(port: port, rawRequest("GET", "/openapi.json", port: port))
            #expect(after.status == 200)
        }
    }
}
