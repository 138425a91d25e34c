import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Testing

/// Runtimes over one shared in-memory log and sink, the way several processes share Kafka and PostgreSQL.
final class RuntimeBench {
    let log: MemoryLog
    let sink = MemorySink()
    let groups = ConsumerGroups()
    let models: ProductionModel
    /// Labels count at once (the default waits 7 days, longer than these streams), so the
    /// order in which labels and transactions are folded shows in the merchant fraud rates.
    let features: FeatureConfig = {
        var c = FeatureConfig()
        c.labelDelay = 0
        return c
    }()

    init(partitions: Int, pivot: Double = 400) throws {
        log = MemoryLog(partitions: partitions)
        models = ProductionModel(try Scorer(artifact: amountModel(pivot: pivot), version: 1))
    }

    func runtime(batchRecords: Int = 64, checkpointEvery: Int = 4, pipelined: Bool = false) -> PartitionRuntime {
        var options = PartitionRuntime.Options()
        options.batchRecords = batchRecords
        options.checkpointEvery = checkpointEvery
        options.pipelined = pipelined
        options.features = features
        return PartitionRuntime(
            consumer: GroupConsumer(group: options.group, log: log, groups: groups), log: log, sink: sink, index: sink,
            checkpoints: sink, models: models, options: options)
    }

    func append(_ transactions: some Collection<Transaction>) throws {
        _ = try log.append(.transactions, transactions.map { (key: $0.cardID, payload: IngestRecord(transaction: $0).payload) })
    }

    /// Labels for every fraud among `transactions`, routed to their card's partition.
    func appendLabels(for transactions: some Collection<Transaction>) throws {
        let labels = transactions.filter { $0.isFraud == true }.map {
            RoutedLabel(LabelEvent(transactionID: $0.transactionID, isFraud: true, reportedAt: $0.timestamp), transaction: $0)
        }
        _ = try log.append(.labels, labels.map { (key: $0.key, payload: $0.payload) })
    }

    /// Steps every runtime in turn until none has anything left.
    func drain(_ runtimes: [PartitionRuntime]) throws {
        var idle = 0
        while idle < 2 {
            var consumed = 0
            for r in runtimes { consumed += try r.step() }
            idle = consumed == 0 ? idle + 1 : 0
        }
    }

    /// Every transaction decided once, every label applied, and each decision's card features
    /// those of the same stream through one runtime alone over a memory log (the reference).
    func expectEachDecidedOnceWithTheCardFeaturesOfOneRuntime(_ transactions: [Transaction]) throws {
        let decided = sink.contents.decisions
        #expect(decided.count == transactions.count)
        #expect(Set(decided.map(\.transaction.transactionID)).count == transactions.count, "each decided exactly once")
        #expect(sink.contents.labels.count == transactions.filter { $0.isFraud == true }.count)
        let alone = try RuntimeBench(partitions: log.partitions)
        let single = alone.runtime(batchRecords: 50, checkpointEvery: 3)
        try single.start()
        try alone.append(transactions)
        try alone.appendLabels(for: transactions)
        try alone.drain([single])
        let reference = alone.decisions
        for d in decided {
            let r = try #require(reference[d.transaction.transactionID])
            #expect(d.partition == r.partition, "the same partition (murmur2 of the card)")
            for f in Feature.allCases where !merchantFeatures.contains(f) {
                #expect(d.features[f] == r.features[f], "\(d.transaction.transactionID) \(f)")
            }
        }
    }

    var decisions: [String: DecidedTransaction] {
        Dictionary(sink.contents.decisions.map { ($0.transaction.transactionID, $0) }, uniquingKeysWith: { a, _ in a })
    }
}

/// The naive reference: one feature engine per partition, fed that partition's transactions in log order.
func sequentialFeatures(_ log: any LogReader, config: FeatureConfig) throws -> [String: FeatureVector] {
    var out: [String: FeatureVector] = [:]
    var decoder = TransactionJSONDecoder(policy: .log)
    for p in 0..<log.partitions {
        var engine = try FeatureEngine(config: config)
        for r in try log.read(.transactions, partition: p, from: 0, limit: .max) {
            let t = try r.payload.withUnsafeBytes { try decoder.decode($0).get() }
            out[t.transactionID] = engine.process(t)
        }
    }
    return out
}

