#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How long a connection may take and how many there may be: what keeps a client from
/// holding the server's connections (slowloris, idle floods) or its parser (huge heads).
public struct HTTPLimits: Sendable {
    /// A keep-alive connection waiting for its next request is closed after this.
    public var idleTimeout: Duration = .seconds(30)
    /// A request's head (request line and headers) must arrive within this of its first
    /// byte; the first request's, within this of the connection being accepted.
    public var headerTimeout: Duration = .seconds(10)
    /// A whole request (head and body) must arrive within this of its first byte.
    public var requestTimeout: Duration = .seconds(60)
    /// Open connections at most (WebSockets included); beyond it the longest-idle connection
    /// without a request in progress is closed to make room, or, with none, the new one is
    /// answered 503 and closed.
    public var maxConnections = HTTPLimits.defaultMaxConnections()
    /// The request target (path and query) at most this many bytes (414 beyond).
    public var maxURLBytes = 8 * 1024
    /// The request head (URL, header names and values) at most this many bytes (431 beyond).
    public var maxHeaderBytes = 32 * 1024
    /// Header fields at most (431 beyond).
    public var maxHeaders = 100
    /// How long the live feed waits for a token sent as the first message.
    public var streamTokenWait: Duration = .seconds(10)

    public init() {}

    /// Descriptors kept for everything but connections: the store's files, the event loops,
    /// logs, a retraining's temporary files.
    static func reservedDescriptors(_ limit: Int) -> Int { max(256, limit / 16) }

    /// The connection limit the process's open-file limit allows: the soft RLIMIT_NOFILE less
    /// a reserve (`reservedDescriptors`), at least 64.
    public static func defaultMaxConnections() -> Int {
        let files = openFileLimit()
        return max(64, files - reservedDescriptors(files))
    }

    /// The soft RLIMIT_NOFILE (capped at 1,048,576, what "unlimited" means here).
    public static func openFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(resourceNOFILE, &limit) == 0 else { return 1_024 }
        return Int(min(limit.rlim_cur, 1 << 20))
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        if getrlimit(resourceNOFILE, &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(resourceNOFILE, &limit)
        }
        return openFileLimit()
    }

    #if canImport(Glibc)
        private static let resourceNOFILE = __rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue))
    #else
        private static let resourceNOFILE = RLIMIT_NOFILE
    #endif
}

/// Where one connection is in its life, as far as its deadlines and the connection limit
/// care: the state machine behind `ConnectionGuard`, tested without sockets. Times are
/// monotonic nanoseconds (`NIODeadline.now().uptimeNanoseconds`).
///
/// A connection is reading a head (from its acceptance, or from the first byte after its
/// last answer), reading a body, waiting for the server's answers (no deadline: the
/// server is working), idle between requests, or a WebSocket (no HTTP deadline; the
/// WebSocket's own pings find dead peers).
struct ConnectionTimeline: Equatable {
    enum Mode: Equatable {
        case http
        case webSocket
        /// An answer was given and the connection is being closed.
        case closing
    }

    /// Why a deadline closes the connection.
    enum Expiry: Equatable {
        case idle
        /// The head did not arrive in time (slowloris).
        case header
        /// The body did not arrive in time.
        case request
    }

    private(set) var mode = Mode.http
    /// The first byte of a head not yet complete (the acceptance, for the first request).
    private(set) var headStartedAt: UInt64?
    /// The first byte of the request whose body is being read.
    private(set) var bodyStartedAt: UInt64?
    /// Request heads read, and answers written to the end.
    private(set) var heads = 0
    private(set) var answers = 0
    private(set) var lastAnswerAt: UInt64
    /// Bytes came in since the acceptance or the last answer.
    private(set) var receivedSinceAnswer = false

    init(acceptedAt: UInt64) {
        headStartedAt = acceptedAt
        lastAnswerAt = acceptedAt
    }

    /// Bytes came in: the start of a new head, unless a head or body is being read already.
    mutating func bytesArrived(at now: UInt64) {
        receivedSinceAnswer = true
        if headStartedAt == nil && bodyStartedAt == nil { headStartedAt = now }
    }

    mutating func headReceived(at now: UInt64) {
        heads += 1
        bodyStartedAt = headStartedAt ?? now
        headStartedAt = nil
    }

    mutating func requestEnded() { bodyStartedAt = nil }

    mutating func answerEnded(at now: UInt64) {
        answers += 1
        lastAnswerAt = now
        receivedSinceAnswer = bodyStartedAt != nil || headStartedAt != nil
    }

    mutating func upgraded() { mode = .webSocket }

    mutating func closing() { mode = .closing }

    /// No request in progress: closing it loses nothing that was asked (an idle keep-alive
    /// connection, or one still sending a head).
    var isEvictable: Bool { mode == .http && heads == answers && bodyStartedAt == nil }

    /// When the connection is closed unless something happens first, and why.
    func deadline(_ limits: HTTPLimits) -> (at: UInt64, expiry: Expiry)? {
        guard mode == .http else { return nil }
        if let start = bodyStartedAt { return (start.saturatingAdd(limits.requestTimeout.nanoseconds), .request) }
        if let start = headStartedAt { return (start.saturatingAdd(limits.headerTimeout.nanoseconds), .header) }
        if heads > answers { return nil }
        return (lastAnswerAt.saturatingAdd(limits.idleTimeout.nanoseconds), .idle)
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for negative durations, saturating.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole.saturatingAdd(UInt64(attoseconds / 1_000_000_000))
    }
}

extension UInt64 {
    func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
