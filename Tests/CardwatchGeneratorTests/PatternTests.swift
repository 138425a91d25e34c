import CardwatchCore
import CardwatchGenerator
import Testing

/// Each fraud pattern carries its signature, checked on the million-transaction stream
/// against the card's own history (a brute-force pass, independent of the generator).
@Suite struct PatternSignatureTests {
    let txs = Fixtures.million.transactions
    let world = Fixtures.million.generator.world

    @Test func geoJumpImpliesMoreThan500KmPerHourFromTheCardsPreviousTransaction() {
        var checked = 0
        for indices in Fixtures.millionByCard.values {
            for (k, i) in indices.enumerated() where txs[i].fraudPattern == FraudPattern.geoJump.rawValue {
                guard k > 0 else {
                    Issue.record("geo_jump \(txs[i].transactionID) is its card's first transaction")
                    continue
                }
                let prev = txs[indices[k - 1]]
                let km = prev.location!.distanceKm(to: txs[i].location!)
                let hours = txs[i].timestamp.seconds(since: prev.timestamp) / 3600
                let speed = hours > 0 ? km / hours : .infinity
                #expect(speed > 500, "\(txs[i].transactionID): \(speed) km/h")
                checked += 1
            }
        }
        #expect(checked > 5_000)
    }

    @Test func velocityBurstHasAtLeastFiveTransactionsOfTheCardWithinTenMinutes() {
        var checked = 0
        for indices in Fixtures.millionByCard.values {
            let times = indices.map { txs[$0].timestamp }
            for (k, i) in indices.enumerated() where txs[i].fraudPattern == FraudPattern.velocityBurst.rawValue {
                // Some window of five consecutive card transactions containing this one spans ≤ 10 minutes.
                let found = (max(0, k - 4)...k).contains { s in
                    s + 4 < times.count && times[s + 4].seconds(since: times[s]) <= 600
                }
                #expect(found, "\(txs[i].transactionID)")
                checked += 1
            }
        }
        #expect(checked > 5_000)
    }

    @Test func highAmountIsAtLeast80PercentOfTheCardsLimit() {
        let high = txs.filter { $0.fraudPattern == FraudPattern.highAmount.rawValue }
        #expect(high.count > 3_000)
        for t in high {
            let limit = world.cards[world.cardIndex(of: t.cardID)!].creditLimit
            #expect(t.amount >= 0.8 * limit && t.amount <= limit, "\(t.transactionID): \(t.amount) of \(limit)")
        }
    }

    @Test func cardTestingAmountsAreAtMostTwoDollars() {
        let testing = txs.filter { $0.fraudPattern == FraudPattern.cardTesting.rawValue }
        #expect(testing.count > 1_000)
        #expect(testing.allSatisfy { $0.amount <= 2.00 && $0.amount > 0 })
        let online = testing.filter { $0.channel == .online }.count
        #expect(Double(online) / Double(testing.count) > 0.6, "card testing is mostly online")
    }

    @Test func everyTransactionHasTheWorldsFields() {
        let mccs = Set(MerchantCategory.catalog.map(\.mcc))
        for t in txs.prefix(100_000) {
            #expect(t.location != nil && t.channel != nil && t.country != nil && t.customerID != nil)
            #expect(mccs.contains(t.merchantCategory!))
            #expect(t.isFraud == (t.fraudPattern != nil))
        }
    }
}

@Suite struct LabelTests {
    @Test func everyFraudGetsOneChargebackDaysLaterAndNothingElseIsLabelled() {
        var (g, txs) = Fixtures.generate(count: 200_000)
        let config = GeneratorConfig()
        let byID = Dictionary(uniqueKeysWithValues: txs.map { ($0.transactionID, $0) })
        let horizon = txs.last!.timestamp + (config.labelDelayMaxDays + 1) * 86_400
        let labels = g.labels(reportedBy: horizon)
        #expect(zip(labels, labels.dropFirst()).allSatisfy { $0.reportedAt <= $1.reportedAt }, "labels arrive in order")
        var labelled = Set<String>()
        for l in labels {
            guard let t = byID[l.transactionID] else {
                Issue.record("label for unknown transaction \(l.transactionID)")
                continue
            }
            #expect(l.isFraud && t.isFraud == true)
            let days = l.reportedAt.seconds(since: t.timestamp) / 86_400
            #expect(days >= config.labelDelayMinDays - 0.001 && days <= config.labelDelayMaxDays + 0.001)
            #expect(labelled.insert(l.transactionID).inserted, "one label per transaction")
        }
        #expect(labelled.count == txs.filter { $0.isFraud == true }.count)
        #expect(g.pendingLabels == 0)
        let median = labels.map { $0.reportedAt.seconds(since: byID[$0.transactionID]!.timestamp) / 86_400 }.sorted()[
            labels.count / 2]
        #expect(abs(median - config.labelDelayMedianDays) < 1, "median delay \(median) days")
    }

    @Test func labelsAreNotReportedBeforeTheirTime() {
        var (g, txs) = Fixtures.generate(count: 50_000)
        let cut = txs[25_000].timestamp
        let early = g.labels(reportedBy: cut)
        #expect(early.allSatisfy { $0.reportedAt <= cut })
        #expect(g.pendingLabels > 0)
    }
}

@Suite struct LiveModeTests {
    @Test func liveModeHoldsItsRateAndStartsNow() throws {
        let start = Timestamp(rfc3339: "2026-06-01T12:00:00Z")!
        var g = try TransactionGenerator(config: GeneratorConfig(), mode: .live(start: start, tps: 50))
        var n = 0
        var first: Timestamp?
        while let t = g.next(), t.timestamp < start + 3_600 {
            first = first ?? t.timestamp
            n += 1
        }
        // 50 tx/s for an hour: 180,000 expected.
        #expect(abs(Double(n) / 180_000 - 1) < 0.1, "\(n) transactions in a simulated hour")
        #expect(first!.seconds(since: start) < 1)
    }

    @Test func liveIDsDoNotCollideWithBackfillIDs() throws {
        var live = try TransactionGenerator(config: GeneratorConfig(), mode: .live(start: Fixtures.start, tps: 50))
        var back = try TransactionGenerator(config: GeneratorConfig(), mode: .backfill(start: Fixtures.start, end: nil))
        #expect(live.next()!.transactionID != back.next()!.transactionID)
    }
}
