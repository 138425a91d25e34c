import Foundation
import Hummingbird

/// Who may ask what, checked the same way by the router's middleware, the event-loop fast
/// path (`DecisionChannelHandler`) and the WebSocket upgrade:
///
/// - Host (DNS rebinding): bound to a loopback address, only loopback names (`localhost`,
///   `*.localhost`, `127.x.x.x`, `[::1]`) and `allowedHosts` are answered; bound to any other
///   address, every Host unless `allowedHosts` is given, then IP literals and those names.
///   A request without Host (no browser sends one) is answered. Others get 421.
/// - Origin (browsers): a WebSocket upgrade or a write carrying an Origin must come from the
///   same origin (the Host it was sent to) or one of `allowedOrigins` (`*`: any); 403
///   otherwise. An allowed other origin gets CORS headers and its preflights answered.
/// - Tokens: with `writeToken`, every POST needs it; with `readToken`, every read but the
///   dashboard page, `/openapi.json` and `/docs` needs the read or the write token; the
///   WebSocket needs the read token (or the write token) when one is set, else the write
///   token when that is set. Compared in constant time. 401 otherwise.
/// - Content-Type: a POST with a body must say `application/json` or `application/x-ndjson`
///   (415): a page on another site cannot send those without a CORS preflight, which is only
///   answered for `allowedOrigins`.
public struct AccessPolicy: Sendable {
    var writeToken: [UInt8]?
    var readToken: [UInt8]?
    /// Lowercased origins (`scheme://host[:port]`), or `*`.
    var allowedOrigins: [String]
    /// Lowercased host names (`*.example.com` for subdomains), or `*`.
    var allowedHosts: [String]
    var loopbackOnly: Bool

    public init(settings: ServerSettings) {
        writeToken = settings.token.map { Array("Bearer \($0)".utf8) }
        readToken = settings.readToken.map { Array("Bearer \($0)".utf8) }
        allowedOrigins = settings.allowedOrigins.map { Self.normalizedOrigin($0) }
        allowedHosts = settings.allowedHosts.map { $0.lowercased() }
        loopbackOnly = Self.isLoopback(settings.host)
    }

    /// Paths readable without the read token.
    static let openPaths: Set<String> = ["/", "/openapi.json", "/docs"]

    // MARK: Host

    func hostAllowed(_ header: String?) -> Bool {
        guard let header, !header.isEmpty else { return true }
        // The usual loopback Host, without allocating (the fast path asks for every request).
        if (loopbackOnly || allowedHosts.isEmpty) && Self.isPlainLoopback(header) { return true }
        if allowedHosts.contains("*") { return true }
        let host = Self.hostName(header)
        if allowedHosts.contains(where: { Self.matches(host, $0) }) { return true }
        if loopbackOnly { return Self.isLoopback(host) }
        return allowedHosts.isEmpty || Self.isIPLiteral(host)
    }

    func hostProblem(_ header: String?) -> Problem? {
        guard !hostAllowed(header) else { return nil }
        return Problem(
            .misdirectedRequest, "Misdirected Request",
            detail:
                "this server does not answer for the host '\(header ?? "")'; name it with --allowed-hosts (protection against DNS rebinding)"
        )
    }

    /// The name of a Host header: lowercased, without port, brackets or a trailing dot.
    static func hostName(_ header: String) -> String {
        var host = Substring(header.lowercased())
        if host.hasPrefix("[") {
            host = host.dropFirst().prefix { $0 != "]" }
        } else if host.firstIndex(of: ":") == host.lastIndex(of: ":"), let colon = host.firstIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        return String(host)
    }

    /// `127.0.0.1` or `localhost`, with or without a port.
    static func isPlainLoopback(_ header: String) -> Bool {
        var header = header
        return header.withUTF8 { bytes in
            let name = bytes.firstIndex(of: UInt8(ascii: ":")).map { UnsafeBufferPointer(rebasing: bytes[..<$0]) } ?? bytes
            return name.elementsEqual("127.0.0.1".utf8) || name.elementsEqual("localhost".utf8)
        }
    }

    static func matches(_ host: String, _ pattern: String) -> Bool {
        if pattern.hasPrefix("*.") { return host.hasSuffix(pattern.dropFirst()) }
        return host == pattern
    }

