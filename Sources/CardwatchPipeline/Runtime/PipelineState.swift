import CardwatchCore
import Foundation
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
    private let stages = Mutex<[String: StageHealth]>([:])
    /// Rung by in-process writers after an append, so the processor wakes at once instead of polling.
    public let arrivals = Doorbell()

    public init() {}

    public struct StageHealth: Sendable, Equatable, Codable {
        public var failures = 0
        public var lastError: String?
        /// Out of restarts: the stage is down and the pipeline unhealthy.
        public var down = false
    }

    public func recordFailure(_ stage: String, _ error: any Error, down: Bool) {
        stages.withLock {
            var s = $0[stage] ?? StageHealth()
            s.failures += 1
            s.lastError = "\(error)"
            s.down = s.down || down
            $0[stage] = s
        }
    }

    public var stageHealth: [String: StageHealth] { stages.withLock { $0 } }
    public var isHealthy: Bool { stages.withLock { !$0.values.contains { $0.down } } }
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
