import CardwatchCore
public import CardwatchPipeline
import GRDB

/// What an ingest would append, read without writing: where each fresh record would go and
/// how each touched partition's topics end. The embedded runtime decides the records from
/// it, then appends them and commits their decisions in one transaction, which holds only
/// if the log is still as planned (`SQLiteWarehouseSink.commit(_:appending:as:)`).
public struct IngestPlan: Sendable, Equatable {
    /// The accepted records' indices in the batch, and their places in the log, in order.
    public var fresh: [Int] = []
    public var places: [LogPosition] = []
    /// Where the partitions the fresh records go to end (both topics), as planned.
    public var ends: [Int: PartitionOffsets] = [:]
}

/// The log moved since the plan (another writer appended, or an id became known): nothing
/// was written; plan again.
public struct IngestPlanConflict: Error, CustomStringConvertible {
    public var description: String { "the log changed between the plan of an ingest and its append" }
}

extension SQLiteEventLog {
    /// The plan of `ingest(batch)` as the log stands now.
    public func planIngest(_ batch: IngestBatch) throws -> IngestPlan {
        try Self.perform("planning the ingest of \(batch.records.count) records") {
            // On a reader, in a read transaction: statements left on the writer's connection outside
            // a transaction kept its pager in SQLite's error state after a full disk (SQLITE_FULL
            // at a commit), and every later commit failed although the disk had room again.
            try pool.read { db in
                let ids = batch.records.map(\.transaction.transactionID)
                var known = Set<String>()
                for start in stride(from: 0, to: ids.count, by: 500) {
                    let chunk = Array(ids[start..<min(ids.count, start + 500)])
                    // Cached: a statement per chunk size, prepared once (the HTTP API's groups are a handful).
                    let rows = try String.fetchAll(
                        db.cachedStatement(
                            sql: """
                                SELECT transaction_id FROM seen_transactions
                                WHERE transaction_id IN (\(databaseQuestionMarks(count: chunk.count)))
                                """),
                        arguments: StatementArguments(chunk))
                    known.formUnion(rows)
                }
                var plan = IngestPlan()
                var inBatch = Set<String>()
                var next: [Int: Int64] = [:]
                for (i, record) in batch.records.enumerated() {
                    let id = record.transaction.transactionID
                    guard !known.contains(id), inBatch.insert(id).inserted else { continue }
                    let p = partition(forKey: record.transaction.cardID)
                    let offset = try next[p] ?? Self.endOffset(db, .transactions, p)
                    next[p] = offset + 1
                    plan.fresh.append(i)
                    plan.places.append(LogPosition(partition: p, offset: offset))
                }
                for p in next.keys { plan.ends[p] = try ends(db, p) }
                return plan
            }
        }
    }

    /// Where partition `p`'s topics end, in the caller's transaction.
    func ends(_ db: Database, _ p: Int) throws -> PartitionOffsets {
        PartitionOffsets(transactions: try Self.endOffset(db, .transactions, p), labels: try Self.endOffset(db, .labels, p))
    }
}

extension SQLiteWarehouseSink {
    /// Appends `batch` as `plan` says and commits `decisions` (the runtime's of its fresh
    /// records) in one transaction; throws `IngestPlanConflict`, having written nothing, when
    /// the log is no longer as planned.
    public func commit(_ decisions: SinkBatch, appending batch: IngestBatch, as plan: IngestPlan) throws -> IngestOutcome {
        let (appended, written) = try transaction(
            "appending \(batch.records.count) records from \(batch.source) with their decisions"
        ) { db, cards in
            for (p, end) in plan.ends where try log.ends(db, p) != end { throw IngestPlanConflict() }
            let appended = try log.append(db, batch)
            guard appended.places == plan.places else { throw IngestPlanConflict() }
            return (appended, try write(db, decisions, cards: &cards))
        }
        log.tail.add(appended.records)  // committed
        observer?(written)
        return appended.outcome
    }
}
