import CardwatchCore
import CardwatchPipeline

/// The newest committed records of each `transactions` partition that this process appended,
/// for the runtime's reads right behind the appends (`import`, the live generator): served
/// from memory instead of read back and copied out of SQLite, a tenth of an import's time on
/// the runtime's thread. Records are immutable once committed, so a cached one is the stored
/// one; a read that starts outside the cache goes to SQLite. At most `capacity` records per
/// partition are kept (a share of 65,536 over all); appends by other processes are not cached.
final class TailCache: Sendable {
    private struct Partition {
        var first: Int64 = 0
        var records: [LogRecord] = []
        var end: Int64 { first + Int64(records.count) }
    }

    let capacity: Int
    private let partitions: Locked<[Partition]>

    /// `records`: kept over all partitions (about 300 bytes each), a share per partition.
    init(partitions count: Int, records: Int = 65_536) {
        capacity = max(1_024, records / max(1, count))
        partitions = Locked([Partition](repeating: Partition(), count: count))
    }

    /// Keeps records just committed (any partitions, each partition's in offset order).
    func add(_ records: [LogRecord]) {
        guard !records.isEmpty else { return }
        partitions.withLock { parts in
            for r in records where r.partition < parts.count {
                let p = r.partition
                // Mutated in place: a copy of the partition would copy its records at every append.
                if parts[p].records.isEmpty || r.offset != parts[p].end {
                    // Not next to what is kept (another writer's records came between): start again.
                    parts[p].records.removeAll(keepingCapacity: true)
                    parts[p].first = r.offset
                }
                parts[p].records.append(r)
                if parts[p].records.count > capacity + capacity / 4 {
                    let drop = parts[p].records.count - capacity
                    parts[p].records.removeFirst(drop)
                    parts[p].first += Int64(drop)
                }
            }
        }
    }

    /// Up to `limit` records of `partition` from `offset`, when the cache holds that offset.
    func read(partition: Int, from offset: Int64, limit: Int) -> [LogRecord]? {
        partitions.withLock { parts in
            guard partition < parts.count else { return nil }
            let part = parts[partition]
            guard offset >= part.first, offset < part.end else { return nil }
            let start = Int(offset - part.first)
            return Array(part.records[start..<min(part.records.count, start + limit)])
        }
    }
}
