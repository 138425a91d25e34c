import CardwatchPipeline
import CardwatchStorage
import Foundation
import Testing

// One body per protocol, run over every implementation, in the style of GRDB's tests that
// run one body over every `DatabaseWriter`. Kafka joins them when the build has it (`--traits Kafka`).

/// A log implementation under test, made fresh for one test.
enum LogBackend: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite
    #if Kafka
        /// Topics of their own on the shared mock cluster (`KafkaSupport.swift`).
        case kafka
    #endif
    var testDescription: String { rawValue }

    /// Runs `body` with a new, empty log of `partitions` partitions.
    func with<T>(partitions: Int, _ body: (any EventLog) throws -> T) throws -> T {
        switch self {
        case .memory: return try body(MemoryLog(partitions: partitions))
        case .sqlite: return try withDataDirectory { try body(try SQLiteEventLog(directory: $0, partitions: partitions)) }
        #if Kafka
            case .kafka: return try withKafkaLog(partitions: partitions) { try body($0) }
        #endif
        }
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct EventLogContract {
    @Test(arguments: LogBackend.allCases)
    func appendsAreDenseKeyedByMurmur2AndReadBackInOrder(_ backend: LogBackend) throws {
        try backend.with(partitions: 4) { log in
            #expect(log.partitioner == .murmur2)
            let batch = (0..<50).map { (key: "card-\($0 % 7)", payload: bytes("tx-\($0)")) }
            let positions = try log.append(.transactions, batch)
            #expect(positions.count == batch.count)
            var expected = [Int64](repeating: 0, count: 4)
            for (record, position) in zip(batch, positions) {
                // The partition is Kafka's: murmur2 of the key's bytes, as any Kafka client computes it.
                #expect(position.partition == KeyPartitioner.murmur2.partition(forKey: record.key, partitions: 4))
                #expect(position.offset == expected[position.partition], "offsets are dense per partition, from 0")
                expected[position.partition] += 1
            }
            for p in 0..<4 {
                #expect(try log.endOffset(.transactions, partition: p) == expected[p])
                let all = try log.read(.transactions, partition: p, from: 0, limit: .max)
                #expect(all.map(\.offset) == Array(0..<expected[p]))
                #expect(all.allSatisfy { $0.topic == .transactions && $0.partition == p })
                let wanted = zip(batch, positions).filter { $0.1.partition == p }.map(\.0.payload)
                #expect(all.map(\.payload) == wanted, "a partition keeps its records in append order")
                #expect(try log.read(.transactions, partition: p, from: expected[p], limit: 10).isEmpty)
                #expect(try log.read(.labels, partition: p, from: 0, limit: 10).isEmpty, "topics are separate")
            }
        }
    }

    @Test(arguments: LogBackend.allCases)
    func committedOffsetsNeverMoveBackwardsUnlessAsked(_ backend: LogBackend) throws {
        try backend.with(partitions: 2) { log in
            _ = try log.append(.transactions, (0..<10).map { (key: "k\($0)", payload: [UInt8($0)]) })
            let end = try log.endOffset(.transactions, partition: 0)
            #expect(try log.committedOffset(group: "g", topic: .transactions, partition: 0) == nil)
            try log.commit(group: "g", topic: .transactions, partition: 0, offset: end)
            #expect(try log.committedOffset(group: "g", topic: .transactions, partition: 0) == end)
            #expect(try log.committedOffset(group: "other", topic: .transactions, partition: 0) == nil)
            if end > 0 {
                #expect(throws: EventLogError.self) {
                    try log.commit(group: "g", topic: .transactions, partition: 0, offset: end - 1)
                }
                try log.commit(group: "g", topic: .transactions, partition: 0, offset: 0, allowBackwards: true)
                #expect(try log.committedOffset(group: "g", topic: .transactions, partition: 0) == 0)
            }
            #expect(throws: EventLogError.self) {
                try log.commit(group: "g", topic: .transactions, partition: 0, offset: end + 1)
            }
            #expect(throws: EventLogError.self) { _ = try log.read(.transactions, partition: 2, from: 0, limit: 1) }
        }
    }
}

/// Records every rebalance callback, and what the consumer held at the time.
final class RebalanceLog: RebalanceListener {
    var events: [String] = []
    var onAssign: ([Int]) throws -> Void = { _ in }
    func assigned(_ partitions: [Int]) throws {
        events.append("+\(partitions)")
        try onAssign(partitions)
    }
    func revoked(_ partitions: [Int]) throws { events.append("-\(partitions)") }
}

@Suite struct LogConsumerContract {
    /// Every consumer implementation over a log of `backend` (the in-process group today).
    private func consumers(_ log: any EventLog, group: String, count: Int) -> (ConsumerGroups, [any LogConsumer]) {
        let groups = ConsumerGroups()
        return (groups, (0..<count).map { _ in GroupConsumer(group: group, log: log, groups: groups) })
    }

