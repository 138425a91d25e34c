import Foundation
public import Logging
public import ServiceLifecycle

/// How a supervised stage is restarted, and when it counts as down.
public struct SupervisionPolicy: Sendable, Equatable {
    /// The wait before the first restart; it doubles with each failure in a row, up to `maxBackoff`.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(30)
    /// An attempt that runs this long without failing ends a run of failures: the next
    /// failure waits `initialBackoff` again, and the stage shows as running.
    public var stableAfter: Duration = .seconds(5)
    /// A stage failing without a stable run for this long is reported down (and still retried).
    public var downAfter: Duration = .seconds(60)
    /// The longest wait after a failure of a store that says it passes by itself
    /// (`StorageFailure.isTransient`).
    public var transientBackoff: Duration = .seconds(1)

    public init() {}

    /// The wait after the `failures`-th failure in a row: `initialBackoff · 2^(failures−1)`,
    /// at most `maxBackoff`, scaled by `jitter` (0…1) into its upper half, so stages that fail
    /// together (a full disk fails them all) do not retry in step.
    public func backoff(afterFailures failures: Int, jitter: Double) -> Duration {
        let doublings = min(max(failures - 1, 0), 40)
        let capped = min(initialBackoff.seconds * Double(UInt64(1) << UInt64(doublings)), maxBackoff.seconds)
        return .microseconds(Int64(capped * (0.5 + 0.5 * min(max(jitter, 0), 1)) * 1e6))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs a stage and restarts it whenever it fails, after an exponential backoff
/// (`SupervisionPolicy`): no error takes a stage down for good, so one that failed on a
/// full disk, an I/O error or a locked database resumes by itself once the storage is
/// back. A stage failing without a stable run for longer than `downAfter` is reported
/// down (the pipeline is unhealthy meanwhile) and still retried. A stage that returns
/// normally, or is cancelled, is not restarted.
public struct Supervised: Service {
    public let name: String
    public let policy: SupervisionPolicy
    public let state: PipelineState
    public let logger: Logger
    let body: @Sendable () async throws -> Void
    /// Waits between attempts (tests pass one that records and returns at once).
    let sleep: @Sendable (Duration) async throws -> Void
    /// The wall clock, µs since 1970 (tests pass one they move).
    let now: @Sendable () -> Int64
    let jitter: @Sendable () -> Double

    public init(
        _ name: String, policy: SupervisionPolicy = SupervisionPolicy(), state: PipelineState, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        now: @escaping @Sendable () -> Int64 = { wallMicros() },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
        body: @escaping @Sendable () async throws -> Void
    ) {
        self.name = name
        self.policy = policy
        self.state = state
        self.logger = logger
        self.sleep = sleep
        self.now = now
        self.jitter = jitter
        self.body = body
        state.register(name, policy: policy, at: now())
    }

    public func run() async throws {
        var reportedDown = false
        while true {
            state.stageStarted(name, at: now())
            do {
                try await body()
                state.stageStopped(name, at: now())
                return
            } catch is CancellationError {
                state.stageStopped(name, at: now())
                return  // shutting down
            } catch {
                let at = now()
                if Task.isCancelled || Task.isShuttingDownGracefully {
                    state.stageStopped(name, at: at)
                    return
                }
                let failures = state.stageFailed(name, error, at: at)
                if failures == 1 { reportedDown = false }
                // A store away for now (a database restarting, a disk full) is retried at least every
                // `transientBackoff`: it passes by itself, and the store's own backoff paces the attempts.
                let backoff = policy.backoff(afterFailures: failures, jitter: jitter())
                let delay = StorageFailure.isTransient(error) ? min(backoff, policy.transientBackoff) : backoff
                state.stageWaits(name, until: at + delay.microseconds)
                let metadata: Logger.Metadata = [
                    "stage": "\(name)", "error": "\(error)", "failures_in_a_row": "\(failures)", "retry_in": "\(delay)",
                ]
                if !reportedDown, state.stages(at: at)[name]?.isDown == true {
                    reportedDown = true
                    logger.critical(
                        "stage has failed for over \(policy.downAfter) without recovering; reported down, still retried",
                        metadata: metadata)
                } else {
                    logger.error("stage failed; restarting after a backoff", metadata: metadata)
                }
                // A stop (SIGINT, SIGTERM) ends the wait at once, not after up to `maxBackoff`.
                do { try await cancelWhenGracefulShutdown { try await sleep(delay) } } catch {
                    state.stageStopped(name, at: now())
                    return  // cancelled while waiting: shutting down
                }
                if Task.isCancelled || Task.isShuttingDownGracefully {
                    state.stageStopped(name, at: now())
                    return
                }
            }
        }
    }
}

/// A stage that advances in steps on a thread of its own (the embedded runtime).
public protocol SteppedStage: Sendable {
    /// Does one step's work; how much it found (0: nothing new).
    func step() throws -> Int
    /// Called once when the stage stops cleanly (checkpoints, leaving a group).
    func stop() throws
}

/// A stepped stage as a service: steps on its own thread until graceful shutdown, idling
/// briefly when there is nothing new, and stops the stage when it ends.
public struct SteppedService<Stage: SteppedStage>: Service {
    public let stage: Stage
    public let name: String
    /// Rung by in-process writers; without a ring the stage still looks every `idle`
    /// (other processes may append to the log too).
    public let doorbell: Doorbell?
    public let idle: Double

    public init(_ stage: Stage, name: String, doorbell: Doorbell? = nil, idle: Double = 0.05) {
        self.stage = stage
        self.name = name
        self.doorbell = doorbell
        self.idle = idle
    }

    public func run() async throws {
        let stage = stage
        let idle = idle
        try await runOnThreadUntilShutdown(name: name, wake: doorbell ?? Doorbell()) { stop, wake in
            while !stop.isStopped {
                if try stage.step() == 0 { wake.wait(seconds: idle) }
            }
            try stage.stop()
        }
    }
}

/// The storage refused a write for now and the pipeline waits before trying again.
public struct StorageUnavailable: Error, CustomStringConvertible, Sendable {
    public var reason: String
    /// When a retry may succeed, at the earliest.
    public var retryAfter: Duration
    public init(reason: String, retryAfter: Duration) {
        self.reason = reason
        self.retryAfter = retryAfter
    }
    public var description: String { "the store is unavailable for now (\(reason)); retry in \(retryAfter)" }
}

/// Which failures of the storage pass by themselves (a full disk freed, an I/O error, a
/// lock held by another process, a read-only file made writable): worth a retry, and an
/// HTTP 503 rather than a 500.
/// A failure of a backend that may say it passes by itself (a database away, restarting, full).
public protocol TransientFailure: Error {
    var isTransient: Bool { get }
}

public enum StorageFailure {
    public static func isTransient(_ error: any Error) -> Bool {
        if error is StorageUnavailable { return true }
        if let e = error as? any TransientFailure { return e.isTransient }
        if let e = error as? EventLogError { return e.kind == .unavailable }
        return false
    }
}
