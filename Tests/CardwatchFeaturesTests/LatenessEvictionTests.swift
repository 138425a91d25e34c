import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import Testing

// Late events (default allowed lateness: 5 minutes) and idle-key eviction.

@Suite struct LatenessTests {
    @Test func lateEventsWithinAndBeyondTheAllowance() throws {
        var engine = try FeatureEngine()
        _ = engine.process(txAt("2024-06-03T10:00:00Z", amount: 10))
        _ = engine.process(txAt("2024-06-03T10:10:00Z", amount: 20))
        #expect(engine.stats.lateWithinAllowance == 0)

        // 3 minutes behind the card's newest: folded in exactly at 10:07.
        let c = engine.process(txAt("2024-06-03T10:07:00Z", amount: 30))
        #expect(engine.stats.lateWithinAllowance == 1)
        #expect(engine.stats.lateBeyondAllowance == 0)
        #expect(c[.txCount5min] == 1)  // (10:02, 10:07]: itself; 10:10 is after it
        #expect(c[.txCount1hr] == 2)  // 10:00 and itself
        #expect(c[.avgAmount1hr] == 20)  // (10 + 30) / 2
        #expect(c[.maxAmount1hr] == 30)
        #expect(c[.timeSinceLastTxS] == 420)  // since 10:00

        // 20 minutes behind: still processed, as if at the card's newest time 10:10.
        let d = engine.process(txAt("2024-06-03T09:50:00Z", amount: 999))
        #expect(engine.stats.lateBeyondAllowance == 1)
        #expect(engine.stats.lateWithinAllowance == 1)
        #expect(d[.amount] == 999)
        #expect(d[.hourOfDay] == 9, "its own attributes keep its real time")
        #expect(d[.txCount5min] == 3)  // (10:05, 10:10]: 10:07, 10:10, itself
        #expect(d[.txCount1hr] == 4)  // 10:00, 10:07, 10:10, itself
        #expect(d[.maxAmount1hr] == 999)
        #expect(d[.timeSinceLastTxS] == 0)  // the latest earlier event is at 10:10 itself

        // It counts in later windows, at 10:10.
        let e = engine.process(txAt("2024-06-03T10:12:00Z", amount: 5))
        #expect(e[.txCount5min] == 3)  // (10:07, 10:12]: 10:10, the late one, itself
        #expect(e[.txCount1hr] == 5)  // 10:00, 10:07, 10:10, the late one, itself
        #expect(e[.maxAmount1hr] == 999)
        #expect(e[.timeSinceLastTxS] == 120)
        #expect(e[.merchantTxCount1d] == 5)
        #expect(e[.cardTxCount30d] == 5)

        // Exactly the allowed lateness behind (10:12 − 5 min) is still within it.
        let g = engine.process(txAt("2024-06-03T10:07:00Z", amount: 1))
        #expect(engine.stats.lateWithinAllowance == 2)
        #expect(g[.txCount5min] == 2)  // (10:02, 10:07]: the 10:07 one and itself
        #expect(engine.stats.processed == 6)
    }

    @Test func aLateEventAtALateMerchantIsClampedForTheMerchantToo() throws {
        var engine = try FeatureEngine()
        _ = engine.process(txAt("2024-06-03T23:00:00Z", card: "a", merchant: "shop"))
        _ = engine.process(txAt("2024-06-04T02:00:00Z", card: "b", merchant: "shop"))
        // Card c is new (not late for its card), but 3 hours behind the merchant's newest: the
        // merchant counts it at 02:00 on June 4, so its hourly window [03 June 03h, 04 June 02h] holds all three.
        let f = engine.process(txAt("2024-06-03T23:00:00Z", card: "c", merchant: "shop"))
        #expect(f[.merchantTxCount1d] == 3)
        #expect(f[.merchantTxCount7d] == 3)
        #expect(engine.stats.lateBeyondAllowance == 0, "the counters are about cards")
        // Its card windows use its own time: a first transaction.
        #expect(f[.timeSinceLastTxS] == 2_592_000)
    }

    /// The table: a use of the merchant counts when it lies in days [day(t) − 29, day(t)]. A use on
    /// the next day (which arrived first, the current one being late) is not in that window.
    @Test func isNewMerchantCountsAnEarlierArrivalOnALaterDay() {
        // The table: "its latest use falls on or after day(t) − 29", in arrival order; a use that
        // arrived first counts even when its event time is a few minutes later.
        let f = features([
            txAt("2024-06-04T00:01:00Z", merchant: "m"),  // day 1, first: 1
            txAt("2024-06-03T23:58:00Z", merchant: "m"),  // day 0, 3 minutes late: latest use day 1 ≥ day 0 − 29: 0
            txAt("2024-07-05T00:00:00Z", merchant: "m"),  // day 32: latest use day 1 < day 32 − 29: 1
        ])
        #expect(f[0][.isNewMerchant] == 1)
        #expect(f[1][.isNewMerchant] == 0)
        #expect(f[2][.isNewMerchant] == 1)
    }