    private func drain(_ c: any LogConsumer) throws -> [LogRecord] {
        var out: [LogRecord] = []
        while true {
            let batch = try c.poll(maxRecords: 7)
            if batch.isEmpty { return out }
            out += batch
        }
    }

    @Test(arguments: LogBackend.allCases)
    func oneMemberGetsEveryPartitionBeforeItsRecordsAndReadsEachInOrder(_ backend: LogBackend) throws {
        try backend.with(partitions: 4) { log in
            _ = try log.append(.transactions, (0..<60).map { (key: "card-\($0 % 9)", payload: [UInt8($0)]) })
            _ = try log.append(.labels, (0..<5).map { (key: "card-\($0)", payload: [UInt8($0)]) })
            let (_, members) = consumers(log, group: "g", count: 1)
            let listener = RebalanceLog()
            var recordsBeforeAssign: Int?
            var records: [LogRecord] = []
            listener.onAssign = { _ in recordsBeforeAssign = records.count }
            try members[0].subscribe([.labels, .transactions], listener: listener)
            while case let batch = try members[0].poll(maxRecords: 7), !batch.isEmpty { records += batch }
            #expect(recordsBeforeAssign == 0, "told of its partitions before any of their records")
            #expect(listener.events == ["+[0, 1, 2, 3]"])
            #expect(members[0].assignment == [0, 1, 2, 3])
            #expect(records.count == 65)
            for topic in [Topic.transactions, .labels] {
                for p in 0..<4 {
                    let offsets = records.filter { $0.topic == topic && $0.partition == p }.map(\.offset)
                    #expect(offsets == Array(0..<Int64(offsets.count)), "\(topic)[\(p)] in offset order, none twice")
                }
            }
            // Seek moves the next poll back.
            try members[0].seek(.transactions, partition: 1, to: 0)
            let again = try drain(members[0])
            #expect(again.map(\.offset) == Array(0..<(try log.endOffset(.transactions, partition: 1))))
            #expect(throws: ConsumerGroupError.self) {
                try members[0].seek(.alerts, partition: 0, to: 0)
            }
        }
    }

    @Test(arguments: LogBackend.allCases)
    func partitionsMoveOnlyAfterTheirOwnerGaveThemUp(_ backend: LogBackend) throws {
        try backend.with(partitions: 4) { log in
            let (groups, members) = consumers(log, group: "g", count: 3)
            let listeners = [RebalanceLog(), RebalanceLog(), RebalanceLog()]
            try members[0].subscribe([.transactions], listener: listeners[0])
            _ = try members[0].poll(maxRecords: 10)
            #expect(members[0].assignment == [0, 1, 2, 3])
            try members[1].subscribe([.transactions], listener: listeners[1])
            // The newcomer's share is still held: it waits for the owner's next poll.
            _ = try members[1].poll(maxRecords: 10)
            #expect(members[1].assignment == [])
            _ = try members[0].poll(maxRecords: 10)
            #expect(listeners[0].events == ["+[0, 1, 2, 3]", "-[2, 3]"])
            _ = try members[1].poll(maxRecords: 10)
            #expect(members[1].assignment == [2, 3])
            #expect(Set(members[0].assignment).isDisjoint(with: members[1].assignment))
            // A third member: range assignment 2/1/1.
            try members[2].subscribe([.transactions], listener: listeners[2])
            for _ in 0..<2 { for m in members { _ = try m.poll(maxRecords: 10) } }
            #expect(members.map(\.assignment) == [[0, 1], [2], [3]])
            // A clean leave: revoked, then taken over.
            try members[1].close()
            #expect(listeners[1].events.last == "-[2]")
            for _ in 0..<2 { for m in [members[0], members[2]] { _ = try m.poll(maxRecords: 10) } }
            #expect(members[0].assignment + members[2].assignment == [0, 1, 2, 3])
            // A member taken for dead loses its partitions without being asked, and is refused afterwards.
            let dead = try #require((members[2] as? GroupConsumer)?.member)
            groups.expel(group: "g", member: dead)
            #expect(throws: ConsumerGroupError.self) { _ = try members[2].poll(maxRecords: 10) }
            _ = try members[0].poll(maxRecords: 10)
            #expect(members[0].assignment == [0, 1, 2, 3])
        }
    }

    @Test(arguments: LogBackend.allCases)
    func aFailedAssignmentIsRetriedAtTheNextPoll(_ backend: LogBackend) throws {
        try backend.with(partitions: 2) { log in
            _ = try log.append(.transactions, [(key: "a", payload: [1])])
            let (_, members) = consumers(log, group: "g", count: 1)
            let listener = RebalanceLog()
            var failures = 1
            listener.onAssign = { _ in
                if failures > 0 {
                    failures -= 1
                    throw ConsumerGroupError("injected")
                }
            }
            try members[0].subscribe([.transactions], listener: listener)
            #expect(throws: ConsumerGroupError.self) { _ = try members[0].poll(maxRecords: 10) }
            #expect(members[0].assignment == [])
            #expect(try members[0].poll(maxRecords: 10).count == 1)
            #expect(members[0].assignment == [0, 1])
        }
    }
}
