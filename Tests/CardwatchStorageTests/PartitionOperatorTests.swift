import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import Testing

/// The operator against the naive reference, training's replay (`FeatureReplay`): a label
/// counts from its `reported_at` on, wherever it falls among the transactions it arrives with.
@Suite struct PartitionOperatorTests {
    /// Labels for some transactions, reported a random delay (0 to 3 days) after them.
    static func labels(_ transactions: [Transaction], rng: inout SplitMix) -> [LabelEvent] {
        transactions.compactMap { t in
            guard t.isFraud == true || rng.next() % 10 == 0 else { return nil }
            let delay = Double(rng.next() % 259_200)
            return LabelEvent(transactionID: t.transactionID, isFraud: t.isFraud == true, reportedAt: t.timestamp + delay)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6])
    func featuresEqualTrainingsReplayWhereverLabelsArrive(seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        let transactions = try history(days: 6, cards: 40, seed: seed, fraudRate: 0.05)
            .sorted { $0.timestamp < $1.timestamp }
        let labels = Self.labels(transactions, rng: &rng)
        var config = FeatureConfig()
        config.labelDelay = 0
        var expected: [String: FeatureVector] = [:]
        try FeatureReplay.run(transactions, labels: labels, config: config) { t, f in expected[t.transactionID] = f }

        // Each label is placed at a random point before the first transaction at or after its
        // report (a label arriving after that is late, and counts from its arrival).
        let byID = Dictionary(uniqueKeysWithValues: transactions.map { ($0.transactionID, $0) })
        var arrivals = [[RoutedLabel]](repeating: [], count: transactions.count + 1)
        for l in labels {
            let due = transactions.firstIndex { $0.timestamp >= l.reportedAt } ?? transactions.count
            arrivals[Int(rng.next() % UInt64(due + 1))].append(RoutedLabel(l, transaction: byID[l.transactionID]))
        }
        let restartAt = Int(rng.next() % UInt64(transactions.count))
        let arrivalsAt = arrivals
        var op = try PartitionOperator(config: config)
        for (i, t) in transactions.enumerated() {
            for label in arrivalsAt[i] {
                let applied = op.apply(label)
                #expect(applied)
            }
            if i == restartAt { op = try PartitionOperator(checkpoint: op.checkpoint()) }  // a restore on the way
            let features = op.update(t)
            #expect(features == expected[t.transactionID], "\(t.transactionID) at \(i)")
        }
    }

    @Test func aLabelOfAnUnknownTransactionChangesNothing() throws {
        var op = try PartitionOperator()
        let label = RoutedLabel(
            LabelEvent(transactionID: "t1", isFraud: true, reportedAt: Timestamp(microseconds: 0)), transaction: nil)
        let applied = op.apply(label)
        #expect(!applied)
        #expect(op.waitingLabels == 0)
    }

    @Test func aCheckpointKeepsTheWaitingLabelsAndRefusesDamage() throws {
        let t = try #require(try history(days: 1, cards: 5).first)
        var op = try PartitionOperator()
        _ = op.update(t)
        let label = LabelEvent(transactionID: t.transactionID, isFraud: true, reportedAt: t.timestamp + 86_400)
        let applied = op.apply(RoutedLabel(label, transaction: t))
        #expect(applied)
        #expect(op.waitingLabels == 1)
        let bytes = op.checkpoint()
        #expect(try PartitionOperator(checkpoint: bytes).waitingLabels == 1)
        #expect(throws: SnapshotError.self) { try PartitionOperator(checkpoint: Array(bytes.prefix(20))) }
        // A bare engine snapshot (the processor's checkpoints) reads as having none waiting.
        #expect(try PartitionOperator(checkpoint: op.state.snapshot()).waitingLabels == 0)
    }
}
