import Foundation

/// A bounded queue with one named thread that takes everything waiting at once: the pattern
/// of every background stage here (the batch writer's group commit, the HTTP decisions'
/// group commit, the snapshot writer), written once. Items are handled in submission order,
/// each exactly once, in groups; a group is everything that waited when the thread came
/// round, so under load a group's fixed cost (a commit, a sync) is paid once for many.
///
/// Bounded: `submit` waits while the waiting items weigh more than `capacity` (one item
/// always fits), so a slow consumer slows its producers instead of filling memory. With
/// `keepsLatestOnly`, a new item replaces one that has not started (a checkpoint supersedes
/// an older one). A failed group either stops the worker (`.stops`: the error is rethrown to
/// every later call, waiting items are dropped) or is only remembered until a group succeeds
/// (`.isRemembered`).
public final class BatchingWorker<Item: Sendable>: Sendable {
    public enum FailurePolicy: Sendable {
        case stops
        case isRemembered
    }

    private struct State {
        var queue: [Item] = []
        var weight = 0
        var busy = false
        var failure: (any Error)?
        var stopped = false
    }

    public let name: String
    private let capacity: Int
    private let keepsLatestOnly: Bool
    private let policy: FailurePolicy
    private let weigh: @Sendable (Item) -> Int
    private let handle: @Sendable ([Item]) throws -> Void
    private let condition = NSCondition()
    // Sendable although mutable: `state` is read and written only while `condition` is locked.
    nonisolated(unsafe) private var state = State()

    /// Starts the thread. `handle` runs on it with each group, never concurrently with itself.
    public init(
        name: String, capacity: Int = .max, keepsLatestOnly: Bool = false, onFailure policy: FailurePolicy = .stops,
        weigh: @escaping @Sendable (Item) -> Int = { _ in 1 }, handle: @escaping @Sendable ([Item]) throws -> Void
    ) {
        self.name = name
        self.capacity = max(1, capacity)
        self.keepsLatestOnly = keepsLatestOnly
        self.policy = policy
        self.weigh = weigh
        self.handle = handle
        startThread(named: name) { [self] in run() }
    }

    /// Queues an item, waiting while it would take the queue past `capacity`. Throws the
    /// failure that stopped the worker, or `BatchingWorkerStopped` after `stop()`.
    public func submit(_ item: Item) throws {
        let w = weigh(item)
        condition.lock()
        defer { condition.unlock() }
        if keepsLatestOnly {
            state.queue.removeAll(keepingCapacity: true)
            state.weight = 0
        }
        while !state.queue.isEmpty && state.weight + w > capacity && !halted { condition.wait() }
        if policy == .stops, let failure = state.failure { throw failure }
        if state.stopped { throw BatchingWorkerStopped(name: name) }
        state.queue.append(item)
        state.weight += w
        condition.broadcast()
    }

    /// Waits until every queued item is handled; throws the failure that stopped the worker,
    /// or (`.isRemembered`) the last group's failure.
    public func flush() throws {
        condition.lock()
        defer { condition.unlock() }
        while (!state.queue.isEmpty || state.busy) && !(policy == .stops && state.failure != nil) { condition.wait() }
        if let failure = state.failure { throw failure }
    }

    /// The failure that stopped the worker, if any, without waiting.
    public func check() throws {
        condition.lock()
        defer { condition.unlock() }
        if policy == .stops, let failure = state.failure { throw failure }
    }

    /// Ends the thread once the queue is empty; later submissions are refused.
    public func stop() {
        condition.lock()
        state.stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Stopped by a failure (`.stops`) or by `stop()`: submitters stop waiting.
    private var halted: Bool { state.stopped || (policy == .stops && state.failure != nil) }

    private func run() {
        while true {
            condition.lock()
            while state.queue.isEmpty && !state.stopped { condition.wait() }
            if state.queue.isEmpty {
                condition.unlock()
                return
            }
            let group = state.queue
            state.queue.removeAll(keepingCapacity: true)
            state.weight = 0
            state.busy = true
            condition.broadcast()
            condition.unlock()
            var error: (any Error)?
            do { try handle(group) } catch let e { error = e }
            condition.lock()
            state.busy = false
            switch policy {
            case .stops:
                if let error {
                    state.failure = error
                    state.queue.removeAll()
                    state.weight = 0
                }
            case .isRemembered:
                state.failure = error
            }
            let done = policy == .stops && error != nil
            condition.broadcast()
            condition.unlock()
            if done { return }
        }
    }
}

/// A submission to a worker that was stopped.
public struct BatchingWorkerStopped: Error, CustomStringConvertible {
    public var name: String
    public var description: String { "\(name) has stopped" }
}
