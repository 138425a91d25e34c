public import CardwatchPipeline
import Dispatch
import Foundation
public import Logging
import NIOCore
import NIOPosix
public import PostgresNIO
import Synchronization

/// A small pool of PostgreSQL connections, used synchronously from the caller's thread.
///
/// Written here rather than taken from postgres-nio's `PostgresClient` because the seams it
/// serves (`DecisionSink`, `CheckpointStore`, the serving reads) are synchronous and run on
/// the runtime's own threads: `PostgresClient` is async only, and blocking a thread of
/// Swift's cooperative pool (two threads on two cores) on async work that needs that pool is
/// how a process deadlocks. Each statement here is an `EventLoopFuture` of postgres-nio's,
/// run on NIO's event loops and waited for on the caller's thread, which needs no task.
///
/// Connections open lazily up to `size`; a caller waits for a free one at most `checkoutTimeout`.
/// A connection that failed (closed, reset) is dropped. While connecting fails, new attempts
/// back off exponentially (100 ms doubling to 2 s) and calls fail at once with
/// `PostgresStoreError.unavailable` until the next attempt is due: the runtime's backpressure.
public final class PostgresPool: Sendable {
    public let endpoint: PostgresEndpoint
    public let size: Int
    let logger: Logger
    private let permits: DispatchSemaphore
    private let checkoutTimeout: Duration
    private let state = Mutex(State())
    private struct State {
        var idle: [PostgresConnection] = []
        var nextID = 0
        var failures = 0
        var retryAt: ContinuousClock.Instant?
        var lastFailure = ""
        var closed = false
    }

    public init(
        _ endpoint: PostgresEndpoint, size: Int = 4, checkoutTimeout: Duration = .seconds(10),
        logger: Logger = Logger(label: "cardwatch.postgres")
    ) {
        self.endpoint = endpoint
        self.size = max(1, size)
        self.checkoutTimeout = checkoutTimeout
        self.logger = logger
        permits = DispatchSemaphore(value: max(1, size))
    }

    deinit { close() }

    /// Closes every idle connection; later calls fail.
    public func close() {
        let idle = state.withLock { s in
            s.closed = true
            defer { s.idle = [] }
            return s.idle
        }
        for c in idle { c.closeSoon() }
    }

    /// Runs `body` on a connection of the pool. `what` names the work in error messages.
    @discardableResult
    public func withSession<T>(_ what: @autoclosure () -> String, _ body: (PostgresSession) throws -> T) throws -> T {
        let waited = permits.wait(timeout: .now() + .milliseconds(Int(checkoutTimeout.components.seconds * 1000)))
        guard waited == .success else {
            throw PostgresStoreError(
                .unavailable, "\(what()): no connection to \(endpoint) free within \(checkoutTimeout) (pool of \(size))")
        }
        defer { permits.signal() }
        let connection = try checkout(what())
        let session = PostgresSession(connection: connection, logger: logger)
        do {
            let result = try body(session)
            checkin(connection)
            return result
        } catch {
            // The driver's errors are named for the work and classified; the body's own (a
            // refused batch, an unknown model version) pass as they are.
            let mapped = PostgresStoreError.isDriverError(error) ? PostgresStoreError.from(error, what()) : nil
            if mapped?.kind == .unavailable || connection.isClosed {
                connection.closeSoon()
            } else {
                checkin(connection)
            }
            throw mapped ?? error
        }
    }

    /// Runs `body` in one transaction (`BEGIN` … `COMMIT`; rolled back when it throws).
    @discardableResult
    public func transaction<T>(_ what: @autoclosure () -> String, _ body: (PostgresSession) throws -> T) throws -> T {
        try withSession(what()) { session in
            try session.execute("BEGIN")
            do {
                let result = try body(session)
                try session.execute("COMMIT")
                return result
            } catch {
                if !session.connection.isClosed { try? session.execute("ROLLBACK") }
                throw error
            }
        }
    }

    /// Whether the database answered the last attempt to connect (for health reports).
    public var lastConnectFailure: String? {
        state.withLock { $0.failures > 0 ? $0.lastFailure : nil }
    }

    private func checkout(_ what: String) throws -> PostgresConnection {
        let now = ContinuousClock.now
        let ready: PostgresConnection?
        let id: Int
        (ready, id) = try state.withLock { s throws(PostgresStoreError) in
            guard !s.closed else { throw PostgresStoreError(.storage, "\(what): the connection pool is closed") }
            while let c = s.idle.popLast() {
                if !c.isClosed { return (c, 0) }
            }
            if let at = s.retryAt, now < at {
                throw PostgresStoreError(
                    .unavailable,
                    "\(what): PostgreSQL at \(endpoint) is unreachable (\(s.lastFailure)); next attempt in \(at - now)")
            }
            s.nextID += 1
            return (nil, s.nextID)
        }
        if let ready { return ready }
        var configuration = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.user, password: endpoint.password,
            database: endpoint.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(5)
        let timeout = endpoint.statementTimeout.components
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(timeout.seconds * 1000 + timeout.attoseconds / 1_000_000_000_000_000)"),
            ("application_name", "cardwatch"),
        ]
        do {
            let connection = try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: id, logger: logger
            ).wait()
            state.withLock {
                $0.failures = 0
                $0.retryAt = nil
            }
            return connection
        } catch {
            let mapped = PostgresStoreError.from(error, "\(what): connecting to \(endpoint)")
            state.withLock {
                $0.failures += 1
                $0.lastFailure = mapped.message
                let delay = min(2_000, 100 << min($0.failures - 1, 5))
                $0.retryAt = ContinuousClock.now + .milliseconds(delay)
            }
            throw PostgresStoreError(mapped.kind == .storage ? .storage : .unavailable, mapped.message)
        }
    }

    private func checkin(_ connection: PostgresConnection) {
        let keep = state.withLock { s in
            guard !s.closed, !connection.isClosed else { return false }
            s.idle.append(connection)
            return true
        }
        if !keep { connection.closeSoon() }
    }
}

