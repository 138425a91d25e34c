import CardwatchCore
import CardwatchFeatures
import Testing

// Merchant fraud rates under the default 7-day label delay. Merchant "shop" sees, on day 0
// (Monday 2024-06-03): F at 12:00 (fraud), L1 13:00, L2 14:00, L3 15:00 (legitimate), and on
// day 2 L4 at 12:00. The fraud label of F is applied right after F is processed.
//
// A rate at time t counts known frauds ÷ events in
//   1d:  hours [hour(t − 7 d) − 24, hour(t − 7 d) − 1]
//   7d:  days  [day(t − 7 d) − 7,  day(t − 7 d) − 1]
//   30d: days  [day(t − 7 d) − 30, day(t − 7 d) − 1]

private let fraudTime = "2024-06-03T12:00:00Z"

private func history() -> [Transaction] {
    [
        txAt(fraudTime, card: "f", merchant: "shop"),
        txAt("2024-06-03T13:00:00Z", card: "l1", merchant: "shop"),
        txAt("2024-06-03T14:00:00Z", card: "l2", merchant: "shop"),
        txAt("2024-06-03T15:00:00Z", card: "l3", merchant: "shop"),
        txAt("2024-06-05T12:00:00Z", card: "l4", merchant: "shop"),
    ]
}

private let fraudLabel = LabelFact(merchantID: "shop", transactionTime: Timestamp(rfc3339: fraudTime)!, isFraud: true)

/// A fresh engine fed the history (labelling F right after it), then one probe transaction.
private func probe(_ time: String, labelled: Bool = true) -> FeatureVector {
    var engine = try! FeatureEngine()
    for (i, t) in history().enumerated() {
        _ = engine.process(t)
        if i == 0 && labelled { engine.apply(fraudLabel) }
    }
    return engine.process(txAt(time, card: "probe", merchant: "shop"))
}

private func rates(_ f: FeatureVector) -> [Double] {
    [f[.merchantFraudRate1d], f[.merchantFraudRate7d], f[.merchantFraudRate30d]]
}

@Suite struct LabelDelayTests {
    @Test func aLabelDoesNotReachTransactionsWithinOneLabelDelay() {
        // Two legitimate transactions before F (day −3 12:00 and day −1 18:00) give the early
        // windows volume. Probes every hour from F to the end of hour 12 of day 7 see exactly
        // what they would see without the label, and rates of 0: each window ends before F.
        let earlier = [
            txAt("2024-05-31T12:00:00Z", card: "e1", merchant: "shop"),
            txAt("2024-06-02T18:00:00Z", card: "e2", merchant: "shop"),
        ]
        var stream = earlier + history()
        var t = Timestamp(rfc3339: fraudTime)!
        while t <= Timestamp(rfc3339: "2024-06-10T12:59:59Z")! {
            stream.append(Transaction(transactionID: "p\(t)", cardID: "p\(t)", amount: 5, timestamp: t, merchantID: "shop"))
            t = t + 3_599
        }
        stream = stream.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(
            \.element)
        var labelled = try! FeatureEngine()
        var unlabelled = try! FeatureEngine()
        var probes = 0
        for tx in stream {
            let f = labelled.process(tx)
            #expect(f == unlabelled.process(tx), "at \(tx.timestamp.rfc3339)")
            #expect(rates(f) == [0, 0, 0], "at \(tx.timestamp.rfc3339)")
            if tx.cardID == "f" { labelled.apply(fraudLabel) }
            if tx.cardID.hasPrefix("p") { probes += 1 }
        }
        #expect(labelled.stats.lateBeyondAllowance == 0)
        #expect(probes > 7 * 24)
        #expect(labelled.stats.labelsApplied == 1)
        // The probes on day 7 had volume in their windows (day −3 and day −1 are in [day −7, day −1]).
        // One hour later the hourly window [day −1 13h, day 0 12h] takes F in: e2, F and the probes
        // at 12:00:00 and 12:59:59 make 1/4; the daily windows still end on day −1: 0/2.
        #expect(rates(labelled.process(txAt("2024-06-10T13:00:00Z", card: "x", merchant: "shop"))) == [0.25, 0, 0])
    }

    @Test func exactlyOneLabelDelayLaterTheWindowsStillEndBeforeTheFraud() {
        // t − 7 d = day 0 12:00: 1d hours [day −1 12h, day 0 11h], 7d days [−7, −1]: empty, so 0.
        #expect(rates(probe("2024-06-10T12:00:00Z")) == [0, 0, 0])
        // t − 7 d = day 0 12:59:59: the 1d window still ends with hour 11.
        #expect(rates(probe("2024-06-10T12:59:59Z")) == [0, 0, 0])
    }

    @Test func theHourlyWindowTakesTheFraudInOneHourLater() {
        // t − 7 d = day 0 13:00: 1d hours [day −1 13h, day 0 12h] hold F only: 1/1. Days still [−7, −1].
        #expect(rates(probe("2024-06-10T13:00:00Z")) == [1, 0, 0])
        // t − 7 d = day 0 23:59:59: hours [day −1 23h, day 0 22h] hold F, L1, L2, L3: 1/4.
        #expect(rates(probe("2024-06-10T23:59:59Z")) == [0.25, 0, 0])
    }

