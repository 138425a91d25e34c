import CardwatchCore
import Testing

@testable import CardwatchFeatures

@Suite struct FeatureVectorTests {
    @Test func countsAgree() {
        #expect(Feature.allCases.count == 29)
        #expect(Feature.allCases.count == Feature.count)
        #expect(FeatureVector.count == Feature.count)
        #expect(Feature.names.count == Feature.count)
        #expect(FeatureVector().array.count == Feature.count)
    }

    @Test func namesAreUniqueSnakeCaseAndRoundTrip() {
        #expect(Set(Feature.names).count == Feature.names.count)
        let lower = Set("abcdefghijklmnopqrstuvwxyz")
        let digits = Set("0123456789")
        for name in Feature.names {
            let parts = name.split(separator: "_", omittingEmptySubsequences: false)
            let ok =
                !parts.contains { $0.isEmpty } && parts.allSatisfy { $0.allSatisfy { lower.contains($0) || digits.contains($0) } }
                && lower.contains(name.first!)
            #expect(ok, "\(name) is not snake_case")
        }
        for (i, f) in Feature.allCases.enumerated() {
            #expect(f.rawValue == i)
            #expect(f.name == Feature.names[i])
            #expect(Feature(name: f.name) == f)
        }
        #expect(Feature(name: "no_such_feature") == nil)
    }

    @Test func theEightOriginalNamesArePresentVerbatim() {
        let original = [
            "tx_count_5min", "tx_count_1hr", "avg_amount_1hr", "max_amount_1hr", "geo_velocity_kmh", "time_since_last_tx_s",
            "high_risk_merchant_count_1hr", "amount_vs_avg_ratio",
        ]
        for name in original { #expect(Feature.names.contains(name), "\(name) is missing") }
        #expect(Array(Feature.names.prefix(8)) == original, "the original eight lead the schema")
    }

    @Test func subscriptsAgree() {
        var v = FeatureVector()
        #expect(v.array == [Double](repeating: 0, count: Feature.count))
        for f in Feature.allCases { v[f] = Double(f.rawValue) + 0.5 }
        for i in 0..<Feature.count { #expect(v[i] == Double(i) + 0.5) }
        #expect(v.array == (0..<Feature.count).map { Double($0) + 0.5 })
        var w = v
        #expect(w == v)
        w[.isOnline] = .nan
        #expect(w != v)
        var x = v
        x[.isOnline] = .nan
        #expect(w == x, "NaN equals NaN in a feature vector")
    }
}

@Suite struct MissingDataTests {
    /// The table's "when data is missing" column, for a card's very first transaction.
    @Test func firstTransactionOfACardWithoutCoordinates() {
        // Monday 2024-06-03 10:00Z, $42, at merchant m without category or channel.
        let f = features([txAt("2024-06-03T10:00:00Z", amount: 42)])[0]
        var want = [Double](repeating: 0, count: Feature.count)
        want[Feature.txCount5min.rawValue] = 1
        want[Feature.txCount1hr.rawValue] = 1
        want[Feature.avgAmount1hr.rawValue] = 42
        want[Feature.maxAmount1hr.rawValue] = 42
        want[Feature.geoVelocityKmh.rawValue] = 0
        want[Feature.timeSinceLastTxS.rawValue] = 2_592_000
        want[Feature.highRiskMerchantCount1hr.rawValue] = 0
        want[Feature.amountVsAvgRatio.rawValue] = 1
        want[Feature.amount.rawValue] = 42
        want[Feature.hourOfDay.rawValue] = 10  // UTC without coordinates
        want[Feature.isWeekend.rawValue] = 0
        want[Feature.isNight.rawValue] = 0
        want[Feature.distanceFromHomeKm.rawValue] = 0
        for c in [Feature.cardTxCount1d, .cardTxCount7d, .cardTxCount30d] { want[c.rawValue] = 1 }
        for a in [Feature.cardAvgAmount1d, .cardAvgAmount7d, .cardAvgAmount30d] { want[a.rawValue] = 42 }
        want[Feature.smallAmountCount1hr.rawValue] = 0
        want[Feature.isNewMerchant.rawValue] = 1
        for c in [Feature.merchantTxCount1d, .merchantTxCount7d, .merchantTxCount30d] { want[c.rawValue] = 1 }
        for r in [Feature.merchantFraudRate1d, .merchantFraudRate7d, .merchantFraudRate30d] { want[r.rawValue] = 0 }
        want[Feature.isOnline.rawValue] = 0
        want[Feature.isHighRiskMerchant.rawValue] = 0
        #expect(f.array == want)
    }

    @Test func firstTransactionWithCoordinatesSmallAmountAndHighRisk() {
        let f = features([txAt("2024-06-03T10:00:00Z", amount: 1.5, category: "6051", place: paris, channel: .online)])[0]
        #expect(f[.geoVelocityKmh] == 0)
        #expect(f[.distanceFromHomeKm] == 0)
        #expect(f[.timeSinceLastTxS] == 2_592_000)
        #expect(f[.highRiskMerchantCount1hr] == 1)
        #expect(f[.smallAmountCount1hr] == 1)
        #expect(f[.isHighRiskMerchant] == 1)
        #expect(f[.isOnline] == 1)
        #expect(f[.amountVsAvgRatio] == 1)
        #expect(f[.isNewMerchant] == 1)
        // Paris is 2.3522° E: 9 min 25 s ahead of UTC.
        #expect(f[.hourOfDay] == 10)
    }

    @Test func coordinatesMissingNowOrBefore() {
        let f = features([
            txAt("2024-06-03T10:00:00Z"),  // unlocated first
            txAt("2024-06-03T10:30:00Z", place: paris),  // no earlier located event: 0, 0
            txAt("2024-06-03T11:00:00Z"),  // no coordinates now: 0, 0
            txAt("2024-06-03T11:30:00Z", place: london),  // Paris 1 h earlier: ≈ 344 km/h; home Paris: ≈ 344 km
        ])
        #expect(f.map { $0[.geoVelocityKmh] }.prefix(3) == [0, 0, 0])
        #expect(f.map { $0[.distanceFromHomeKm] }.prefix(3) == [0, 0, 0])
        let km = london.distanceKm(to: paris)
        #expect(abs(f[3][.geoVelocityKmh] - km) < 1e-9)
        #expect(abs(f[3][.distanceFromHomeKm] - km) < 1e-9)
        // Time since the last transaction does not need coordinates.
        #expect(f.map { $0[.timeSinceLastTxS] } == [2_592_000, 1_800, 1_800, 1_800])
    }

    @Test func aNewCardAtAKnownMerchantIsStillNewToThatCard() {
        let f = features([
            txAt("2024-06-03T10:00:00Z", card: "a", merchant: "shop"),
            txAt("2024-06-03T10:01:00Z", card: "b", merchant: "shop"),
        ])
        #expect(f[1][.isNewMerchant] == 1)
        #expect(f[1][.timeSinceLastTxS] == 2_592_000)
        #expect(f[1][.merchantTxCount1d] == 2)
        #expect(f[1][.txCount5min] == 1)
    }
}
