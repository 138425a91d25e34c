public import CardwatchCore
import CardwatchPipeline
import Foundation
public import Hummingbird

/// An error as RFC 9457 `application/problem+json`: a title, the status, what went wrong,
/// and for validation each field's problem.
public struct Problem: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var title: String
    public var detail: String
    public var errors: [FieldIssue]
    public var headers: HTTPFields
    /// When `errors` lists only the first records' problems: how many records were invalid.
    public var invalidRecords: Int?

    public init(
        _ status: HTTPResponse.Status, _ title: String, detail: String, errors: [FieldIssue] = [], headers: HTTPFields = [:]
    ) {
        self.status = status
        self.title = title
        // What a client sent may come back in a message: never a card number (issue 14).
        self.detail = CardNumber.masked(text: detail)
        self.errors = errors.map {
            FieldIssue(field: CardNumber.masked(text: $0.field), problem: CardNumber.masked(text: $0.problem))
        }
        self.headers = headers
    }

    /// Any other error: a 503 with `Retry-After` when the storage refused for now (a full
    /// disk, an I/O error, a read-only file: nothing was written, a retry may succeed), else a
    /// 500 that says what failed.
    public init(wrapping error: any Error) {
        if let problem = error as? Problem {
            self = problem
        } else if StorageFailure.isTransient(error) {
            let wait = (error as? StorageUnavailable)?.retryAfter ?? .seconds(1)
            let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
            self = Problem(
                .serviceUnavailable, "Service Unavailable",
                detail: "the store cannot take writes for now (nothing was written; retry): \(error)",
                headers: [.retryAfter: String(seconds)])
        } else {
            self = Problem(.internalServerError, "Internal Server Error", detail: "\(error)")
        }
    }

    public func response() -> Response {
        Response(status: status, headers: responseHeaders, body: .init(byteBuffer: body))
    }

    /// The problem document.
    var body: ByteBuffer {
        var object: [String: Any] = [
            "type": "about:blank", "title": title, "status": Int(status.code), "detail": detail,
        ]
        if !errors.isEmpty { object["errors"] = errors.map { ["field": $0.field, "problem": $0.problem] } }
        if let invalidRecords { object["invalid_count"] = invalidRecords }
        return ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    var responseHeaders: HTTPFields {
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return headers
    }
}

/// Turns every error into problem+json: our `Problem`s, Hummingbird's `HTTPError`s (an
/// unknown route is a 404, or a 405 with `Allow` when the path exists for other methods;
/// a body over the limit is a 413), anything else a 500 that says what failed.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return problem.response()
        } catch let error as HTTPError {
            let path = request.uri.path
            if error.status == .notFound {
                let allowed = routes.methods(forPath: path)
                if !allowed.isEmpty && !allowed.contains(request.method.rawValue) {
                    return Problem(
                        .methodNotAllowed, "Method Not Allowed",
                        detail:
                            "\(path) does not answer \(request.method.rawValue); it answers \(allowed.joined(separator: ", "))",
                        headers: [.allow: allowed.joined(separator: ", ")]
                    ).response()
                }
                if allowed.isEmpty {
                    return Problem(.notFound, "Not Found", detail: "no route \(request.method.rawValue) \(path)").response()
                }
            }
            if error.status == .contentTooLarge {
                return Problem(
                    .contentTooLarge, "Content Too Large", detail: error.body ?? "the request body is over the limit"
                ).response()
            }
            return Problem(error.status, error.status.reasonPhrase, detail: error.body ?? error.status.reasonPhrase).response()
        } catch {
            return Problem(wrapping: error).response()
        }
    }
}

/// The server's routes, as registered: for 405s and for the OpenAPI document's check.
public struct RouteTable: Sendable {
    public private(set) var routes: [(method: String, path: String)] = []

    mutating func add(_ method: String, _ path: String) { routes.append((method, path)) }

    /// The methods answered at a concrete path (a `{name}` segment matches any one segment).
    public func methods(forPath path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.filter { route in
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == parts.count else { return false }
            // A constant segment beats a parameter (as the router does): /alerts/recent is not /alerts/{id}.
            return zip(pattern, parts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    }
}
