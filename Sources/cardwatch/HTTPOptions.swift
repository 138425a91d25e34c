import ArgumentParser
import CardwatchServer
import Foundation
import Logging

/// The HTTP API's options, the same for `run` and `serve`.
struct HTTPOptions: ParsableArguments {
    @Option(help: "Address the HTTP API listens on.") var host = "127.0.0.1"
    @Option(help: "Port of the HTTP API.") var port = 8080
    @Option(help: "Require Authorization: Bearer TOKEN on writes (POST); default: the CARDWATCH_TOKEN variable, if set.")
    var token: String?
    @Option(help: "Largest accepted request body, in bytes (larger: 413).") var maxBodyBytes = 1 << 20
    @Option(
        help:
            "Require Authorization: Bearer TOKEN (this one or --token) on reads too: alerts, cards, stats, pipeline, models, metrics, the live feed; the dashboard page, /openapi.json and /docs stay open. Default: the CARDWATCH_READ_TOKEN variable, if set."
    )
    var readToken: String?
    @Option(
        help:
            "Origins (scheme://host:port, comma-separated; * for any) besides the server's own that may open the live feed and write from a browser (default: none, same origin only)."
    )
    var allowedOrigins: String?
    @Option(
        help:
            "Host names (comma-separated; *.example.com for subdomains; * for any) answered besides the defaults: loopback names when bound to loopback, any name otherwise (listing names then restricts to them and IP addresses). Protects against DNS rebinding."
    )
    var allowedHosts: String?
    @Option(help: "Seconds a keep-alive connection may wait for its next request.") var idleTimeout = 30.0
    @Option(help: "Seconds a request's head may take to arrive (from the connection or its first byte).")
    var headerTimeout = 10.0
    @Option(help: "Seconds a whole request (head and body) may take to arrive.") var requestTimeout = 60.0
    @Option(
        help:
            "Open HTTP connections at most; at the limit the longest-idle one is closed to make room, or with all busy the new one gets 503 (default: the open-file limit, raised to its hard limit at start, less a reserve)."
    )
    var maxConnections: Int?
    @Option(help: "Longest request target (path and query), in bytes (longer: 414).") var maxUrlBytes = 8 * 1024
    @Option(help: "Largest request head (URL, header names and values), in bytes (larger: 431).") var maxHeaderBytes = 32 * 1024
    @Option(help: "Most header fields in a request (more: 431).") var maxHeaders = 100
    @Option(help: "Most records in one POST /v1/transactions (more: 413, before anything is written).") var maxRecords = 10_000
    @Option(help: "Dead letters a client address may cause per second (beyond its burst: 429 with Retry-After).")
    var deadLetterRate = 100.0
    @Option(help: "Dead letters a client address may cause at once (a request with more invalid records: 422).")
    var deadLetterBurst = 1_000

    func validate() throws {
        if !(0...65_535).contains(port) { throw ValidationError("--port must be within 0…65535") }
        if maxBodyBytes < 1_024 { throw ValidationError("--max-body-bytes must be at least 1024") }
        for (name, value) in [
            ("--idle-timeout", idleTimeout), ("--header-timeout", headerTimeout), ("--request-timeout", requestTimeout),
        ]
        where !(value > 0 && value <= 86_400) {
            throw ValidationError("\(name) must be in (0, 86400] seconds")
        }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if maxUrlBytes < 256 { throw ValidationError("--max-url-bytes must be at least 256") }
        if maxHeaderBytes < 1_024 { throw ValidationError("--max-header-bytes must be at least 1024") }
        if maxHeaders < 8 { throw ValidationError("--max-headers must be at least 8") }
        if maxRecords < 1 { throw ValidationError("--max-records must be at least 1") }
        if !(deadLetterRate >= 0) || deadLetterBurst < 1 {
            throw ValidationError("--dead-letter-rate must be ≥ 0 and --dead-letter-burst at least 1")
        }
    }

    /// The HTTP server's settings from the command's options (the open-file limit raised first).
    func serverSettings(logger: Logger) -> ServerSettings {
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.token = token ?? ProcessInfo.processInfo.environment["CARDWATCH_TOKEN"]
        settings.maxBodyBytes = maxBodyBytes
        settings.readToken = readToken ?? ProcessInfo.processInfo.environment["CARDWATCH_READ_TOKEN"]
        settings.allowedOrigins = Self.list(allowedOrigins)
        settings.allowedHosts = Self.list(allowedHosts)
        settings.maxRecords = maxRecords
        settings.deadLetters = DeadLetterAllowance(perSecond: deadLetterRate, burst: deadLetterBurst)
        // Every connection is a descriptor: the soft limit goes up to the hard one first.
        let files = HTTPLimits.raiseOpenFileLimit()
        settings.limits.maxConnections = maxConnections ?? HTTPLimits.defaultMaxConnections()
        settings.limits.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        settings.limits.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        settings.limits.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
        settings.limits.maxURLBytes = maxUrlBytes
        settings.limits.maxHeaderBytes = maxHeaderBytes
        settings.limits.maxHeaders = maxHeaders
        logger.info("HTTP: at most \(settings.limits.maxConnections) connections (open-file limit \(files))")
        return settings
    }

    /// A comma-separated option as its items.
    static func list(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
