import CardwatchCore
import CardwatchModel
import CardwatchPipeline
import Foundation
import GRDB
import Testing

@testable import CardwatchStorage

/// Reads served from the tail of recent appends against the same rows read with SQL: the same
/// records, never fewer than one when there is one, over random appends (another handle's,
/// as another process's, among them) and random reads.
@Suite struct TailCacheTests {
    @Test(arguments: [1, 2, 3] as [UInt64]) func cachedReadsAreWhatTheFileHolds(seed: UInt64) throws {
        try withDirectory { dir in
            var rng = SplitMix(seed: seed)
            let store = try SQLiteEventLog(directory: dir, partitions: 3)
            let other = try SQLiteEventLog(directory: dir)  // another process's handle
            let txs = try history(days: 3, cards: 40, seed: seed)
            var at = 0
            var cachedReads = 0
            while at < txs.count {
                let end = min(txs.count, at + Int(rng.next() % 50) + 1)
                var batch = IngestBatch(source: "t")
                batch.records = txs[at..<end].map { IngestRecord(transaction: $0) }
                // Now and then a foreign append, which the cache must not paper over.
                _ = try (rng.next() % 5 == 0 ? other : store).ingest(batch)
                at = end
                for _ in 0..<4 {
                    let p = Int(rng.next() % 3)
                    let endOffset = try other.endOffset(.transactions, partition: p)
                    guard endOffset > 0 else { continue }
                    let from = Int64(rng.next() % UInt64(endOffset))
                    let limit = Int(rng.next() % 40) + 1
                    let truth = try Self.rows(store, p, from: from, limit: limit)
                    let got = try store.read(.transactions, partition: p, from: from, limit: limit)
                    if store.tail.read(partition: p, from: from, limit: limit) != nil { cachedReads += 1 }
                    #expect(!got.isEmpty && got.count <= truth.count)
                    #expect(got == Array(truth.prefix(got.count)), "partition \(p) from \(from)")
                }
            }
            #expect(cachedReads > 0)
        }
    }

    /// The records as the file holds them, past any cache.
    static func rows(_ store: SQLiteEventLog, _ p: Int, from: Int64, limit: Int) throws -> [LogRecord] {
        try store.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT "offset", key, payload, appended_at FROM records
                    WHERE topic = 'transactions' AND "partition" = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?
                    """,
                arguments: [p, from, limit]
            ).map {
                let payload: Data = $0[2]
                return LogRecord(
                    topic: .transactions, partition: p, offset: $0[0], key: $0[1], payload: [UInt8](payload),
                    appendedAt: $0[3])
            }
        }
    }
}
