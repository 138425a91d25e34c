import CardwatchCore

/// Stops calling a store that keeps failing, and probes it now and then: closed (calls go
/// through) → open after `threshold` failures in a row (calls are refused at once, for
/// `openFor`) → half-open (one call goes through as a probe: success closes, failure opens
/// again). A refused call costs nothing, so a store that is down or slow cannot slow its
/// callers: they take their fallback at once.
public final class CircuitBreaker: Sendable {
    public enum State: String, Sendable, CaseIterable {
        case closed, open
        case halfOpen = "half_open"
    }

    public let threshold: Int
    public let openFor: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let cell: Locked<(state: State, failures: Int, until: ContinuousClock.Instant, probing: Bool, opened: Int)>

    public init(
        threshold: Int = 5, openFor: Duration = .seconds(1),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.threshold = max(1, threshold)
        self.openFor = openFor
        self.now = now
        cell = Locked((.closed, 0, now(), false, 0))
    }

    public var state: State { cell.withLock { $0.state } }
    /// How many times it has opened.
    public var timesOpened: Int { cell.withLock { $0.opened } }

    /// Whether a call may go now: true when closed, and for the one probe once the open time is up.
    public func allow() -> Bool {
        let t = now()
        return cell.withLock { c in
            switch c.state {
            case .closed: return true
            case .open:
                guard t >= c.until else { return false }
                c.state = .halfOpen
                c.probing = true
                return true
            case .halfOpen:
                guard !c.probing else { return false }
                c.probing = true
                return true
            }
        }
    }

    public func succeeded() {
        cell.withLock { c in
            c.state = .closed
            c.failures = 0
            c.probing = false
        }
    }

    public func failed() {
        let t = now()
        cell.withLock { c in
            c.failures += 1
            c.probing = false
            if c.state == .halfOpen || (c.state == .closed && c.failures >= threshold) {
                if c.state != .open { c.opened += 1 }
                c.state = .open
                c.until = t + openFor
            }
        }
    }
}
