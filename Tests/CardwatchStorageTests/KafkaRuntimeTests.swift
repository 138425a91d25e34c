#if Kafka
    import CardwatchCore
    import CardwatchFeatures
    import CardwatchKafka
    import CardwatchPipeline
    import Foundation
    import Testing

    /// The partition runtime on Kafka: two runtimes in one consumer group on the mock cluster,
    /// the same seams as over the in-process group (`PartitionRuntimeTests`).
    @Suite(.serialized) struct KafkaRuntimeTests {
        /// Steps the runtimes until `done` holds (30 s at most).
        func step(_ runtimes: [PartitionRuntime], _ what: String, until done: () -> Bool) throws {
            let deadline = Date().addingTimeInterval(30)
            while !done() {
                guard Date() < deadline else {
                    let held = runtimes.map { r in
                        "\(r.partitions) (consumer \((r.consumer as? KafkaConsumer)?.positions ?? ""), operators "
                            + "\(r.partitions.map { p in "\(p): \(r.position(p).map { "\($0)" } ?? "-")" }), \(r.counters))"
                    }
                    Issue.record("not within 30 s: \(what); the runtimes hold \(held)")
                    return
                }
                for r in runtimes { try r.step() }
            }
        }

        /// One runtime leaves mid-stream (a clean stop: it commits and checkpoints first); the
        /// other takes its partitions over from their checkpoints, and every transaction is
        /// decided once, with the card features of a single runtime over the in-memory log.
        @Test func twoRuntimesShareTheTopicsAndOneTakesOverWhenTheOtherLeaves() throws {
            let transactions = try history(days: 4, cards: 80, seed: 11, fraudRate: 0.05)
            let bench = try RuntimeBench(partitions: 4)
            try withKafkaLog(partitions: 4) { log in
                let group = newGroup()
                func runtime() throws -> PartitionRuntime {
                    var options = PartitionRuntime.Options()
                    options.batchRecords = 50
                    options.checkpointEvery = 3
                    options.features = bench.features
                    options.group = group
                    return PartitionRuntime(
                        consumer: try KafkaConsumer(log: log, group: group, sessionTimeout: 6), log: log, sink: bench.sink,
                        index: bench.sink, checkpoints: bench.sink, models: bench.models, options: options)
                }
                func append(_ chunk: ArraySlice<Transaction>) throws {
                    _ = try log.append(
                        .transactions, chunk.map { (key: $0.cardID, payload: IngestRecord(transaction: $0).payload) })
                    let labels = chunk.filter { $0.isFraud == true }.map {
                        RoutedLabel(
                            LabelEvent(transactionID: $0.transactionID, isFraud: true, reportedAt: $0.timestamp), transaction: $0)
                    }
                    _ = try log.append(.labels, labels.map { (key: $0.key, payload: $0.payload) })
                }
                let decided = { bench.sink.contents.decisions.count }
                let a = try runtime()
                let b = try runtime()
                try a.start()
                try b.start()
                let third = transactions.count / 3
                try append(transactions[..<third])
                try step([a, b], "two members sharing the partitions") {
                    a.partitions.count == 2 && b.partitions.count == 2 && decided() == third
                }
                #expect(Set(a.partitions).isDisjoint(with: b.partitions))
                try append(transactions[third..<(2 * third)])
                try step([a, b], "the second third decided") { decided() == 2 * third }
                try b.stop()
                try append(transactions[(2 * third)...])
                try step([a], "the rest decided by the one left") {
                    a.partitions == [0, 1, 2, 3] && decided() >= transactions.count
                }
                try a.stop()
                #expect(a.counters.checkpoints + b.counters.checkpoints > 0)
            }
            try bench.expectEachDecidedOnceWithTheCardFeaturesOfOneRuntime(transactions)
        }
    }
#endif
