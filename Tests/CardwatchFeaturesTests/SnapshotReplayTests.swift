import CardwatchCore
import CardwatchGenerator
import Testing

@testable import CardwatchFeatures

/// A realistic stream from the synthetic world, with some events shuffled within the lateness.
private func worldStream(seed: UInt64, count: Int, cards: Int = 300) -> [Transaction] {
    var config = GeneratorConfig()
    config.seed = seed
    config.cards = cards
    config.fraudRate = 0.05
    var g = try! TransactionGenerator(
        config: config, mode: .backfill(start: Timestamp(rfc3339: "2026-01-01T00:00:00Z")!, end: nil))
    var out: [Transaction] = []
    while out.count < count, let t = g.next() { out.append(t) }
    // Swap neighbours less than a minute apart: out of order, well within the allowed lateness.
    var rng = SeededRandom(seed: seed)
    for i in stride(from: 1, to: out.count, by: 1) where rng.chance(0.2) {
        if out[i].timestamp.seconds(since: out[i - 1].timestamp) < 60 { out.swapAt(i, i - 1) }
    }
    return out
}

@Suite struct SnapshotTests {
    @Test(arguments: [1, 2, 3] as [UInt64]) func restoredEngineContinuesExactlyAsTheOriginal(seed: UInt64) throws {
        let stream = worldStream(seed: seed, count: 30_000)
        let cut = 12_000 + Int(seed) * 1_000
        var original = try FeatureEngine()
        var labelTimes: [LabelFact] = []
        for t in stream[..<cut] {
            _ = original.process(t)
            if t.isFraud == true {
                labelTimes.append(LabelFact(merchantID: t.merchantID, transactionTime: t.timestamp, isFraud: true))
            }
        }
        for l in labelTimes.prefix(labelTimes.count / 2) { original.apply(l) }

        let bytes = original.snapshot()
        var restored = try FeatureEngine(snapshot: bytes)
        #expect(restored.stats == original.stats)
        #expect(restored.activeCards == original.activeCards)
        #expect(restored.snapshot() == bytes, "a snapshot of the restored engine is byte-identical")

        for (i, t) in stream[cut...].enumerated() {
            if i % 500 == 0, let l = labelTimes.popLast() {
                original.apply(l)
                restored.apply(l)
            }
            let a = original.process(t)
            let b = restored.process(t)
            if a != b {
                Issue.record("feature vectors differ after restore at \(t.transactionID): \(a.array) vs \(b.array)")
                return
            }
        }
        #expect(restored.stats == original.stats)
        let perCard = Double(bytes.count) / Double(original.activeCards)
        print(
            "snapshot: \(bytes.count) bytes for \(original.activeCards) cards and \(original.activeMerchants) merchants (\(Int(perCard)) B per card)"
        )
    }

    @Test func damagedSnapshotsAreRefusedWithAReason() throws {
        var engine = try FeatureEngine()
        for t in worldStream(seed: 4, count: 2_000) { _ = engine.process(t) }
        let bytes = engine.snapshot()
        #expect(throws: SnapshotError.self) { try FeatureEngine(snapshot: Array(bytes.prefix(bytes.count / 2))) }
        #expect(throws: SnapshotError.self) { try FeatureEngine(snapshot: [0x00, 0x57] + bytes.dropFirst(2)) }
        #expect(throws: SnapshotError.self) { try FeatureEngine(snapshot: bytes + [0]) }
        #expect(throws: SnapshotError.self) { try FeatureEngine(snapshot: []) }
        // Every truncation point fails cleanly (never crashes).
        for n in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 400)) {
            #expect(throws: SnapshotError.self) { try FeatureEngine(snapshot: Array(bytes.prefix(n))) }
        }
        do {
            _ = try FeatureEngine(snapshot: Array("CWFE".utf8) + [2, 0, 0, 0] + bytes.dropFirst(8))
            Issue.record("a snapshot of another format version was accepted")
        } catch {
            #expect(error.description.contains("format"))
        }
    }
}

