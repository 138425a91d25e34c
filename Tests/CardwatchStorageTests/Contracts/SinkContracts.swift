import CardwatchCore
import CardwatchFeatures
import CardwatchPipeline
import CardwatchPostgres
import CardwatchStorage
import Foundation
import Testing

/// A decision sink (with its idempotency index) under test.
enum SinkBackend: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, postgres
    var testDescription: String { rawValue }
    /// PostgreSQL when the test server is there (`testPostgresURL`).
    static var allCases: [SinkBackend] { testPostgresURL == nil ? [.memory, .sqlite] : [.memory, .sqlite, .postgres] }
    func with<T>(_ body: (any DecisionSink & DecisionIndex) throws -> T) throws -> T {
        switch self {
        case .memory: try body(MemorySink())
        case .sqlite: try withDirectory { try body(try SQLiteDecisionSink(path: $0 + "/sink.sqlite")) }
        case .postgres: try withPostgresDatabase { try body(try PostgresWarehouseSink(pool: $0)) }
        }
    }
}

/// A decision sink under test, with or without an idempotency index: the embedded
/// warehouse has none (its log refuses a repeated id at the append).
enum AnySinkBackend: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, warehouse, postgres
    var testDescription: String { rawValue }
    static var allCases: [AnySinkBackend] {
        testPostgresURL == nil ? [.memory, .sqlite, .warehouse] : [.memory, .sqlite, .warehouse, .postgres]
    }
    func with<T>(_ body: (any DecisionSink) throws -> T) throws -> T {
        switch self {
        case .memory: try body(MemorySink())
        case .postgres: try withPostgresDatabase { try body(try PostgresWarehouseSink(pool: $0)) }
        case .sqlite: try withDirectory { try body(try SQLiteDecisionSink(path: $0 + "/sink.sqlite")) }
        case .warehouse:
            try withDirectory { dir in
                // The records the batches name, in the log the warehouse shares its file with.
                let log = try SQLiteEventLog(directory: dir, partitions: 2)
                for p in 0..<2 {
                    var placed = 0
                    var k = 0
                    while placed < 4 {
                        let key = "card-\(k)"
                        k += 1
                        guard log.partition(forKey: key) == p else { continue }
                        _ = try log.append(.transactions, [(key: key, payload: Array("{}".utf8))])
                        placed += 1
                    }
                    _ = try log.append(.labels, [(key: "x", payload: Array("{}".utf8))])
                }
                return try body(SQLiteWarehouseSink(log: log))
            }
        }
    }
}

/// A checkpoint store under test.
enum CheckpointBackend: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, postgres
    var testDescription: String { rawValue }
    static var allCases: [CheckpointBackend] { testPostgresURL == nil ? [.memory, .sqlite] : [.memory, .sqlite, .postgres] }
    func with<T>(_ body: (any CheckpointStore) throws -> T) throws -> T {
        switch self {
        case .memory: try body(MemorySink())
        case .postgres: try withPostgresDatabase { try body(try PostgresCheckpointStore(pool: $0)) }
        case .sqlite: try withDirectory { try body(try SQLiteCheckpointStore(path: $0 + "/checkpoints.sqlite")) }
        }
    }
}

func decided(_ id: String, partition: Int, offset: Int64, probability: Double = 0.25) -> DecidedTransaction {
    let t = Transaction(
        transactionID: id, cardID: "card-\(partition)", amount: 12.5, timestamp: Timestamp(microseconds: 1_000_000 * offset),
        merchantID: "m-1", currency: "USD")
    let d = Decision(probability: probability, tier: .low, action: .approve, reasons: [], modelVersion: 3)
    return DecidedTransaction(
        transaction: t, features: FeatureVector(), decision: d, partition: partition, offset: offset, appendedAt: 0)
}

private func offsets(_ t: Int64, _ l: Int64) -> PartitionOffsets { PartitionOffsets(transactions: t, labels: l) }

@Suite struct DecisionSinkContract {
    @Test(arguments: AnySinkBackend.allCases)
    func aCommitMovesOffsetsWithItsOutputsAndRemembersWhereBatchesEnded(_ backend: AnySinkBackend) throws {
        try backend.with { sink in
            #expect(try sink.offsets(group: "g", partition: 0) == nil)
            var batch = SinkBatch(group: "g")
            batch.consumed = [ConsumedRange(partition: 0, from: .start, to: offsets(2, 1))]
            batch.decisions = [decided("a", partition: 0, offset: 0), decided("b", partition: 0, offset: 1)]
            try sink.commit(batch)
            var second = SinkBatch(group: "g")
            second.consumed = [
                ConsumedRange(partition: 0, from: offsets(2, 1), to: offsets(3, 1)),
                ConsumedRange(partition: 1, from: .start, to: offsets(1, 0)),
            ]
            second.decisions = [decided("c", partition: 0, offset: 2), decided("d", partition: 1, offset: 0)]
            try sink.commit(second)
            #expect(try sink.offsets(group: "g", partition: 0) == offsets(3, 1))
            #expect(try sink.offsets(group: "g", partition: 1) == offsets(1, 0))
            #expect(try sink.offsets(group: "other", partition: 0) == nil, "offsets are per group")
            #expect(try sink.batchEnds(group: "g", partition: 0, after: .start) == [offsets(2, 1), offsets(3, 1)])
            #expect(try sink.batchEnds(group: "g", partition: 0, after: offsets(2, 1)) == [offsets(3, 1)])
            #expect(try sink.batchEnds(group: "g", partition: 0, after: offsets(3, 1)) == [])
            guard let sink = sink as? any DecisionIndex else { return }
            let firsts = try sink.firstDecisions(["a", "c", "d", "zzz"])
            #expect(Set(firsts.keys) == ["a", "c", "d"])
            #expect(firsts["c"]?.partition == 0 && firsts["c"]?.offset == 2 && firsts["c"]?.modelVersion == 3)
        }
    }