    /// A card idle just over 30 days comes back, and then an event from just under 30 days after
    /// its previous one arrives (2 minutes late, within the allowance). Per the table it still sees
    /// that previous event: the card's history must not have been dropped.
    @Test func aLateEventAfterALongGapStillSeesTheLast30Days() throws {
        var config = FeatureConfig()
        config.idleTTL = 3650 * FeatureConfig.day  // no eviction: only the engine's own bookkeeping
        let f = features(
            [
                txAt("2024-06-03T00:00:00Z", amount: 100, place: newYork),  // day 0
                txAt("2024-07-03T00:01:00Z", amount: 70),  // 30 d 1 min later (day 30)
                txAt("2024-07-02T23:59:00Z", amount: 50, place: london),  // day 29, 2 min late
            ], config: config)
        let late = f[2]
        // Latest earlier event ≤ t is day 0 00:00: 30 d − 1 min = 2,591,940 s.
        #expect(late[.timeSinceLastTxS] == 2_591_940)
        // 30d bucket [day 0, day 29] holds the day-0 event (the day-30 one is a later day): 2; ratio 50/100.
        #expect(late[.cardTxCount30d] == 2)
        #expect(late[.amountVsAvgRatio] == 0.5)
        // Same merchant used on day 0: not new.
        #expect(late[.isNewMerchant] == 0)
        // New York was 719.98 h earlier: ≈ 5,570 / 719.98 ≈ 7.7 km/h.
        let want = newYork.distanceKm(to: london) / ((30 * 24 * 60 - 1) / 60.0)
        #expect(abs(late[.geoVelocityKmh] - want) < 1e-9, "expected \(want)")
    }
}

/// A stream of 100 days: 20 cards active all along, 10 that sleep for 31 to 60 days and come
/// back, merchants shared by all plus one that only sleepers use; out of order within 5 minutes,
/// with fraud labels.
private func sleepersStream(seed: UInt64) -> (txs: [Transaction], labels: [Int: LabelFact]) {
    var rng = SeededRandom(seed: seed)
    let start: Int64 = 1_717_372_800 * Micros.second  // 2024-06-03
    var events: [(time: Int64, card: String, merchant: String)] = []
    for c in 0..<20 {
        var t = start + Int64.random(in: 0..<Micros.day, using: &rng)
        while t < start + 100 * Micros.day {
            events.append((t, "active\(c)", "m\(Int.random(in: 0..<30, using: &rng))"))
            t += Int64.random(in: Micros.minute...(16 * Micros.hour), using: &rng)
        }
    }
    for c in 0..<10 {
        let back = Int64([31, 31, 32, 35, 40, 45, 50, 55, 60, 60][c]) * Micros.day + Int64(c) * Micros.hour
        for k in 0..<12 {
            let t = start + Int64(k) * 9 * Micros.hour + Int64.random(in: 0..<Micros.hour, using: &rng)
            events.append((t, "sleeper\(c)", k % 3 == 0 ? "quiet\(c)" : "m\(k)"))
            events.append((t + 5 * Micros.day + back, "sleeper\(c)", k % 3 == 0 ? "quiet\(c)" : "m\(k)"))
        }
    }
    events.sort { $0.time < $1.time }
    // Shuffle within the allowed lateness: delay each arrival by up to 5 minutes.
    let keyed = events.enumerated().map { ($0.element.time + Int64.random(in: 0...(5 * Micros.minute), using: &rng), $0.offset) }
    let order = keyed.sorted { $0 < $1 }.map { $0.1 }
    var txs: [Transaction] = []
    var labels: [Int: LabelFact] = [:]
    for (n, i) in order.enumerated() {
        let e = events[i]
        let place = Bool.random(using: &rng) ? places[Int.random(in: 0..<places.count, using: &rng)] : nil
        txs.append(
            Transaction(
                transactionID: "t\(n)", cardID: e.card, amount: Double(Int.random(in: 100...50_000, using: &rng)) / 100,
                timestamp: Timestamp(microseconds: e.time), merchantID: e.merchant,
                merchantCategory: categories[Int.random(in: 0..<categories.count, using: &rng)], location: place))
        if n > 50 && Int.random(in: 0..<10, using: &rng) == 0 {
            let old = txs[Int.random(in: max(0, n - 500)..<n, using: &rng)]
            labels[n] = LabelFact(merchantID: old.merchantID, transactionTime: old.timestamp, isFraud: Bool.random(using: &rng))
        }
    }
    return (txs, labels)
}

