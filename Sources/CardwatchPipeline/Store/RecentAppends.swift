public import CardwatchCore
import Synchronization

/// One transaction an append of this process wrote: what the processor would read back.
public struct AppendedTransaction: Sendable {
    public var transaction: Transaction
    public var partition: Int
    public var offset: Int64
    /// When it was appended (µs since 1970), as stored with the record.
    public var appendedAt: Int64

    public init(transaction: Transaction, partition: Int, offset: Int64, appendedAt: Int64) {
        self.transaction = transaction
        self.partition = partition
        self.offset = offset
        self.appendedAt = appendedAt
    }
}

/// A committed arrival of transactions, still in memory.
public struct RecentArrival: Sendable {
    public var id: Int64
    public var transactions: [AppendedTransaction]

    public init(id: Int64, transactions: [AppendedTransaction]) {
        self.id = id
        self.transactions = transactions
    }
}

/// Arrivals this process appended, kept after their commit so that the processor takes
/// what was just written from memory instead of reading it back from the store and
/// decoding it again: on the HTTP API's synchronous path (a small append, then its
/// decision) that read was a third of the processor's time and a stage of waiting.
///
/// Only a run of consecutive arrivals starting right after the processor's position is
/// handed out; anything else (another process's appends, labels, a gap left by a full
/// cache or a restart) makes the processor read the store, exactly as before. Entries are
/// added only after their transaction committed, so nothing uncommitted is ever decided.
public final class RecentAppends: Sendable {
    /// Records held at most; beyond it new arrivals are not kept (the processor is far
    /// behind and reads the store anyway).
    public let capacity: Int
    private let state = Locked<(arrivals: [Int64: [AppendedTransaction]], records: Int)>(([:], 0))

    public init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    /// Keeps a committed arrival (arrivals may come out of order from concurrent writers).
    public func add(_ arrival: RecentArrival) {
        guard !arrival.transactions.isEmpty else { return }
        state.withLock { s in
            guard s.records + arrival.transactions.count <= capacity else { return }
            s.arrivals[arrival.id] = arrival.transactions
            s.records += arrival.transactions.count
        }
    }

    /// Takes the arrivals after `position`, consecutive from `position + 1`, until they hold
    /// at least `records` records; nil when arrival `position + 1` is not here. Forgets
    /// everything up to the last one taken (or up to `position`).
    public func take(after position: Int64, records: Int) -> [RecentArrival]? {
        state.withLock { s in
            guard !s.arrivals.isEmpty else { return nil }
            var out: [RecentArrival] = []
            var next = position + 1
            var taken = 0
            while taken < records, let transactions = s.arrivals.removeValue(forKey: next) {
                out.append(RecentArrival(id: next, transactions: transactions))
                taken += transactions.count
                s.records -= transactions.count
                next += 1
            }
            // Whatever is older than the processor's position will never be asked for again.
            let stale = s.arrivals.keys.filter { $0 < next }
            for id in stale { s.records -= s.arrivals.removeValue(forKey: id)?.count ?? 0 }
            return out.isEmpty ? nil : out
        }
    }
}
