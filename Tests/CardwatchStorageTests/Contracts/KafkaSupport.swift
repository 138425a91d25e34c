#if Kafka
    import CardwatchKafka
    import CardwatchPipeline
    import Foundation
    import CardwatchCore
    import Testing

    /// One mock cluster (three brokers) for the whole test process; each test makes topics of its own.
    let kafkaTestCluster: KafkaMockCluster = {
        do { return try KafkaMockCluster(brokers: 3) } catch { fatalError("the Kafka mock cluster: \(error)") }
    }()

    /// Runs `body` with a new, empty Kafka log of `partitions` partitions (topics under a new prefix).
    func withKafkaLog<T>(partitions: Int, _ body: (KafkaLog) throws -> T) throws -> T {
        let prefix = "t\(UInt64.random(in: 0...UInt64.max))."
        try kafkaTestCluster.createTopics(prefix: prefix, partitions: partitions)
        return try body(try KafkaLog(kafkaTestCluster.endpoint(topicPrefix: prefix), partitions: partitions))
    }

    /// A consumer group of the test's own: a group is the cluster's, and the contract suites
    /// commit offsets as a group outside any membership, which a group with live members refuses.
    func newGroup() -> String { "g\(UInt64.random(in: 0...UInt64.max))" }

    /// Polls every consumer until `done` holds (or 30 s pass: a failure).
    func pollUntil(
        _ consumers: [KafkaConsumer], _ what: String, into records: inout [[LogRecord]], _ done: ([[LogRecord]]) -> Bool
    ) throws {
        let deadline = Date().addingTimeInterval(30)
        while !done(records) {
            guard Date() < deadline else {
                Issue.record("not within 30 s: \(what)")
                return
            }
            for (i, c) in consumers.enumerated() { records[i] += try c.poll(maxRecords: 50) }
        }
    }

    /// Records rebalance callbacks in one sequence for all the members of a test.
    final class GroupEvents: RebalanceListener {
        let member: Int
        let sink: Locked<[String]>
        var consumer: KafkaConsumer?
        var onAssign: ([Int]) throws -> Void = { _ in }
        init(member: Int, sink: Locked<[String]>) {
            self.member = member
            self.sink = sink
        }
        func assigned(_ partitions: [Int]) throws {
            sink.withLock { $0.append("\(member)+\(partitions)") }
            try onAssign(partitions)
        }
        func revoked(_ partitions: [Int]) throws { sink.withLock { $0.append("\(member)-\(partitions)") } }
    }

    @Suite(.serialized) struct KafkaGroupTests {
        @Test func oneMemberGetsEveryPartitionFromWhereItSeeksAndReadsEachInOrder() throws {
            try withKafkaLog(partitions: 4) { log in
                let group = newGroup()
                _ = try log.append(.transactions, (0..<60).map { (key: "card-\($0 % 9)", payload: [UInt8($0)]) })
                _ = try log.append(.labels, (0..<5).map { (key: "card-\($0)", payload: [UInt8($0)]) })
                let events = Locked<[String]>([])
                let listener = GroupEvents(member: 0, sink: events)
                let consumer = try KafkaConsumer(log: log, group: group, sessionTimeout: 6)
                // Partition 1 resumes from offset 2 of its transactions (as a sink's offsets would say).
                listener.onAssign = { parts in
                    for p in parts {
                        try consumer.seek(.transactions, partition: p, to: p == 1 ? 2 : 0)
                        try consumer.seek(.labels, partition: p, to: 0)
                    }
                }
                try consumer.subscribe([.transactions, .labels], listener: listener)
                var records: [[LogRecord]] = [[]]
                let end1 = try log.endOffset(.transactions, partition: 1)
                try pollUntil([consumer], "every record", into: &records) { $0[0].count == 65 - 2 }
                #expect(events.withLock { $0 } == ["0+[0, 1, 2, 3]"])
                for topic in [Topic.transactions, .labels] {
                    for p in 0..<4 {
                        let offsets = records[0].filter { $0.topic == topic && $0.partition == p }.map(\.offset)
                        let first: Int64 = topic == .transactions && p == 1 ? 2 : 0
                        #expect(offsets == Array(first..<first + Int64(offsets.count)), "\(topic)[\(p)] in order, none twice")
                    }
                }
                // A seek back within the last poll, and one before it (librdkafka's own seek).
                for target in [end1 - 1, 0] {
                    try consumer.seek(.transactions, partition: 1, to: target)
                    var again: [[LogRecord]] = [[]]
                    try pollUntil([consumer], "partition 1 again from \(target)", into: &again) {
                        $0[0].filter { $0.partition == 1 && $0.topic == .transactions }.count == Int(end1 - target)
                    }
                    #expect(again[0].filter { $0.partition == 1 }.map(\.offset) == Array(target..<end1))
                }
                try consumer.close()
                #expect(events.withLock { $0.last } == "0-[0, 1, 2, 3]", "a clean leave revokes what it held")
            }
        }

        /// The runtime gives back the transactions it cannot fold before a label that precedes
        /// them arrives (a seek back into the last poll): the label must still come. (Once the
        /// records given back filled every poll, librdkafka was never asked again and the
        /// partition waited for ever.)
        @Test func recordsGivenBackNeverStarveTheOtherTopic() throws {
            try withKafkaLog(partitions: 1) { log in
                let group = newGroup()
                _ = try log.append(.transactions, (0..<20).map { (key: "card-\($0)", payload: [UInt8($0)]) })
                let consumer = try KafkaConsumer(log: log, group: group, sessionTimeout: 6)
                let listener = GroupEvents(member: 0, sink: Locked([]))
                listener.onAssign = { _ in
                    try consumer.seek(.transactions, partition: 0, to: 0)
                    try consumer.seek(.labels, partition: 0, to: 0)
                }
                try consumer.subscribe([.transactions, .labels], listener: listener)
                var first: [[LogRecord]] = [[]]
                try pollUntil([consumer], "the first transactions", into: &first) { $0[0].count >= 5 }
                try consumer.seek(.transactions, partition: 0, to: 0)
                _ = try log.append(.labels, [(key: "card-0", payload: [1])])
                var labelCame = false
                let deadline = Date().addingTimeInterval(20)
                while !labelCame && Date() < deadline {
                    let batch = try consumer.poll(maxRecords: 5)
                    labelCame = batch.contains { $0.topic == .labels }
                    // Waiting for the label: the transactions go back.
                    if let firstTransaction = batch.first(where: { $0.topic == .transactions }) {
                        try consumer.seek(.transactions, partition: 0, to: firstTransaction.offset)
                    }
                }
                #expect(labelCame, "the label appended after the transactions never came")
                try consumer.close()
            }
        }

        /// Assignors that place each topic's partitions on their own are refused: partition p of
        /// transactions and of labels must stay on one member.
        @Test func assignorsThatSplitCoPartitionedTopicsAreRefused() throws {
            try withKafkaLog(partitions: 2) { plain in
                for strategy in ["cooperative-sticky", "roundrobin"] {
                    var endpoint = plain.endpoint
                    endpoint.options = [KafkaOption(key: "partition.assignment.strategy", value: strategy)]
                    let log = try KafkaLog(endpoint, partitions: 2)
                    #expect {
                        _ = try KafkaConsumer(log: log, group: newGroup())
                    } throws: { "\($0)".contains("keeps partition p of transactions and of labels on one member") }
                }
            }
        }

        @Test func partitionsMoveOnlyAfterTheirOwnerGaveThemUp() throws {
            try withKafkaLog(partitions: 4) { log in
                let group = newGroup()
                _ = try log.append(.transactions, (0..<40).map { (key: "card-\($0)", payload: [UInt8($0)]) })
                let events = Locked<[String]>([])
                let listeners = [GroupEvents(member: 0, sink: events), GroupEvents(member: 1, sink: events)]
                let consumers = try (0..<2).map { _ in try KafkaConsumer(log: log, group: group, sessionTimeout: 6) }
                for (c, l) in zip(consumers, listeners) {
                    l.onAssign = { parts in for p in parts { try c.seek(.transactions, partition: p, to: 0) } }
                }
                var records: [[LogRecord]] = [[], []]
                try consumers[0].subscribe([.transactions], listener: listeners[0])
                try pollUntil([consumers[0]], "the first member's assignment", into: &records) { _ in
                    consumers[0].assignment == [0, 1, 2, 3]
                }
                try consumers[1].subscribe([.transactions], listener: listeners[1])
                try pollUntil(consumers, "a split of the partitions", into: &records) { _ in
                    consumers[0].assignment.count == 2 && consumers[1].assignment.count == 2
                }
                #expect(Set(consumers[0].assignment).isDisjoint(with: consumers[1].assignment))
                let seen = events.withLock { $0 }
                for p in consumers[1].assignment {
                    let gained = try #require(seen.firstIndex { $0.hasPrefix("1+") && $0.contains("\(p)") })
                    let given = seen.firstIndex { $0.hasPrefix("0-") && $0.contains("\(p)") }
                    #expect(given.map { $0 < gained } == true, "partition \(p) revoked from 0 before 1 got it: \(seen)")
                }
                // The leaver's partitions go to the other, after its revocation.
                try consumers[1].close()
                try pollUntil([consumers[0]], "everything back with the first member", into: &records) { _ in
                    consumers[0].assignment == [0, 1, 2, 3]
                }
                // …and fetched again: records appended now reach it, in every partition.
                let before = records[0].count
                _ = try log.append(.transactions, (40..<80).map { (key: "card-\($0)", payload: [UInt8($0)]) })
                try pollUntil([consumers[0]], "the records appended after the partitions came back", into: &records) {
                    Set($0[0].dropFirst(before).map(\.payload)).isSuperset(of: (40..<80).map { [UInt8($0)] })
                }
                let late = records[0].dropFirst(before).filter { $0.payload.first.map { $0 >= 40 } ?? false }
                #expect(
                    late.count >= 40,
                    "arrived by partition: \(Dictionary(grouping: late, by: \.partition).mapValues(\.count)); \(consumers[0].positions); \(seen)"
                )
                try consumers[0].close()
            }
        }
    }
#endif