/// One connection of the pool, for the length of a `withSession` body.
public struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs `query` and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
        try waitWhileConnected(connection.query(query, logger: logger))
    }

    /// The future's value, or `unavailable` once the connection closed without completing it.
    ///
    /// postgres-nio sends a statement with `channel.write(…, promise: nil)`: written after the
    /// channel closed (the server went away between two statements of a transaction), the
    /// write fails and nothing ever completes the statement's promise; a plain `wait()` would
    /// wait forever (seen: `pg_ctl stop -m immediate` in the middle of a commit). Such a
    /// future is kept (`Orphans`): released unfulfilled, it fails debug builds' leak check.
    func waitWhileConnected<T: Sendable>(_ future: EventLoopFuture<T>) throws -> T {
        let done = DispatchSemaphore(value: 0)
        future.whenComplete { _ in done.signal() }
        while done.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            guard connection.isClosed else { continue }
            // A statement the closing connection failed reports in a moment.
            if done.wait(timeout: .now() + .milliseconds(500)) == .success { break }
            Orphans.keep(future)
            throw PostgresStoreError(.unavailable, "the connection to the server closed during a statement")
        }
        return try future.wait()
    }

    /// Runs SQL without parameters (several statements are not allowed: extended protocol).
    public func execute(_ sql: String) throws { try query(PostgresQuery(unsafeSQL: sql)) }

    /// Runs `sql` with `binds`, and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ binds: PostgresBindings) throws -> PostgresQueryResult {
        try query(PostgresQuery(unsafeSQL: sql, binds: binds))
    }
}

/// A failure of the PostgreSQL store: `unavailable` when the same call may succeed later (the
/// server away, restarting, out of disk or connections, a statement cancelled), else `storage`.
public struct PostgresStoreError: TransientFailure, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case unavailable, storage
    }
    public var kind: Kind
    public var message: String
    /// The server's SQLSTATE, when the server refused.
    public var sqlState: String?
    public init(_ kind: Kind, _ message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }
    public var description: String { "postgres: \(message)" }
    public var isTransient: Bool { kind == .unavailable }

    /// SQLSTATE classes that pass by themselves: connection exceptions (08), insufficient
    /// resources (53: disk full, out of memory, too many connections), operator intervention
    /// (57: shutdown, cancelled by statement_timeout), transaction rollbacks (40: serialization,
    /// deadlock).
    static let transientClasses: Set<Substring> = ["08", "53", "57", "40"]

    /// postgres-nio's and NIO's errors (what `from` classifies), and this type's own.
    static func isDriverError(_ error: any Error) -> Bool {
        error is PSQLError || error is PostgresDecodingError || error is PostgresStoreError || error is ChannelError
            || error is IOError
    }

    static func from(_ error: any Error, _ what: String) -> PostgresStoreError {
        if let e = error as? PostgresStoreError { return e }
        if error is PostgresDecodingError {
            // Its description hides the value; the reflection names the column and types.
            return PostgresStoreError(.storage, "\(what) failed: \(String(reflecting: error))")
        }
        guard let psql = error as? PSQLError else {
            // NIO's channel errors (connection refused, reset): the server is away.
            return PostgresStoreError(.unavailable, "\(what) failed: \(error)")
        }
        if psql.code == .server, let info = psql.serverInfo {
            let state = info[.sqlState] ?? "?"
            let message = info[.message] ?? "error"
            let detail = info[.detail].map { " (\($0))" } ?? ""
            return PostgresStoreError(
                transientClasses.contains(state.prefix(2)) ? .unavailable : .storage,
                "\(what) failed: \(message)\(detail) [SQLSTATE \(state)]", sqlState: state)
        }
        let cause = psql.underlying.map { ": \($0)" } ?? ""
        switch psql.code {
        case .tooManyParameters, .invalidCommandTag, .unsupportedAuthMechanism, .authMechanismRequiresPassword,
            .saslError:
            return PostgresStoreError(.storage, "\(what) failed: \(psql.code)\(cause)")
        default:
            return PostgresStoreError(.unavailable, "\(what) failed: \(psql.code)\(cause)")
        }
    }
}

extension PostgresConnection {
    /// Closes and waits until closed (postgres-nio asserts that a connection is closed before
    /// it is released); a connection that already failed closes at once.
    fileprivate func closeSoon() {
        let closing: EventLoopFuture<Void> = close()
        _ = try? closing.wait()
    }
}

/// Futures whose promise postgres-nio will never complete (see `waitWhileConnected`), kept
/// for the life of the process: one per connection lost in the middle of a statement.
enum Orphans {
    private static let kept = Mutex<[any Sendable]>([])
    static func keep(_ future: any Sendable) { kept.withLock { $0.append(future) } }
}