    @Test(arguments: AnySinkBackend.allCases)
    func aBatchThatDoesNotStartAtTheStoredOffsetsWritesNothing(_ backend: AnySinkBackend) throws {
        try backend.with { sink in
            var batch = SinkBatch(group: "g")
            batch.consumed = [ConsumedRange(partition: 0, from: .start, to: offsets(1, 0))]
            batch.decisions = [decided("a", partition: 0, offset: 0)]
            try sink.commit(batch)
            // The same batch again (a zombie, a retry after an unknown outcome): refused whole.
            var twice = batch
            twice.consumed.append(ConsumedRange(partition: 1, from: .start, to: offsets(1, 0)))
            twice.decisions.append(decided("b", partition: 1, offset: 0))
            do {
                try sink.commit(twice)
                Issue.record("a batch behind the stored offsets was committed")
            } catch let e as DecisionSinkError {
                #expect(e.kind == .offsetConflict)
                #expect(e.description.contains("partition 0"))
            }
            #expect(try sink.offsets(group: "g", partition: 1) == nil, "nothing of the refused batch is kept")
            #expect(try sink.batchEnds(group: "g", partition: 0, after: .start) == [offsets(1, 0)])
            if let index = sink as? any DecisionIndex { #expect(try index.firstDecisions(["b"]).isEmpty) }
        }
    }

    @Test(arguments: SinkBackend.allCases)
    func theFirstDecisionOfAnIdStays(_ backend: SinkBackend) throws {
        try backend.with { sink in
            var batch = SinkBatch(group: "g")
            batch.consumed = [ConsumedRange(partition: 0, from: .start, to: offsets(1, 0))]
            batch.decisions = [decided("a", partition: 0, offset: 0, probability: 0.1)]
            try sink.commit(batch)
            var later = SinkBatch(group: "g")
            later.consumed = [ConsumedRange(partition: 1, from: .start, to: offsets(1, 0))]
            later.decisions = [decided("a", partition: 1, offset: 0, probability: 0.9)]
            try sink.commit(later)
            let first = try #require(try sink.firstDecisions(["a"])["a"])
            #expect(first.partition == 0 && first.offset == 0 && first.probability == 0.1)
        }
    }
}

extension DecisionSinkContract {
    @Test(arguments: SinkBackend.allCases)
    func aWholeBatchOfIdsIsLookedUpAtOnce(_ backend: SinkBackend) throws {
        try backend.with { sink in
            var batch = SinkBatch(group: "g")
            batch.consumed = [ConsumedRange(partition: 0, from: .start, to: offsets(1_200, 0))]
            batch.decisions = (0..<1_200).map { decided("t\($0)", partition: 0, offset: Int64($0)) }
            try sink.commit(batch)
            let asked = (0..<1_300).map { "t\($0)" } + ["t7", "t7"]
            let found = try sink.firstDecisions(asked)
            #expect(found.count == 1_200)
            #expect(found["t1199"]?.offset == 1_199 && found["t1200"] == nil)
        }
    }
}

@Suite struct CheckpointStoreContract {
    @Test(arguments: CheckpointBackend.allCases)
    func theLatestCheckpointOfEachPartitionAndGroupIsKept(_ backend: CheckpointBackend) throws {
        try backend.with { store in
            #expect(try store.latest(group: "g", partition: 0) == nil)
            let a = PartitionCheckpoint(partition: 0, offsets: offsets(10, 2), state: [1, 2, 3])
            let b = PartitionCheckpoint(partition: 0, offsets: offsets(20, 2), state: Array(repeating: 7, count: 100_000))
            let c = PartitionCheckpoint(partition: 1, offsets: offsets(5, 0), state: [])
            try store.save(a, group: "g")
            try store.save(c, group: "g")
            #expect(try store.latest(group: "g", partition: 0) == a)
            try store.save(b, group: "g")
            #expect(try store.latest(group: "g", partition: 0) == b)
            #expect(try store.latest(group: "g", partition: 1) == c)
            #expect(try store.latest(group: "h", partition: 0) == nil, "checkpoints are per group")
        }
    }
}
