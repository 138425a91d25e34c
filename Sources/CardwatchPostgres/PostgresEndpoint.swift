import Foundation

/// Where a PostgreSQL database is, from `postgres://USER@HOST:PORT/DB` and the standard
/// `PG*` variables (as libpq reads them: the URL wins, then `PGHOST`, `PGPORT`, `PGUSER`,
/// `PGDATABASE`). The password comes from `PGPASSWORD` or a password file (`PGPASSFILE`,
/// else `~/.pgpass`, libpq's format), never from the command line, where `ps` shows it to
/// every user of the machine.
public struct PostgresEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    /// Not part of `description`.
    public var password: String?
    /// How long one statement may run before the server cancels it (`statement_timeout`).
    public var statementTimeout: Duration = .seconds(30)

    public init(host: String, port: Int, user: String, database: String, password: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.password = password
    }

    /// The URL without the password.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    /// Whether `value` names a PostgreSQL database (`postgres://` or `postgresql://`).
    public static func isURL(_ value: String) -> Bool {
        let lower = value.lowercased()
        return lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://")
    }

    /// Parses `url`, filling what it leaves out from `environment` as libpq does.
    public static func parse(_ url: String, environment: [String: String]? = nil)
        throws(PostgresEndpointError) -> PostgresEndpoint
    {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard isURL(url), let parts = URLComponents(string: url) else {
            throw PostgresEndpointError("\(redacted(url)): not a PostgreSQL URL; expected postgres://USER@HOST:PORT/DATABASE")
        }
        if parts.password != nil {
            throw PostgresEndpointError(
                "\(redacted(url)): a password in the URL would show in the process list; put it in PGPASSWORD or a "
                    + "password file (PGPASSFILE, ~/.pgpass)")
        }
        for item in parts.queryItems ?? [] {
            switch item.name {
            case "sslmode" where item.value == "disable": continue
            case "sslmode":
                throw PostgresEndpointError(
                    "\(redacted(url)): sslmode=\(item.value ?? "") is not supported by this build (only sslmode=disable); "
                        + "reach the database over a trusted network or a local tunnel")
            default:
                throw PostgresEndpointError("\(redacted(url)): unknown parameter '\(item.name)' (known: sslmode)")
            }
        }
        let host = nonEmpty(parts.host) ?? nonEmpty(environment["PGHOST"]) ?? "localhost"
        let port: Int
        if let p = parts.port {
            port = p
        } else if let text = nonEmpty(environment["PGPORT"]) {
            guard let p = Int(text), (1...65535).contains(p) else { throw PostgresEndpointError("PGPORT=\(text): not a port") }
            port = p
        } else {
            port = 5432
        }
        guard (1...65535).contains(port) else { throw PostgresEndpointError("\(redacted(url)): port \(port) out of range") }
        let user = nonEmpty(parts.user) ?? nonEmpty(environment["PGUSER"]) ?? nonEmpty(environment["USER"]) ?? "postgres"
        let path = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        guard !path.contains("/") else {
            throw PostgresEndpointError("\(redacted(url)): the path must be one database name, not '\(path)'")
        }
        let database = nonEmpty(path) ?? nonEmpty(environment["PGDATABASE"]) ?? user
        var endpoint = PostgresEndpoint(host: host, port: port, user: user, database: database)
        endpoint.password = try password(for: endpoint, environment: environment)
        return endpoint
    }

    /// `PGPASSWORD`, else the first matching line of the password file (`host:port:database:user:password`,
    /// `*` matching anything, `\` escaping `:` and `\`).
    static func password(for e: PostgresEndpoint, environment: [String: String]) throws(PostgresEndpointError) -> String? {
        if let p = environment["PGPASSWORD"], !p.isEmpty { return p }
        let explicit = nonEmpty(environment["PGPASSFILE"])
        guard let file = explicit ?? nonEmpty(environment["HOME"]).map({ $0 + "/.pgpass" }) else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else {
            if let explicit { throw PostgresEndpointError("PGPASSFILE=\(explicit): cannot be read") }
            return nil
        }
        let wanted = [e.host, String(e.port), e.database, e.user]
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            guard !line.hasPrefix("#") else { continue }
            let fields = splitPassLine(Substring(line))
            guard fields.count == 5 else { continue }
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    private static func splitPassLine(_ line: Substring) -> [String] {
        var fields: [String] = [""]
        var escaped = false
        for c in line {
            if escaped {
                fields[fields.count - 1].append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == ":" {
                fields.append("")
            } else {
                fields[fields.count - 1].append(c)
            }
        }
        return fields
    }

    private static func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }

    /// The URL with any password replaced, for messages.
    static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url), parts.password != nil else { return url }
        parts.password = "***"
        return parts.string ?? "the URL"
    }
}

public struct PostgresEndpointError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
