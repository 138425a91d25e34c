import CardwatchCore
import Synchronization

/// Callers waiting for the processor's decision on given transactions (the HTTP API's
/// synchronous answer). A caller `expect`s its ids before it appends them, so a decision
/// that comes back faster than the caller starts waiting is kept for it; `deliver` is fed
/// every decided batch.
public final class DecisionWaiters: Sendable {
    enum Slot {
        case expected
        case waiting(CheckedContinuation<Decision?, Never>, deadline: ContinuousClock.Instant)
        case decided(Decision)
    }
    private let slots = Mutex<[String: Slot]>([:])

    public init() {
        // One sweeper for every caller's timeout (a sleeping task per request would cost more than the request).
        Task.detached { [weak self] in
            while true {
                try? await Task.sleep(for: .milliseconds(100))
                guard let self else { return }  // held only for the sweep, so the waiters can go away
                self.expireOverdue()
            }
        }
    }

    private func expireOverdue() {
        let now = ContinuousClock.now
        let overdue = slots.withLock { s -> [CheckedContinuation<Decision?, Never>] in
            var out: [CheckedContinuation<Decision?, Never>] = []
            for (id, slot) in s {
                if case .waiting(let c, let deadline) = slot, deadline <= now {
                    out.append(c)
                    s[id] = nil
                }
            }
            return out
        }
        for c in overdue { c.resume(returning: nil) }
    }

    /// Registers ids before they are appended; returns those it registered (others were already).
    @discardableResult
    public func expect(_ ids: [String]) -> Set<String> {
        slots.withLock { s in
            var added = Set<String>()
            for id in ids where s[id] == nil {
                s[id] = .expected
                added.insert(id)
            }
            return added
        }
    }

    /// Drops an expectation nobody waits on yet (an id that turned out to be a duplicate).
    public func forget(_ id: String) {
        slots.withLock { s in
            if case .expected = s[id] { s[id] = nil }
        }
    }

    /// The decision on an expected id, or nil after `timeout` (or for an id not expected).
    public func decision(for id: String, timeout: Duration) async -> Decision? {
        await withCheckedContinuation { (c: CheckedContinuation<Decision?, Never>) in
            let now: Decision?? = slots.withLock { s in
                switch s[id] {
                case .decided(let d):
                    s[id] = nil
                    return .some(d)
                case .expected:
                    s[id] = .waiting(c, deadline: ContinuousClock.now + timeout)
                    return .none
                case .waiting, nil:
                    return .some(nil)
                }
            }
            if let now { c.resume(returning: now) }
        }
    }

    public func deliver(_ batch: ProcessedBatch) {
        let ready = slots.withLock { s -> [(CheckedContinuation<Decision?, Never>, Decision)] in
            guard !s.isEmpty else { return [] }
            var out: [(CheckedContinuation<Decision?, Never>, Decision)] = []
            for t in batch.transactions {
                switch s[t.transaction.transactionID] {
                case .expected: s[t.transaction.transactionID] = .decided(t.decision)
                case .waiting(let c, _):
                    s[t.transaction.transactionID] = nil
                    out.append((c, t.decision))
                case .decided, nil: break
                }
            }
            return out
        }
        for (c, d) in ready { c.resume(returning: d) }
    }

    /// Gives up on an id (a caller that timed out, or whose record turned out a duplicate).
    public func expire(_ id: String) {
        let c: CheckedContinuation<Decision?, Never>? = slots.withLock { s in
            defer { s[id] = nil }
            if case .waiting(let c, _) = s[id] { return c }
            return nil
        }
        c?.resume(returning: nil)
    }
}