    static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "[::1]" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    static func isIPLiteral(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) { return true }
        return host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }

    // MARK: Origin

    /// nil: allowed as the same origin or without one; true: an allowed other origin (it
    /// gets CORS headers); a problem: refused.
    func originCheck(_ origin: String?, host: String?) -> Result<Bool, Problem>? {
        guard let origin else { return nil }
        let normalized = Self.normalizedOrigin(origin)
        if let host = host?.lowercased() {
            if normalized == "http://" + host || normalized == "https://" + host { return nil }
            // No browser sends a ws: origin (it sends the page's); WebSocket client libraries
            // send the URL's, often without its port.
            for scheme in ["ws://", "wss://"] where normalized.hasPrefix(scheme) {
                let named = normalized.dropFirst(scheme.count)
                if named == host || named == Self.hostName(host) { return nil }
            }
        }
        if allowedOrigins.contains("*") || allowedOrigins.contains(normalized) { return .success(true) }
        return .failure(
            Problem(
                .forbidden, "Forbidden",
                detail: "requests from the origin '\(origin)' are not allowed; name it with --allowed-origins"))
    }

    static func normalizedOrigin(_ origin: String) -> String {
        var o = origin.lowercased()
        while o.hasSuffix("/") { o.removeLast() }
        return o
    }

    // MARK: Tokens

    var readNeedsToken: Bool { readToken != nil }

    /// Whether `authorization` carries the write token (true when none is configured).
    func writeAllowed(_ authorization: String?) -> Bool {
        guard let writeToken else { return true }
        return authorization.map { Self.constantTimeEquals($0, writeToken) } ?? false
    }

    /// Whether `authorization` carries the read or the write token (true when no read token is configured).
    func readAllowed(_ authorization: String?) -> Bool {
        guard let readToken else { return true }
        guard let authorization else { return false }
        // Both compared, so the time does not tell which token was close.
        let read = Self.constantTimeEquals(authorization, readToken)
        let write = writeToken.map { Self.constantTimeEquals(authorization, $0) } ?? false
        return read || write
    }

    /// What the live alert feed needs: the read token when one is set, else the write token.
    var streamNeedsToken: Bool { readToken != nil || writeToken != nil }

    func streamAllowed(_ authorization: String?) -> Bool {
        readToken != nil ? readAllowed(authorization) : writeAllowed(authorization)
    }

    /// `text` equals `expected`, in time that depends only on their lengths.
    public static func constantTimeEquals(_ text: String, _ expected: [UInt8]) -> Bool {
        var text = text
        return text.withUTF8 { given in
            var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count)
            difference |= given.count == expected.count ? 0 : 1
            for i in 0..<expected.count {
                difference |= expected[i] ^ (i < given.count ? given[i] : 0)
            }
            return difference == 0
        }
    }

    static func unauthorized(_ detail: String, invalid: Bool) -> Problem {
        Problem(
            .unauthorized, "Unauthorized", detail: detail,
            headers: [.wwwAuthenticate: invalid ? "Bearer error=\"invalid_token\"" : "Bearer"])
    }

    // MARK: Content-Type

    /// Whether a POST's Content-Type is one Cardwatch reads (JSON or JSON Lines).
    static func acceptsContentType(_ header: String?) -> Bool {
        guard let header else { return false }
        if header == "application/json" || header == "application/x-ndjson" { return true }
        let media = header.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        return media == "application/json" || media == "application/x-ndjson"
    }

    static func contentTypeProblem(_ header: String?) -> Problem {
        Problem(
            .unsupportedMediaType, "Unsupported Media Type",
            detail:
                "a POST needs Content-Type: application/json or application/x-ndjson (it was \(header.map { "'\($0)'" } ?? "missing"))",
            headers: [.accept: "application/json, application/x-ndjson"])
    }
}

/// Applies the `AccessPolicy` to every request the router answers (the fast path applies it
/// itself, the WebSocket upgrade in `HTTPRequestGuard`).
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let host = request.head.authority
        if let problem = policy.hostProblem(host) { throw problem }
        let isWrite = request.method != .get && request.method != .head
        var crossOrigin: String?
        if let origin = request.headers[.origin], isWrite || request.method == .options {
            switch policy.originCheck(origin, host: host) {
            case .failure(let problem)?: throw problem
            case .success?: crossOrigin = origin
            case nil: break
            }
        } else if let origin = request.headers[.origin], case .success? = policy.originCheck(origin, host: host) {
            crossOrigin = origin
        }
        if request.method == .options, let origin = crossOrigin, request.headers[.accessControlRequestMethod] != nil {
            var response = Response(status: .noContent)
            Self.addCORS(&response.headers, origin: origin)
            response.headers[.accessControlAllowMethods] = "GET, POST"
            response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
            response.headers[.accessControlMaxAge] = "600"
            return response
        }
        let authorization = request.headers[.authorization]
        if request.method == .post {
            if !policy.writeAllowed(authorization) {
                throw AccessPolicy.unauthorized(
                    authorization == nil ? "writes need an Authorization: Bearer token" : "the bearer token is not valid",
                    invalid: authorization != nil)
            }
            if !AccessPolicy.acceptsContentType(request.headers[.contentType]) && !Self.hasNoBody(request) {
                throw AccessPolicy.contentTypeProblem(request.headers[.contentType])
            }
        } else if policy.readNeedsToken, !AccessPolicy.openPaths.contains(request.uri.path),
            !policy.readAllowed(authorization)
        {
            throw AccessPolicy.unauthorized(
                authorization == nil
                    ? "reads need an Authorization: Bearer token (the read token or the write token)"
                    : "the bearer token is not valid", invalid: authorization != nil)
        }
        var response = try await next(request, context)
        if let origin = crossOrigin { Self.addCORS(&response.headers, origin: origin) }
        return response
    }

    /// A POST without a body (promotion) needs no Content-Type: what a page on another site
    /// could send that way carries an Origin, checked above.
    static func hasNoBody(_ request: Request) -> Bool {
        request.headers[.transferEncoding] == nil && (request.headers[.contentLength].map { $0 == "0" } ?? true)
    }

    static func addCORS(_ headers: inout HTTPFields, origin: String) {
        headers[.accessControlAllowOrigin] = origin
        headers[.vary] = "Origin"
    }
}