@Suite struct EvictionTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func evictionAtThirtyDaysNeverChangesAnAnswer(seed: UInt64) throws {
        let (txs, labels) = sleepersStream(seed: seed)
        var evicting = try FeatureEngine()  // idleTTL 30 days
        var config = FeatureConfig()
        config.idleTTL = 3650 * FeatureConfig.day
        var keeping = try FeatureEngine(config: config)
        var differences = 0
        for (n, tx) in txs.enumerated() {
            if let l = labels[n] {
                evicting.apply(l)
                keeping.apply(l)
            }
            let a = evicting.process(tx)
            let b = keeping.process(tx)
            if a != b {
                differences += 1
                if differences <= 3 {
                    let which = Feature.allCases.filter { a[$0] != b[$0] }.map { "\($0.name): \(a[$0]) vs \(b[$0])" }
                    Issue.record("\(tx.transactionID) \(tx.cardID) at \(tx.timestamp.rfc3339): \(which)")
                }
            }
        }
        #expect(differences == 0)
        #expect(evicting.stats.evictedCards > 0)
        #expect(evicting.stats.evictedMerchants > 0)
        #expect(keeping.stats.evictedCards == 0)
        #expect(evicting.activeCards < keeping.activeCards)
        #expect(evicting.stats.processed == txs.count)
    }

    /// Another card's event 2 minutes past the 30-day mark makes the sweep evict card A; then an
    /// event of A from 1 minute before the mark arrives (3 minutes behind the newest event of
    /// the stream, ahead of A's own newest). Without eviction it sees A's previous transaction.
    @Test func evictionKeepsWhatAnEventWithinTheLatenessCanStillReach() throws {
        let txs = [
            txAt("2024-06-03T00:00:00Z", card: "a", amount: 100, merchant: "m1"),
            txAt("2024-07-03T00:02:00Z", card: "b", amount: 10, merchant: "m2"),
            txAt("2024-07-02T23:59:00Z", card: "a", amount: 50, merchant: "m1"),
        ]
        var config = FeatureConfig()
        config.idleTTL = 3650 * FeatureConfig.day
        let kept = features(txs, config: config)[2]
        // By hand: 30 d − 1 min since day 0; the 30d window [day 0, day 29] holds it; m1 not new.
        #expect(kept[.timeSinceLastTxS] == 2_591_940)
        #expect(kept[.cardTxCount30d] == 2)
        #expect(kept[.amountVsAvgRatio] == 0.5)
        #expect(kept[.isNewMerchant] == 0)
        var engine = try FeatureEngine()  // idleTTL 30 days
        let evicted = txs.map { engine.process($0) }[2]
        #expect(evicted == kept, "eviction at 30 days changed \(Feature.allCases.filter { evicted[$0] != kept[$0] }.map(\.name))")
    }

    /// The same for a merchant. With a 1-day allowed lateness and a 1-hour label delay merchants
    /// are kept 31 d 1 h. The fraud at m0 (day 0 23:00) is evicted when another merchant's event
    /// arrives at day 32 00:01; then m0's transaction at day 31 00:30 arrives (23.5 h behind the
    /// newest event, within the allowance). Its 30d rate window is days
    /// [day(t − 1 h) − 30, day(t − 1 h) − 1] = [day 0, day 29]: the fraud, 1/1.
    @Test func merchantEvictionKeepsWhatAnEventWithinTheLatenessCanStillReach() throws {
        var config = FeatureConfig()
        config.allowedLateness = FeatureConfig.day
        config.labelDelay = FeatureConfig.hour
        var keepConfig = config
        keepConfig.idleTTL = 3650 * FeatureConfig.day
        for (c, name) in [(keepConfig, "without eviction"), (config, "with a 30-day idle TTL")] {
            var engine = try FeatureEngine(config: c)
            _ = engine.process(txAt("2024-06-03T23:00:00Z", card: "a", merchant: "m0"))
            engine.apply(LabelFact(merchantID: "m0", transactionTime: Timestamp(rfc3339: "2024-06-03T23:00:00Z")!, isFraud: true))
            _ = engine.process(txAt("2024-07-05T00:01:00Z", card: "b", merchant: "m2"))
            let f = engine.process(txAt("2024-07-04T00:30:00Z", card: "c", merchant: "m0"))
            #expect(f[.merchantFraudRate30d] == 1, "\(name)")
        }
    }
}
