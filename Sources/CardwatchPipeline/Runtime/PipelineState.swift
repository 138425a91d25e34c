import CardwatchCore
import Foundation
import ServiceLifecycle
public import Synchronization

/// What the running pipeline shares between its stages and its monitors: counters that
/// the stage threads bump and the health check reads, and each stage's health.
public final class PipelineState: Sendable {
    public let processed = Atomic<Int>(0)
    public let alerts = Atomic<Int>(0)
    public let ingested = Atomic<Int>(0)
    public let deadLetters = Atomic<Int>(0)
    public let duplicates = Atomic<Int>(0)
    public let labels = Atomic<Int>(0)
    private let records = Locked<[String: StageRecord]>([:])
    /// Rung by in-process writers after an append, so the processor wakes at once instead of polling.
    public let arrivals = Doorbell()
    /// When this state was made (µs since 1970, wall clock): the pipeline's start.
    public let startedAt: Int64

    public init(now: Int64? = nil) { startedAt = now ?? wallMicros() }

    /// What the supervisor knows of a stage; its status is derived at the moment it is read.
    struct StageRecord: Sendable {
        var policy: SupervisionPolicy
        var registeredAt: Int64
        /// The current attempt's start, while the stage's body runs.
        var runningSince: Int64?
        /// The first failure of the current run of failures (nil: none since the stage last ran stably).
        var failingSince: Int64?
        var consecutiveFailures = 0
        var restarts = 0
        var lastError: String?
        var lastErrorAt: Int64?
        var nextAttemptAt: Int64?
        var stoppedAt: Int64?

        /// Whether the current attempt has run long enough to count as recovered.
        func stable(at now: Int64) -> Bool {
            guard let runningSince else { return false }
            return failingSince == nil || now - runningSince >= policy.stableAfter.microseconds
        }

        func health(at now: Int64) -> StageHealth {
            var h = StageHealth(
                status: .starting, since: registeredAt, restarts: restarts, consecutiveFailures: consecutiveFailures,
                lastError: lastError, lastErrorAt: lastErrorAt, nextAttemptAt: nil, failingSince: nil)
            if let stoppedAt {
                h.status = .stopped
                h.since = stoppedAt
            } else if let runningSince, stable(at: now) {
                h.status = .running
                h.since = failingSince == nil ? runningSince : runningSince + policy.stableAfter.microseconds
                h.consecutiveFailures = 0
            } else if let failingSince {
                let downAt = failingSince + policy.downAfter.microseconds
                h.status = now >= downAt ? .down : .restarting
                h.failingSince = failingSince
                h.since = now >= downAt ? downAt : failingSince
                h.nextAttemptAt = runningSince == nil ? nextAttemptAt : nil
            }
            return h
        }
    }

    /// How a supervised stage is doing, as `/pipeline/health` shows it.
    public struct StageHealth: Sendable, Equatable, Codable {
        public enum Status: String, Sendable, Codable {
            /// Registered, not started yet.
            case starting
            case running
            /// Failed, and being restarted (waiting for the next attempt, or not yet running stably).
            case restarting
            /// Failing without a stable run for longer than its policy's `downAfter`; still retried.
            case down
            /// Returned (a clean stop).
            case stopped
        }
        public var status: Status
        /// Since when it has had this status (µs since 1970, wall clock).
        public var since: Int64
        /// Restarts after failures, over the process's life.
        public var restarts: Int
        /// Failures since the stage last ran stably.
        public var consecutiveFailures: Int
        public var lastError: String?
        public var lastErrorAt: Int64?
        /// While waiting to restart: when the next attempt is due.
        public var nextAttemptAt: Int64?
        /// While restarting or down: the first failure of the current run of failures.
        public var failingSince: Int64?

        public var isDown: Bool { status == .down }

        public init(
            status: Status, since: Int64, restarts: Int, consecutiveFailures: Int, lastError: String?, lastErrorAt: Int64?,
            nextAttemptAt: Int64?, failingSince: Int64?
        ) {
            self.status = status
            self.since = since
            self.restarts = restarts
            self.consecutiveFailures = consecutiveFailures
            self.lastError = lastError
            self.lastErrorAt = lastErrorAt
            self.nextAttemptAt = nextAttemptAt
            self.failingSince = failingSince
        }

        enum CodingKeys: String, CodingKey {
            case status, since, restarts, consecutiveFailures, lastError, lastErrorAt, nextAttemptAt, failingSince
            case failures, down  // reports stored before stage statuses
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let down = try c.decodeIfPresent(Bool.self, forKey: .down) ?? false
            status = try c.decodeIfPresent(Status.self, forKey: .status) ?? (down ? .down : .running)
            since = try c.decodeIfPresent(Int64.self, forKey: .since) ?? 0
            restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? c.decodeIfPresent(Int.self, forKey: .failures) ?? 0
            consecutiveFailures = try c.decodeIfPresent(Int.self, forKey: .consecutiveFailures) ?? 0
            lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
            lastErrorAt = try c.decodeIfPresent(Int64.self, forKey: .lastErrorAt)
            nextAttemptAt = try c.decodeIfPresent(Int64.self, forKey: .nextAttemptAt)
            failingSince = try c.decodeIfPresent(Int64.self, forKey: .failingSince)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(status, forKey: .status)
            try c.encode(since, forKey: .since)
            try c.encode(restarts, forKey: .restarts)
            try c.encode(consecutiveFailures, forKey: .consecutiveFailures)
            try c.encodeIfPresent(lastError, forKey: .lastError)
            try c.encodeIfPresent(lastErrorAt, forKey: .lastErrorAt)
            try c.encodeIfPresent(nextAttemptAt, forKey: .nextAttemptAt)
            try c.encodeIfPresent(failingSince, forKey: .failingSince)
        }
    }

