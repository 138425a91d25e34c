import CardwatchPipeline
import CardwatchStorage
import Foundation
import Testing

// MARK: Fixtures

/// A data directory not created yet (the log creates it), removed afterwards.
func withDataDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-log-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir + "/data")
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Every record of a topic, partition by partition.
private func readAll(_ log: SQLiteEventLog, _ topic: Topic) throws -> [LogRecord] {
    try (0..<log.partitions).flatMap { try log.read(topic, partition: $0, from: 0, limit: .max) }
}

/// The kind of the `EventLogError` thrown by `body`, or nil when it throws nothing.
private func errorKind(_ body: () throws -> Void) -> EventLogError.Kind? {
    do {
        try body()
        return nil
    } catch let error as EventLogError {
        return error.kind
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

// MARK: Tests

@Suite struct SQLiteEventLogTests {
    @Test func appendAndReadRoundTripAcrossTopicsAndPartitions() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 4)
            let batch = (0..<40).map { (key: "card-\($0 % 10)", payload: bytes("tx-\($0)")) }
            let positions = try log.append(.transactions, batch)
            #expect(positions.count == 40)
            _ = try log.append(.alerts, [(key: "card-3", payload: bytes("alert")), (key: "card-7", payload: [])])
            _ = try log.append(.labels, [(key: "card-3", payload: [0, 255, 1])])

            let transactions = try readAll(log, .transactions)
            #expect(transactions.count == 40)
            #expect(Set(transactions.map(\.partition)).count > 1, "ten keys should spread over several partitions")
            for (i, position) in positions.enumerated() {
                let record = try log.read(.transactions, partition: position.partition, from: position.offset, limit: 1)
                #expect(record.count == 1)
                #expect(record.first?.key == batch[i].key)
                #expect(record.first?.payload == batch[i].payload)
                #expect(record.first?.topic == .transactions)
                #expect(record.first?.partition == log.partition(forKey: batch[i].key))
            }
            let alerts = try readAll(log, .alerts)
            #expect(Set(alerts.map(\.payload)) == [bytes("alert"), []])
            #expect(try readAll(log, .labels).map(\.payload) == [[0, 255, 1]])
            #expect(try readAll(log, .transactionsDLQ).isEmpty)
            // A batch shares one append time, in microseconds since 1970.
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            #expect(Set(transactions.map(\.appendedAt)).count == 1)
            #expect(abs(transactions[0].appendedAt - now) < 60_000_000)
        }
    }

    @Test func offsetsAreDensePerPartitionAndInBatchOrder() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 3)
            for round in 0..<3 {
                let batch = (0..<50).map { (key: "card-\($0 % 13)", payload: bytes("\(round)-\($0)")) }
                let positions = try log.append(.transactions, batch)
                for (position, record) in zip(positions, batch) {
                    #expect(position.partition == log.partition(forKey: record.key))
                }
            }
            for partition in 0..<3 {
                let records = try log.read(.transactions, partition: partition, from: 0, limit: 1000)
                #expect(records.map(\.offset) == (0..<Int64(records.count)).map { $0 })
                #expect(try log.endOffset(.transactions, partition: partition) == Int64(records.count))
                // In append order: round by round, and within a round in batch order.
                let order = records.map { record -> [Int] in
                    String(decoding: record.payload, as: UTF8.self).split(separator: "-").map { Int($0)! }
                }
                #expect(order == order.sorted { $0.lexicographicallyPrecedes($1) })
            }
            #expect(try readAll(log, .transactions).count == 150)
        }
    }

    @Test func partitionIsAStableHashOfTheKey() throws {
        #expect(KeyHash.fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(KeyHash.fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(KeyHash.fnv1a64("foobar") == 0x8594_4171_f739_67e8)
        #expect(KeyHash.partition(forKey: "", partitions: 7) == 2)
        #expect(KeyHash.partition(forKey: "a", partitions: 7) == 5)
        #expect(KeyHash.partition(forKey: "foobar", partitions: 7) == 6)
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 4)
            #expect(log.partition(forKey: "") == 1)
            for key in ["card-1", "card-2", "card-000042", "ünïcödé"] {
                let positions = try log.append(.transactions, [(key, []), (key, []), (key, [])])
                #expect(Set(positions.map(\.partition)) == [log.partition(forKey: key)])
                #expect(log.partition(forKey: key) == log.partitioner.partition(forKey: key, partitions: 4))
            }
        }
    }

    @Test func readFromTheMiddleWithALimitAndEndOffset() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 2)
            let p = log.partition(forKey: "card")
            #expect(try log.endOffset(.transactions, partition: p) == 0)
            _ = try log.append(.transactions, (0..<10).map { (key: "card", payload: [UInt8($0)]) })
            #expect(try log.endOffset(.transactions, partition: p) == 10)
            #expect(try log.endOffset(.transactions, partition: 1 - p) == 0)
            #expect(try log.endOffset(.alerts, partition: p) == 0)

            let middle = try log.read(.transactions, partition: p, from: 4, limit: 3)
            #expect(middle.map(\.offset) == [4, 5, 6])
            #expect(middle.map(\.payload) == [[4], [5], [6]])
            #expect(try log.read(.transactions, partition: p, from: 8, limit: 100).map(\.offset) == [8, 9])
            #expect(try log.read(.transactions, partition: p, from: 10, limit: 100).isEmpty)
            #expect(try log.read(.transactions, partition: p, from: 0, limit: 0).isEmpty)
            #expect(errorKind { _ = try log.read(.transactions, partition: 2, from: 0, limit: 1) } == .invalidArgument)
            #expect(errorKind { _ = try log.read(.transactions, partition: p, from: -1, limit: 1) } == .invalidArgument)
            #expect(errorKind { _ = try log.endOffset(.transactions, partition: -1) } == .invalidArgument)
        }
    }

    @Test func committedOffsetsArePerGroup() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 2)
            _ = try log.append(.transactions, (0..<20).map { (key: "card-\($0)", payload: []) })
            let end0 = try log.endOffset(.transactions, partition: 0)
            #expect(try log.committedOffset(group: "features", topic: .transactions, partition: 0) == nil)

            try log.commit(group: "features", topic: .transactions, partition: 0, offset: 2)
            try log.commit(group: "warehouse", topic: .transactions, partition: 0, offset: end0)
            try log.commit(group: "features", topic: .transactions, partition: 1, offset: 1)
            #expect(try log.committedOffset(group: "features", topic: .transactions, partition: 0) == 2)
            #expect(try log.committedOffset(group: "warehouse", topic: .transactions, partition: 0) == end0)
            #expect(try log.committedOffset(group: "features", topic: .transactions, partition: 1) == 1)
            #expect(try log.committedOffset(group: "warehouse", topic: .transactions, partition: 1) == nil)
            #expect(try log.committedOffset(group: "features", topic: .alerts, partition: 0) == nil)

            try log.commit(group: "features", topic: .transactions, partition: 0, offset: 2)  // the same offset again is fine
            try log.commit(group: "features", topic: .transactions, partition: 0, offset: 5)
            #expect(try log.committedOffset(group: "features", topic: .transactions, partition: 0) == 5)
            // Beyond the end of the partition, or a negative offset: refused.
            #expect(
                errorKind { try log.commit(group: "features", topic: .transactions, partition: 0, offset: end0 + 1) }
                    == .invalidArgument)
            #expect(
                errorKind { try log.commit(group: "features", topic: .transactions, partition: 0, offset: -1) }
                    == .invalidArgument)
            #expect(errorKind { try log.commit(group: "x", topic: .alerts, partition: 5, offset: 0) } == .invalidArgument)
        }
    }

    @Test func commitBackwardsIsRefusedUnlessAllowed() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 1)
            _ = try log.append(.alerts, (0..<10).map { (key: "k\($0)", payload: []) })
            try log.commit(group: "g", topic: .alerts, partition: 0, offset: 7)
            do {
                try log.commit(group: "g", topic: .alerts, partition: 0, offset: 3)
                Issue.record("moving the offset backwards should be refused")
            } catch let error as EventLogError {
                #expect(error.kind == .offsetBackwards)
                #expect(error.description.contains("committed offset 7"))
                #expect(error.description.contains("allowBackwards"))
            }
            #expect(try log.committedOffset(group: "g", topic: .alerts, partition: 0) == 7)
            try log.commit(group: "g", topic: .alerts, partition: 0, offset: 3, allowBackwards: true)
            #expect(try log.committedOffset(group: "g", topic: .alerts, partition: 0) == 3)
        }
    }

    @Test func appendAndCommitIsAtomic() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir, partitions: 2)
            let inputs = try log.append(.transactions, (0..<10).map { (key: "card-\($0)", payload: bytes("tx\($0)")) })
            let p = inputs[0].partition
            let consumedEnd = try log.endOffset(.transactions, partition: p)
            #expect(consumedEnd > 1)

            // Success: the outputs are written and the input offset moves, together.
            let outputs = try log.appendAndCommit(
                .alerts, [(key: "card-0", payload: bytes("alert"))], group: "decide", consumed: .transactions, partition: p,
                offset: 1)
            #expect(outputs.count == 1)
            #expect(try readAll(log, .alerts).count == 1)
            #expect(try log.committedOffset(group: "decide", topic: .transactions, partition: p) == 1)

            // Failure in the commit (no such partition, then a backwards move, then beyond the end):
            // the whole call throws, and neither records nor offsets change.
            let failures: [(partition: Int, offset: Int64, kind: EventLogError.Kind)] = [
                (7, 2, .invalidArgument), (p, 0, .offsetBackwards), (p, consumedEnd + 1, .invalidArgument),
            ]
            for failure in failures {
                let kind = errorKind {
                    _ = try log.appendAndCommit(
                        .alerts, (0..<5).map { (key: "card-\($0)", payload: bytes("lost")) }, group: "decide",
                        consumed: .transactions, partition: failure.partition, offset: failure.offset)
                }
                #expect(kind == failure.kind)
                #expect(try readAll(log, .alerts).map(\.payload) == [bytes("alert")])
                #expect(try log.committedOffset(group: "decide", topic: .transactions, partition: p) == 1)
                #expect(try (0..<2).map { try log.endOffset(.alerts, partition: $0) }.reduce(0, +) == 1)
            }
        }
    }

    @Test func reopeningKeepsRecordsAndOffsets() throws {
        try withDataDirectory { dir in
            var positions: [LogPosition] = []
            do {
                let log = try SQLiteEventLog(directory: dir, partitions: 3)
                positions = try log.append(.labels, (0..<30).map { (key: "card-\($0)", payload: bytes("label\($0)")) })
                try log.commit(group: "labels", topic: .labels, partition: 1, offset: 2)
            }
            #expect(FileManager.default.fileExists(atPath: dir + "/" + SQLiteEventLog.fileName))
            let log = try SQLiteEventLog(directory: dir, partitions: 3)
            #expect(try readAll(log, .labels).count == 30)
            #expect(try log.committedOffset(group: "labels", topic: .labels, partition: 1) == 2)
            // Appending after a reopen continues each partition's offsets.
            let more = try log.append(.labels, [(key: "card-0", payload: [])])
            let p = more[0].partition
            #expect(more[0].offset == Int64(positions.filter { $0.partition == p }.count))
        }
    }

    @Test func reopeningWithAnotherPartitionCountIsRefused() throws {
        try withDataDirectory { dir in
            _ = try SQLiteEventLog(directory: dir, partitions: 4)
            do {
                _ = try SQLiteEventLog(directory: dir, partitions: 8)
                Issue.record("reopening with 8 partitions should be refused")
            } catch let error as EventLogError {
                #expect(error.kind == .partitionCountMismatch)
                #expect(error.description.contains("has 4 partitions"))
            }
            #expect(try SQLiteEventLog(directory: dir).partitions == 4, "an existing log keeps its own count")
            #expect(try SQLiteEventLog(directory: dir + "/new").partitions == SQLiteEventLog.defaultPartitions)
            #expect(errorKind { _ = try SQLiteEventLog(directory: dir + "/other", partitions: 0) } == .invalidArgument)
        }
    }

    @Test func appendsAHundredThousandRecordsInOneCall() throws {
        try withDataDirectory { dir in
            let log = try SQLiteEventLog(directory: dir)
            let count = 100_000
            let batch = (0..<count).map { i in
                (key: "card-\(i % 5_000)", payload: bytes("{\"transaction_id\":\"tx-\(i)\",\"amount\":12.5}"))
            }
            let clock = ContinuousClock()
            var positions: [LogPosition] = []
            let elapsed = try clock.measure { positions = try log.append(.transactions, batch) }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            print(
                "SQLiteEventLog: appended \(count) records in one call in \(String(format: "%.3f", seconds)) s "
                    + "(\(Int(Double(count) / seconds)) records/s)")
            #expect(positions.count == count)
            let total = try (0..<log.partitions).map { try log.endOffset(.transactions, partition: $0) }.reduce(0, +)
            #expect(total == Int64(count))
            let last = try log.read(
                .transactions, partition: positions[count - 1].partition, from: positions[count - 1].offset, limit: 1)
            #expect(last.first?.payload == batch[count - 1].payload)
        }
    }
}