let merchantFeatures: Set<Feature> = [
    .merchantTxCount1d, .merchantTxCount7d, .merchantTxCount30d, .merchantFraudRate1d, .merchantFraudRate7d,
    .merchantFraudRate30d,
]

@Suite struct PartitionRuntimeTests {
    @Test(arguments: [(1, 7), (3, 31), (4, 64), (5, 1)])
    func everyTransactionIsDecidedOnceWithTheFeaturesOfASequentialEnginePerPartition(partitions: Int, batch: Int) throws {
        let bench = try RuntimeBench(partitions: partitions)
        let transactions = try history(days: 3, cards: 60, seed: UInt64(partitions * 100 + batch))
        let runtime = bench.runtime(batchRecords: batch, checkpointEvery: 3)
        try runtime.start()
        // Appends and polls interleaved, in uneven chunks, as a stream arrives.
        var rng = SplitMix(seed: UInt64(batch))
        var at = 0
        while at < transactions.count {
            let n = Int(rng.next() % 200) + 1
            try bench.append(transactions[at..<min(transactions.count, at + n)])
            at += n
            for _ in 0..<Int(rng.next() % 4) { try runtime.step() }
        }
        try bench.drain([runtime])
        let reference = try sequentialFeatures(bench.log, config: bench.features)
        let decided = bench.sink.contents.decisions
        #expect(decided.count == transactions.count)
        #expect(Set(decided.map(\.transaction.transactionID)).count == transactions.count, "none decided twice")
        let scorer = bench.models.current.scorer
        for d in decided {
            let expected = try #require(reference[d.transaction.transactionID])
            #expect(d.features == expected, "\(d.transaction.transactionID)")
            #expect(d.decision.probability == scorer.decide(expected, rules: RuleBook()).probability)
        }
        for p in 0..<partitions {
            #expect(
                try bench.sink.offsets(group: "processor", partition: p)?.transactions
                    == (try bench.log.endOffset(.transactions, partition: p)))
        }
    }

    /// Two runtimes in one consumer group; one leaves mid-stream (cleanly, or taken for dead
    /// with work it never committed) and the other resumes its partitions from their checkpoints.
    @Test(arguments: [false, true])
    func twoRuntimesShareTheLogAndOneTakesOverWhenTheOtherStops(crash: Bool) throws {
        let transactions = try history(days: 4, cards: 80, seed: 11, fraudRate: 0.05)
        let bench = try RuntimeBench(partitions: 4)
        let a = bench.runtime(batchRecords: 50, checkpointEvery: 3)
        let b = bench.runtime(batchRecords: 50, checkpointEvery: 3)
        try a.start()
        try b.start()
        let third = transactions.count / 3
        try bench.append(transactions[..<third])
        try bench.appendLabels(for: transactions[..<third])
        for _ in 0..<6 {
            try a.step()
            try b.step()
        }
        #expect(a.partitions == [0, 1] && b.partitions == [2, 3], "range assignment over two members")
        try bench.append(transactions[third..<(2 * third)])
        try bench.appendLabels(for: transactions[third..<(2 * third)])
        for _ in 0..<4 {
            try a.step()
            try b.step()
        }
        if crash {
            // b polls a batch and dies before committing it: its operators' work is lost, not its commits.
            bench.sink.failNextCommits(1)
            #expect(throws: DecisionSinkError.self) { try b.step() }
            let member = try #require((b.consumer as? GroupConsumer)?.member)
            bench.groups.expel(group: "processor", member: member)
        } else {
            try b.stop()
        }
        try bench.append(transactions[(2 * third)...])
        try bench.appendLabels(for: transactions[(2 * third)...])
        try bench.drain([a])
        #expect(a.partitions == [0, 1, 2, 3])
        #expect(a.counters.replayed > 0 || !crash, "a crashed member's partitions are rebuilt by replay")

        try bench.expectEachDecidedOnceWithTheCardFeaturesOfOneRuntime(transactions)
    }

    /// Checkpoints every few batches (a short replay after the latest), or never (all replayed).
    @Test(arguments: [4, 7, 100_000])
    func aRestoredPartitionHoldsExactlyTheStateItsCommittedDecisionsSaw(checkpointEvery: Int) throws {
        let transactions = try history(days: 3, cards: 50, seed: 5, fraudRate: 0.08)
        let bench = try RuntimeBench(partitions: 3)
        let a = bench.runtime(batchRecords: 37, checkpointEvery: checkpointEvery)
        try a.start()
        var at = 0
        while at < transactions.count * 2 / 3 {
            let chunk = transactions[at..<min(transactions.count, at + 90)]
            try bench.append(chunk)
            try bench.appendLabels(for: chunk)
            at += 90
            try a.step()
            try a.step()
        }
        try bench.drain([a])
        var live = try (0..<3).map { try #require(a.partitionOperator($0)) }
        let member = try #require((a.consumer as? GroupConsumer)?.member)
        bench.groups.expel(group: "processor", member: member)
        let b = bench.runtime(batchRecords: 37, checkpointEvery: checkpointEvery)
        try b.start()
        _ = try b.consumer.poll(maxRecords: 0)  // the assignment alone: restored, nothing new decided
        #expect(b.partitions == [0, 1, 2])
        if checkpointEvery == 100_000 { #expect(b.counters.replayed > at / 2, "everything replayed") }
        for p in 0..<3 { #expect(try #require(b.partitionOperator(p)).state.stats == live[p].state.stats) }
        #expect(live.reduce(0) { $0 + $1.state.stats.labelsApplied } > 0)
        // (Snapshots are not compared byte for byte: they copy structs with their padding.)
        // The rest of the stream through the restored operators and through the live ones: the same features.
        let rest = transactions[min(at, transactions.count)...]
        let decidedBefore = bench.sink.contents.decisions.count
        try bench.append(rest)
        try bench.drain([b])
        let after = bench.sink.contents.decisions[decidedBefore...]
        #expect(after.count == rest.count)
        for d in after {
            #expect(d.features == live[d.partition].update(d.transaction), "\(d.transaction.transactionID)")
        }
    }

    /// Commits fail now and then, on the runtime's thread or (pipelined) on the committer's,
    /// where later batches were already folded on top of the failed one.
    @Test(arguments: [false, true]) func aFailedCommitRebuildsTheOperatorsAndLosesNothing(pipelined: Bool) throws {
        let transactions = try history(days: 2, cards: 40, seed: 9)
        let bench = try RuntimeBench(partitions: 2)
        let runtime = bench.runtime(batchRecords: 25, checkpointEvery: 2, pipelined: pipelined)
        try runtime.start()
        try bench.append(transactions)
        var failures = 0
        var rng = SplitMix(seed: 4)
        while true {
            if rng.next() % 5 == 0 { bench.sink.failNextCommits(1) }
            do {
                if try runtime.step() == 0 {
                    try runtime.flush()
                    if try runtime.step() == 0 { break }
                }
            } catch is DecisionSinkError {
                failures += 1
            }
        }
        try runtime.flush()
        #expect(failures > 0)
        #expect(runtime.counters.decided == transactions.count, "counted once each, committed")
        let reference = try sequentialFeatures(bench.log, config: bench.features)
        let decided = bench.sink.contents.decisions
        #expect(decided.count == transactions.count)
        for d in decided { #expect(d.features == reference[d.transaction.transactionID]) }
    }

    /// The idempotency index fails now and then in the middle of a batch: the partitions folded
    /// so far are rebuilt, those not reached yet go back to where they were; nothing is lost or doubled.
    @Test func aFailureInTheMiddleOfABatchLeavesNoPartitionAhead() throws {
        final class FlakyIndex: DecisionIndex, @unchecked Sendable {
            // `@unchecked Sendable`: used from the test's one thread only.
            let base: MemorySink
            var calls = 0
            init(_ base: MemorySink) { self.base = base }
            func firstDecisions(_ ids: [String]) throws -> [String: FirstDecision] {
                calls += 1
                // Now and then, never twice in a row (a step asks once per partition it polled).
                if calls % 7 == 3 && calls < 200 { throw DecisionSinkError(.storage, "injected index failure") }
                return try base.firstDecisions(ids)
            }
        }
        let transactions = try history(days: 2, cards: 60, seed: 13)
        let bench = try RuntimeBench(partitions: 4)
        var options = PartitionRuntime.Options()
        options.batchRecords = 40
        options.checkpointEvery = 3
        options.features = bench.features
        let runtime = PartitionRuntime(
            consumer: GroupConsumer(group: options.group, log: bench.log, groups: bench.groups), log: bench.log,
            sink: bench.sink, index: FlakyIndex(bench.sink), checkpoints: bench.sink, models: bench.models,
            options: options)
        try runtime.start()
        try bench.append(transactions)
        var failures = 0
        var idle = 0
        while idle < 2 {
            do { idle = try runtime.step() == 0 ? idle + 1 : 0 } catch is DecisionSinkError { failures += 1 }
        }
        #expect(failures > 0)
        let reference = try sequentialFeatures(bench.log, config: bench.features)
        let decided = bench.sink.contents.decisions
        #expect(decided.count == transactions.count)
        #expect(Set(decided.map(\.transaction.transactionID)).count == transactions.count)
        for d in decided { #expect(d.features == reference[d.transaction.transactionID]) }
    }

    /// A runtime whose commit was refused leaves the group: its operators, ahead of the sink,
    /// are not checkpointed; the next owner resumes exactly.
    @Test func aRuntimeThatStopsAfterARefusedCommitLeavesNoCheckpointAheadOfTheSink() throws {
        let transactions = try history(days: 2, cards: 40, seed: 17)
        let bench = try RuntimeBench(partitions: 2)
        let a = bench.runtime(batchRecords: 30, checkpointEvery: 1_000)
        try a.start()
        try bench.append(transactions.prefix(transactions.count / 2))
        for _ in 0..<3 { try a.step() }
        bench.sink.failNextCommits(1)
        #expect(throws: DecisionSinkError.self) { try a.step() }
        try a.stop()
        let b = bench.runtime(batchRecords: 30, checkpointEvery: 1_000)
        try b.start()
        try bench.append(transactions.dropFirst(transactions.count / 2))
        try bench.drain([b])
        let reference = try sequentialFeatures(bench.log, config: bench.features)
        let decided = bench.sink.contents.decisions
        #expect(decided.count == transactions.count)
        for d in decided { #expect(d.features == reference[d.transaction.transactionID]) }
    }

    @Test func aRepeatedTransactionIdIsAnsweredWithItsFirstDecisionAndCountedOnce() throws {
        let transactions = try history(days: 1, cards: 10, seed: 2)
        let bench = try RuntimeBench(partitions: 3)
        let runtime = bench.runtime(batchRecords: 16)
        try runtime.start()
        let original = transactions[5]
        var elsewhere = original
        elsewhere.cardID =
            transactions.first { bench.log.partition(forKey: $0.cardID) != bench.log.partition(forKey: original.cardID) }!.cardID
        try bench.append(transactions[..<10])
        try bench.drain([runtime])
        // The same record again (a client's retry), the same id on another card, and one repeat inside a batch.
        try bench.append([original, elsewhere, transactions[10], transactions[10]])
        try bench.append(transactions[11...])
        try bench.drain([runtime])
        let contents = bench.sink.contents
        #expect(contents.decisions.count == transactions.count)
        #expect(contents.repeats.count == 3)
        let first = try #require(try bench.sink.firstDecisions([original.transactionID])[original.transactionID])
        for r in contents.repeats where r.transactionID == original.transactionID { #expect(r.first == first) }
        // Folded once: the features are those of the log without the repeats.
        let clean = try RuntimeBench(partitions: 3)
        try clean.append(transactions)
        let reference = try sequentialFeatures(clean.log, config: clean.features)
        for d in contents.decisions { #expect(d.features == reference[d.transaction.transactionID]) }
    }

    @Test func undecodableRecordsBecomeDeadLettersWithTheirReasons() throws {
        let bench = try RuntimeBench(partitions: 2)
        let runtime = bench.runtime()
        try runtime.start()
        let transactions = try history(days: 0.5, cards: 5, seed: 1)
        try bench.append(transactions.prefix(3))
        _ = try bench.log.append(.transactions, [(key: "card-x", payload: Array(#"{"transaction_id": 5}"#.utf8))])
        _ = try bench.log.append(.labels, [(key: "card-x", payload: Array(#"{"is_fraud": true}"#.utf8))])
        try bench.append(transactions.dropFirst(3))
        try bench.drain([runtime])
        let contents = bench.sink.contents
        #expect(contents.decisions.count == transactions.count)
        #expect(contents.deadLetters.count == 2)
        #expect(contents.deadLetters.contains { $0.source.hasPrefix("log:transactions[") && !$0.issues.isEmpty })
        #expect(
            contents.deadLetters.contains { $0.source.hasPrefix("log:labels[") && $0.issues.map(\.field) == ["transaction_id"] })
    }

    /// On a log other producers write to, a transaction outside its card's partition is a
    /// dead letter that says where it belongs; without the check it would be decided on a
    /// part of its card's history.
    @Test(arguments: [false, true]) func aTransactionOutsideItsCardsPartitionIsADeadLetterWhenChecked(_ checked: Bool)
        throws
    {
        let bench = try RuntimeBench(partitions: 4)
        var options = PartitionRuntime.Options()
        options.cardPartitioner = checked ? .murmur2 : nil
        let runtime = PartitionRuntime(
            consumer: GroupConsumer(group: options.group, log: bench.log, groups: bench.groups), log: bench.log,
            sink: bench.sink, index: bench.sink, checkpoints: bench.sink, models: bench.models, options: options)
        try runtime.start()
        let transactions = try history(days: 1, cards: 20, seed: 4)
        try bench.append(transactions.dropLast())
        // The last one keyed by another card, whose partition differs.
        let stray = transactions.last!
        let home = KeyPartitioner.murmur2.partition(forKey: stray.cardID, partitions: 4)
        let key = try #require(
            (0..<1000).map { "other-\($0)" }.first { KeyPartitioner.murmur2.partition(forKey: $0, partitions: 4) != home })
        _ = try bench.log.append(.transactions, [(key: key, payload: IngestRecord(transaction: stray).payload)])
        try bench.drain([runtime])
        let contents = bench.sink.contents
        #expect(contents.decisions.count == transactions.count - (checked ? 1 : 0))
        #expect(contents.deadLetters.count == (checked ? 1 : 0))
        if checked {
            let problem = try #require(contents.deadLetters.first?.issues.first)
            #expect(problem.field == "card_id" && problem.problem.contains("belongs to partition \(home)"), "\(problem)")
        }
    }

    @Test func everyRuntimeFollowsAPromotionFromItsNextBatch() throws {
        let bench = try RuntimeBench(partitions: 2)
        let a = bench.runtime(batchRecords: 10)
        let b = bench.runtime(batchRecords: 10)
        try a.start()
        try b.start()
        let transactions = try history(days: 1, cards: 30, seed: 8)
        try bench.append(transactions.prefix(40))
        try bench.drain([a, b])
        bench.models.publish(try Scorer(artifact: amountModel(pivot: 50), version: 2))
        try bench.append(transactions.dropFirst(40))
        try bench.drain([a, b])
        let decided = bench.sink.contents.decisions
        let before = Set(transactions.prefix(40).map(\.transactionID))
        #expect(decided.allSatisfy { $0.decision.modelVersion == (before.contains($0.transaction.transactionID) ? 1 : 2) })
        #expect(Set(decided.filter { $0.decision.modelVersion == 2 }.map(\.partition)) == [0, 1])
    }

    @Test func aRoutedLabelRoundTripsAndNamesWhatIsWrong() throws {
        let t = try #require(try history(days: 0.2, cards: 3, seed: 4).first)
        let label = RoutedLabel(
            LabelEvent(transactionID: t.transactionID, isFraud: true, reportedAt: t.timestamp + 60), transaction: t)
        #expect(label.key == t.cardID)
        #expect(try RoutedLabel.decode(label.payload).get() == label)
        let unknown = RoutedLabel(
            LabelEvent(transactionID: "tx-unknown", isFraud: false, reportedAt: t.timestamp), transaction: nil)
        #expect(unknown.key == "tx-unknown")
        #expect(try RoutedLabel.decode(unknown.payload).get() == unknown)
        guard
            case .failure(let e) = RoutedLabel.decode(
                Array(#"{"transaction_id":"a","is_fraud":true,"reported_at":"yesterday"}"#.utf8))
        else {
            Issue.record("a bad date was accepted")
            return
        }
        #expect(e.issues.first?.field == "reported_at")
    }
}

/// A sink that fails when told to, for a runtime's view of a store that refuses a commit.
final class RefusingSink: DecisionSink, DecisionIndex, @unchecked Sendable {
    // `@unchecked Sendable`: `refuseNext` is set and read on the test's one thread.
    let base: any DecisionSink & DecisionIndex
    var refuseNext = false
    init(_ base: any DecisionSink & DecisionIndex) { self.base = base }
    func commit(_ batch: SinkBatch) throws {
        if refuseNext {
            refuseNext = false
            throw DecisionSinkError(.storage, "refused (injected)")
        }
        try base.commit(batch)
    }
    func offsets(group: String, partition: Int) throws -> PartitionOffsets? {
        try base.offsets(group: group, partition: partition)
    }
    func batchEnds(group: String, partition: Int, after: PartitionOffsets) throws -> [PartitionOffsets] {
        try base.batchEnds(group: group, partition: partition, after: after)
    }
    func firstDecisions(_ ids: [String]) throws -> [String: FirstDecision] { try base.firstDecisions(ids) }
}

@Suite struct EmbeddedPartitionRuntimeTests {
    /// The runtime over the embedded backends: a SQLite log, the SQLite decision sink and
    /// checkpoint store. Two runtimes in one group; one is taken for dead after a refused
    /// commit; the other resumes its partitions; each transaction decided once, with the
    /// features of a sequential engine per partition.
    @Test func twoRuntimesOverTheSQLiteBackendsDecideEachTransactionOnce() throws {
        try withDirectory { dir in
            let log = try SQLiteEventLog(directory: dir + "/log", partitions: 4)
            let sqlite = try SQLiteDecisionSink(path: dir + "/sink.sqlite")
            let sink = RefusingSink(sqlite)
            let checkpoints = try SQLiteCheckpointStore(path: dir + "/checkpoints.sqlite")
            let groups = ConsumerGroups()
            let models = ProductionModel(try Scorer(artifact: amountModel(pivot: 400), version: 1))
            func runtime() -> PartitionRuntime {
                var options = PartitionRuntime.Options()
                options.batchRecords = 60
                options.checkpointEvery = 3
                return PartitionRuntime(
                    consumer: GroupConsumer(group: options.group, log: log, groups: groups), log: log, sink: sink,
                    index: sink, checkpoints: checkpoints, models: models, options: options)
            }
            let transactions = try history(days: 3, cards: 70, seed: 21)
            func append(_ chunk: ArraySlice<Transaction>) throws {
                _ = try log.append(.transactions, chunk.map { (key: $0.cardID, payload: IngestRecord(transaction: $0).payload) })
            }
            let a = runtime()
            let b = runtime()
            try a.start()
            try b.start()
            let half = transactions.count / 2
            try append(transactions[..<half])
            for _ in 0..<5 {
                try a.step()
                try b.step()
            }
            // b polls a batch and its commit is refused; then it is taken for dead.
            let threeQuarters = transactions.count * 3 / 4
            try append(transactions[half..<threeQuarters])
            sink.refuseNext = true
            #expect(throws: DecisionSinkError.self) { try b.step() }
            groups.expel(group: "processor", member: try #require((b.consumer as? GroupConsumer)?.member))
            try append(transactions[threeQuarters...])
            var idle = 0
            while idle < 2 { idle = try a.step() == 0 ? idle + 1 : 0 }
            #expect(a.partitions == [0, 1, 2, 3])

            let reference = try sequentialFeatures(log, config: FeatureConfig())
            let db = try DatabaseQueue(path: dir + "/sink.sqlite")
            let rows = try db.read { try Row.fetchAll($0, sql: "SELECT transaction_id, features FROM decisions") }
            #expect(rows.count == transactions.count)
            #expect(Set(rows.map { $0[0] as String }).count == transactions.count, "each decided exactly once")
            for row in rows {
                let id: String = row[0]
                let blob: Data = row[1]
                var features = FeatureVector()
                withUnsafeMutableBytes(of: &features.values) { _ = blob.copyBytes(to: $0) }
                #expect(features == reference[id], "\(id)")
            }
            for p in 0..<4 {
                #expect(
                    try sqlite.offsets(group: "processor", partition: p)?.transactions
                        == (try log.endOffset(.transactions, partition: p)))
            }
        }
    }
}

@Suite struct PartitionRuntimeServiceTests {
    /// Two runtimes as services of one `ServiceGroup` over one log: a promotion in the registry
    /// reaches both through the follower; a graceful shutdown leaves the group with every
    /// partition checkpointed at the sink's offsets.
    @Test(.timeLimit(.minutes(1))) func runtimesAsServicesFollowPromotionsAndCheckpointAtShutdown() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-rs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let bench = try RuntimeBench(partitions: 4)
            let registry = try ModelRegistry(directory: dir)
            let v1 = try registry.register(amountModel(pivot: 400))
            _ = try registry.promote(version: v1, rule: PromotionRule(), force: true)
            let models = ProductionModel(try Scorer(artifact: amountModel(pivot: 400), version: v1))
            let follower = ModelFollower(
                registry: registry, models: models, scoring: ScoringPolicy(), logger: Logger(label: "test"))
            let doorbell = Doorbell()
            let (log, sink, groups, features) = (bench.log, bench.sink, bench.groups, bench.features)
            let services = (0..<2).map { _ in
                PartitionRuntimeService(doorbell: doorbell) {
                    var options = PartitionRuntime.Options()
                    options.batchRecords = 50
                    options.checkpointEvery = 1_000_000
                    options.features = features
                    return PartitionRuntime(
                        consumer: GroupConsumer(group: options.group, log: log, groups: groups), log: log, sink: sink,
                        index: sink, checkpoints: sink, models: models, options: options)
                }
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], logger: Logger(label: "test")))
            let running = Task { try await group.run() }
            let transactions = try history(days: 2, cards: 50, seed: 23)
            let half = transactions.count / 2
            try bench.append(transactions[..<half])
            doorbell.ring()
            func waitFor(_ count: Int) async throws {
                let start = ContinuousClock.now
                while sink.contents.decisions.count < count && ContinuousClock.now - start < .seconds(20) {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await waitFor(half)
            let v2 = try registry.register(amountModel(pivot: 50))
            _ = try registry.promote(version: v2, rule: PromotionRule(), force: true)
            #expect(try follower.check() == v2)
            try bench.append(transactions[half...])
            doorbell.ring()
            try await waitFor(transactions.count)
            await group.triggerGracefulShutdown()
            try await running.value

            let decided = sink.contents.decisions
            #expect(decided.count == transactions.count)
            #expect(Set(decided.map(\.transaction.transactionID)).count == transactions.count)
            let late = Set(transactions[half...].map(\.transactionID))
            #expect(decided.allSatisfy { $0.decision.modelVersion == (late.contains($0.transaction.transactionID) ? v2 : v1) })
            #expect(groups.members(of: "processor").isEmpty, "both left the group")
            for p in 0..<4 {
                let checkpoint = try #require(try sink.latest(group: "processor", partition: p))
                #expect(checkpoint.offsets == (try sink.offsets(group: "processor", partition: p)))
            }
        }
    }
}