    /// Makes a stage known (status `starting`), so health shows it before it first runs.
    public func register(_ stage: String, policy: SupervisionPolicy, at time: Int64? = nil) {
        let now = time ?? wallMicros()
        records.withLock { stages in
            if stages[stage] == nil { stages[stage] = StageRecord(policy: policy, registeredAt: now) }
        }
    }

    /// An attempt of the stage begins.
    public func stageStarted(_ stage: String, at time: Int64? = nil) {
        let now = time ?? wallMicros()
        records.withLock { stages in
            var r = stages[stage] ?? StageRecord(policy: SupervisionPolicy(), registeredAt: now)
            r.runningSince = now
            r.nextAttemptAt = nil
            r.stoppedAt = nil
            stages[stage] = r
        }
    }

    /// The stage's attempt failed: returns its failures in a row (the backoff's exponent). An
    /// attempt that had run stably (`stableAfter`) first ends the previous run of failures.
    @discardableResult
    public func stageFailed(_ stage: String, _ error: any Error, at time: Int64? = nil) -> Int {
        let now = time ?? wallMicros()
        return records.withLock { stages in
            var r = stages[stage] ?? StageRecord(policy: SupervisionPolicy(), registeredAt: now)
            if r.stable(at: now) {
                r.failingSince = nil
                r.consecutiveFailures = 0
            }
            r.runningSince = nil
            r.failingSince = r.failingSince ?? now
            r.consecutiveFailures += 1
            r.restarts += 1
            r.lastError = "\(error)"
            r.lastErrorAt = now
            stages[stage] = r
            return r.consecutiveFailures
        }
    }

    /// When the stage's next attempt is due (µs since 1970), while it waits after a failure.
    public func stageWaits(_ stage: String, until due: Int64) {
        records.withLock { $0[stage]?.nextAttemptAt = due }
    }

    /// The stage returned or was cancelled (a clean stop).
    public func stageStopped(_ stage: String, at time: Int64? = nil) {
        let now = time ?? wallMicros()
        records.withLock { stages in
            stages[stage]?.runningSince = nil
            stages[stage]?.nextAttemptAt = nil
            stages[stage]?.stoppedAt = now
        }
    }

    /// Every stage's health at `time` (default: now).
    public func stages(at time: Int64? = nil) -> [String: StageHealth] {
        let now = time ?? wallMicros()
        return records.withLock { $0.mapValues { $0.health(at: now) } }
    }

    /// Every stage's health now.
    public var stageHealth: [String: StageHealth] { stages() }

    /// No stage is down now.
    public var isHealthy: Bool { !stages().values.contains { $0.isDown } }
}

extension Duration {
    /// Whole microseconds.
    public var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}

/// Runs a blocking loop on a thread of its own (the stages are CPU-bound and call
/// SQLite synchronously; they must not occupy the few threads of Swift's cooperative
/// pool), and returns or throws when it does.
public func runOnThread(name: String, _ body: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
        startThread(named: name, stackSize: 8 << 20) {
            do {
                try body()
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

/// `runOnThread` until graceful shutdown or cancellation: `body` runs on the thread with a
/// stop signal to check and a doorbell to wait on, and a stop sets the one and rings the other,
/// so a stage waiting for work ends at once.
public func runOnThreadUntilShutdown(
    name: String, wake: Doorbell = Doorbell(), _ body: @escaping @Sendable (_ stop: StopSignal, _ wake: Doorbell) throws -> Void
) async throws {
    let stop = StopSignal()
    try await withGracefulShutdownHandler {
        try await withTaskCancellationHandler {
            try await runOnThread(name: name) { try body(stop, wake) }
        } onCancel: {
            stop.stop()
            wake.ring()
        }
    } onGracefulShutdown: {
        stop.stop()
        wake.ring()
    }
}

/// A flag a stage's loop polls to stop at its next boundary.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .releasing) }
    public var isStopped: Bool { flag.load(ordering: .acquiring) }
}

/// A wake-up call between threads: `ring` after new work, `wait` until rung or a timeout.
public final class Doorbell: @unchecked Sendable {
    // `@unchecked Sendable`: `rung` is read and written only while `condition` is locked.
    private let condition = NSCondition()
    private var rung = false

    public init() {}

    public func ring() {
        condition.lock()
        rung = true
        condition.signal()
        condition.unlock()
    }

    /// Returns when rung (since the last wait) or after `seconds`.
    public func wait(seconds: Double) {
        condition.lock()
        if !rung { _ = condition.wait(until: Date().addingTimeInterval(seconds)) }
        rung = false
        condition.unlock()
    }
}