    @Test func eightDaysLaterTheRateIsFraudsOverVolume() {
        // t − 7 d = day 1 12:00. 1d: hours [day 0 12h, day 1 11h] → F, L1, L2, L3: 1/4.
        // 7d: days [−6, 0] → the same four: 1/4. 30d: days [−29, 0]: 1/4.
        #expect(rates(probe("2024-06-11T12:00:00Z")) == [0.25, 0.25, 0.25])
        // Without the label nothing is known: 0/4.
        #expect(rates(probe("2024-06-11T12:00:00Z", labelled: false)) == [0, 0, 0])
        // Day 9: t − 7 d = day 2 12:00. 1d: hours [day 1 12h, day 2 11h]: no events → 0.
        // 7d: days [−5, 1] → F, L1–L3: 1/4. 30d the same.
        #expect(rates(probe("2024-06-12T12:00:00Z")) == [0, 0.25, 0.25])
        // Day 10: t − 7 d = day 3 12:00. 1d: hours [day 2 12h, day 3 11h] → L4: 0/1.
        // 7d: days [−4, 2] → F, L1–L4: 1/5.
        #expect(rates(probe("2024-06-13T12:00:00Z")) == [0, 0.2, 0.2])
        // Day 14: t − 7 d = day 7. 7d: days [0, 6] → 1/5. Day 15: days [1, 7] → L4 only: 0/1.
        #expect(rates(probe("2024-06-17T00:00:00Z")) == [0, 0.2, 0.2])
        #expect(rates(probe("2024-06-18T00:00:00Z")) == [0, 0, 0.2])
        // Day 37: t − 7 d = day 30. 30d: days [0, 29] → 1/5. Day 38: days [1, 30] → L4: 0/1.
        #expect(rates(probe("2024-07-10T12:00:00Z")) == [0, 0, 0.2])
        #expect(rates(probe("2024-07-11T00:00:00Z")) == [0, 0, 0])
    }

    @Test func aLabelCountsOnlyFromTheMomentItIsApplied() {
        var engine = try! FeatureEngine()
        for t in history() { _ = engine.process(t) }
        // Day 8: the window holds F, but its label is not known yet.
        let before = engine.process(txAt("2024-06-11T12:00:00Z", card: "p1", merchant: "shop"))
        #expect(rates(before) == [0, 0, 0])
        engine.apply(LabelFact(merchantID: "shop", transactionTime: Timestamp(rfc3339: "2024-06-03T13:00:00Z")!, isFraud: false))
        #expect(engine.stats.labelsApplied == 0, "a legitimate verdict changes nothing")
        engine.apply(fraudLabel)
        #expect(engine.stats.labelsApplied == 1)
        // The same moment again, now with the label: 1/4 (the probe at day 8 is not in its own window).
        let after = engine.process(txAt("2024-06-11T12:00:00Z", card: "p2", merchant: "shop"))
        #expect(rates(after) == [0.25, 0.25, 0.25])
        // What was returned before the label is not changed by it: a replay of the same inputs in
        // the same order gives the same vectors, the first one still without the fraud.
        var replay = try! FeatureEngine()
        for t in history() { _ = replay.process(t) }
        #expect(replay.process(txAt("2024-06-11T12:00:00Z", card: "p1", merchant: "shop")) == before)
        #expect(rates(before) == [0, 0, 0])
    }

    @Test func zeroVolumeWindowsGiveZeroRates() {
        // A label for a merchant's only transaction, but the windows of a transaction two days
        // later end five days before it: no events, so 0 rather than a division by zero.
        var engine = try! FeatureEngine()
        _ = engine.process(txAt("2024-06-03T12:00:00Z", merchant: "lonely"))
        engine.apply(LabelFact(merchantID: "lonely", transactionTime: Timestamp(rfc3339: "2024-06-03T12:00:00Z")!, isFraud: true))
        let f = engine.process(txAt("2024-06-05T12:00:00Z", merchant: "lonely"))
        #expect(rates(f) == [0, 0, 0])
        #expect(!rates(f).contains { $0.isNaN })
        // A merchant's first transaction, with zero label delay: empty windows, 0.
        var config = FeatureConfig()
        config.labelDelay = 0
        let g = features([txAt("2024-06-03T12:00:00Z", merchant: "new")], config: config)
        #expect(rates(g[0]) == [0, 0, 0])
    }

    @Test func withoutALabelDelayTheWindowsEndJustBeforeTheCurrentBucket() {
        var config = FeatureConfig()
        config.labelDelay = 0
        var engine = try! FeatureEngine(config: config)
        _ = engine.process(txAt("2024-06-03T10:30:00Z", card: "a", merchant: "shop"))
        _ = engine.process(txAt("2024-06-03T11:10:00Z", card: "b", merchant: "shop"))
        engine.apply(LabelFact(merchantID: "shop", transactionTime: Timestamp(rfc3339: "2024-06-03T10:30:00Z")!, isFraud: true))
        // 11:50: hours [day −1 11h, day 0 10h] → the fraud at 10:30 only: 1/1; days [−7, −1]: empty.
        let f = engine.process(txAt("2024-06-03T11:50:00Z", card: "c", merchant: "shop"))
        #expect(rates(f) == [1, 0, 0])
        // Next day at 12:00: days [−6, 0] hold 10:30, 11:10 and 11:50: 1/3. Hours [day 0 12h, day 1 11h]: none.
        let g = engine.process(txAt("2024-06-04T12:00:00Z", card: "c", merchant: "shop"))
        #expect(rates(g) == [0, 1.0 / 3, 1.0 / 3])
    }
}
