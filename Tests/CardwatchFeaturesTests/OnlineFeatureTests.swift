import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import Testing

/// `OnlineFeatures` (a profile carried forward) against the engine, the reference for the
/// cases the table in its documentation calls exact: a card with one earlier transaction, in
/// order, and its merchant with one (here: the same, or a new merchant).
@Suite struct OnlineFeatureTests {
    static let t0 = Timestamp(rfc3339: "2026-03-01T00:00:00Z")!.microseconds

    static func transaction(_ rng: inout SeededRandom, id: String, at t: Int64, merchant: String) -> Transaction {
        let located = Double.random(in: 0..<1, using: &rng) < 0.7
        let categories = ["5411", "5812", "7995", "6051", "5999", nil]
        let channels: [Channel?] = [.pos, .online, .atm, nil]
        return Transaction(
            transactionID: id, cardID: "card-1", amount: (Double.random(in: 0.5...900, using: &rng) * 100).rounded() / 100,
            timestamp: Timestamp(microseconds: t), merchantID: merchant,
            merchantCategory: categories.randomElement(using: &rng)!,
            location: located
                ? GeoPoint(
                    latitude: Double.random(in: -60...60, using: &rng), longitude: Double.random(in: -179...179, using: &rng))
                : nil,
            channel: channels.randomElement(using: &rng)!)
    }

    /// Gaps from a second to 29 days, so every window is crossed somewhere; a third of them at
    /// a window's edge (exactly, or a microsecond or a second either side).
    static func gap(_ rng: inout SeededRandom) -> Int64 {
        if Int.random(in: 0..<3, using: &rng) == 0 {
            let edges: [Int64] = [300_000_000, 3_600_000_000, 86_400_000_000, 7 * 86_400_000_000, 29 * 86_400_000_000]
            let nudges: [Int64] = [0, 1, -1, 1_000_000, -1_000_000]
            return min(edges.randomElement(using: &rng)! + nudges.randomElement(using: &rng)!, 29 * 86_400_000_000)
        }
        let scales: [Int64] = [1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000]
        let scale = scales.randomElement(using: &rng)!
        return min(Int64.random(in: 1...600, using: &rng) * scale, 29 * 86_400_000_000)
    }

    @Test func oneEarlierTransactionGivesTheEnginesFeatures() {
        var rng = SeededRandom(seed: 0x0411_11E5)
        var checked = 0
        for i in 0..<2_000 {
            let first = Self.transaction(
                &rng, id: "a\(i)", at: Self.t0 + Int64.random(in: 0...86_400_000_000, using: &rng), merchant: "m1")
            let sameMerchant = Bool.random(using: &rng)
            let second = Self.transaction(
                &rng, id: "b\(i)", at: first.timestamp.microseconds + Self.gap(&rng), merchant: sameMerchant ? "m1" : "m2")
            var engine = try! FeatureEngine()
            let f1 = engine.process(first)
            let want = engine.process(second)
            let card = CardProfile(
                cardID: "card-1", features: f1, eventTime: first.timestamp, location: first.location, merchantID: "m1",
                transactionID: first.transactionID, committedAt: 0)
            let merchant = MerchantProfile(
                merchantID: "m1", values: MerchantProfile.features.map { f1[$0] }, eventTime: first.timestamp, committedAt: 0)
            let got = OnlineFeatures.vector(second, card: card, merchant: sameMerchant ? merchant : nil)
            for f in Feature.allCases where !featureMatches(f, want[f], got[f]) {
                Issue.record("case \(i): \(f.name) engine \(want[f]), online \(got[f]); \(first) then \(second)")
            }
            checked += 1
        }
        #expect(checked == 2_000)
    }

    /// No profile (a new card, or the store away): the engine's first-transaction features.
    @Test func withoutAProfileEveryHistoryFeatureTakesItsFirstTransactionValue() {
        var rng = SeededRandom(seed: 7)
        for i in 0..<300 {
            let tx = Self.transaction(&rng, id: "c\(i)", at: Self.t0 + Int64(i) * 3_600_000_000, merchant: "m\(i)")
            var engine = try! FeatureEngine()
            #expect(OnlineFeatures.vector(tx, card: nil, merchant: nil) == engine.process(tx))
        }
    }

    /// A longer history: never exact, but the transaction's own features always are, and the
    /// counts never fall below the engine's (events that left a window still count).
    @Test func aLongerHistoryKeepsTheTransactionsOwnFeaturesAndBoundsTheCounts() {
        var rng = SeededRandom(seed: 99)
        for i in 0..<200 {
            var engine = try! FeatureEngine()
            var t = Self.t0
            var last: (Transaction, FeatureVector)?
            for j in 0..<Int.random(in: 2...30, using: &rng) {
                t += Self.gap(&rng) / 50
                let tx = Self.transaction(&rng, id: "d\(i)-\(j)", at: t, merchant: "m\(j % 3)")
                last = (tx, engine.process(tx))
            }
            let (prev, pf) = last!
            let next = Self.transaction(&rng, id: "e\(i)", at: t + Self.gap(&rng) / 50, merchant: "m1")
            let want = engine.process(next)
            let got = OnlineFeatures.vector(
                next,
                card: CardProfile(
                    cardID: "card-1", features: pf, eventTime: prev.timestamp, location: prev.location,
                    merchantID: prev.merchantID, transactionID: prev.transactionID, committedAt: 0),
                merchant: nil)
            for f in [Feature.amount, .hourOfDay, .isWeekend, .isNight, .isOnline, .isHighRiskMerchant, .timeSinceLastTxS] {
                #expect(got[f] == want[f], "\(f.name)")
            }
            for f in [Feature.txCount5min, .txCount1hr, .cardTxCount1d, .cardTxCount7d, .cardTxCount30d] {
                #expect(got[f] >= want[f], "\(f.name): online \(got[f]) < engine \(want[f])")
            }
        }
    }
}