@Suite struct ReplayTests {
    @Test func replaySortsByEventTimeAndMatchesTheLiveEngine() throws {
        let stream = worldStream(seed: 5, count: 20_000)
        let ordered = stream.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(
            \.element)
        // The live engine fed in order, with labels known one delay after each fraud.
        var live = try FeatureEngine()
        var pending = ordered.filter { $0.isFraud == true }[...]
        var expected: [String: FeatureVector] = [:]
        for t in ordered {
            while let f = pending.first, f.timestamp + 7 * 86_400 <= t.timestamp {
                live.apply(LabelFact(merchantID: f.merchantID, transactionTime: f.timestamp, isFraud: true))
                pending = pending.dropFirst()
            }
            expected[t.transactionID] = live.process(t)
        }
        var seen: [Transaction] = []
        try FeatureReplay.run(stream.reversed()) { t, f in
            seen.append(t)
            #expect(f == expected[t.transactionID]!, "\(t.transactionID)")
        }
        #expect(seen.map(\.transactionID) == ordered.map(\.transactionID))
    }

    @Test func labelEventsAreUsedAtTheirReportTimeAndNeverEarlier() throws {
        // One merchant, a fraud on day 0, a probe every day after: the rate appears only
        // once the label is reported and the transaction is inside the delayed window.
        let start = Timestamp(rfc3339: "2026-03-01T12:00:00Z")!
        func tx(_ id: String, day: Double, fraud: Bool = false) -> Transaction {
            Transaction(
                transactionID: id, cardID: "c-\(id)", amount: 10, timestamp: start + day * 86_400, merchantID: "shop",
                isFraud: fraud)
        }
        var history = [tx("fraud", day: 0, fraud: true), tx("legit", day: 0.01)]
        for d in 1...20 { history.append(tx("probe\(d)", day: Double(d))) }
        var config = FeatureConfig()
        config.labelDelay = 2 * FeatureConfig.day

        func rates(_ labels: [LabelEvent]?) throws -> [String: Double] {
            var out: [String: Double] = [:]
            try FeatureReplay.run(history, labels: labels, config: config) { t, f in
                out[t.transactionID] = f[.merchantFraudRate30d]
            }
            return out
        }
        // Reported 10 days after the fraud: unknown before day 10, whatever the label delay says.
        let late = try rates([LabelEvent(transactionID: "fraud", isFraud: true, reportedAt: start + 10 * 86_400)])
        for d in 1...9 { #expect(late["probe\(d)"] == 0, "day \(d)") }
        #expect(late["probe10"]! > 0)
        // From is_fraud: known after the 2-day delay, and the window ends 2 days back (whole days).
        let inline = try rates(nil)
        #expect(inline["probe1"] == 0 && inline["probe2"] == 0)
        #expect(inline["probe3"]! == 0.5, "one fraud of two transactions in the window")
        // A label for a transaction that is not in the history is counted, not applied.
        let summary = try FeatureReplay.run(
            history, labels: [LabelEvent(transactionID: "nope", isFraud: true, reportedAt: start)]
        ) { _, _ in }
        #expect(summary.unknownTransaction == 1 && summary.applied == 0)
    }
}

@Suite struct LabelDecoderTests {
    @Test func validLabelEventsDecode() throws {
        var d = LabelJSONDecoder()
        let r = d.decode(#"{"transaction_id":"tx1","is_fraud":1,"reported_at":"2026-01-03T00:00:00Z"}"#)
        #expect(
            try r.get()
                == LabelEvent(transactionID: "tx1", isFraud: true, reportedAt: Timestamp(rfc3339: "2026-01-03T00:00:00Z")!))
        #expect(
            (try? d.decode(#"{"transaction_id":"tx2","is_fraud":false,"reported_at":"2026-01-03T00:00:00+01:00"}"#).get())?
                .isFraud == false)
    }

    @Test func badLabelEventsNameEveryField() {
        var d = LabelJSONDecoder()
        guard case .failure(let e) = d.decode(#"{"is_fraud":"yes","reported_at":"soon"}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(Set(e.issues.map(\.field)) == ["transaction_id", "is_fraud", "reported_at"])
        guard case .failure(let missing) = d.decode(#"{"transaction_id":"a"}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(Set(missing.issues.map(\.field)) == ["is_fraud", "reported_at"])
    }
}
