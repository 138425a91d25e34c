import CardwatchCore
import CardwatchFeatures
import Testing

// Hand-made scenarios with answers worked out by hand in the comments. Day 0 is Monday
// 2024-06-03 (UTC); the default config has a 5-minute allowed lateness and a 7-day label delay.

/// A transaction at an RFC 3339 time; its id names the card and the time.
func txAt(
    _ time: String, card: String = "c1", amount: Double = 10, merchant: String = "m1", category: String? = nil,
    place: GeoPoint? = nil, channel: Channel? = nil
) -> Transaction {
    Transaction(
        transactionID: "\(card)@\(time)", cardID: card, amount: amount, timestamp: Timestamp(rfc3339: time)!,
        merchantID: merchant, merchantCategory: category, location: place, channel: channel)
}

/// The features of each transaction, processed in the given (arrival) order.
func features(_ txs: [Transaction], config: FeatureConfig = FeatureConfig()) -> [FeatureVector] {
    var engine = try! FeatureEngine(config: config)
    return txs.map { engine.process($0) }
}

let newYork = GeoPoint(latitude: 40.7128, longitude: -74.0060)
let london = GeoPoint(latitude: 51.5074, longitude: -0.1278)
let paris = GeoPoint(latitude: 48.8566, longitude: 2.3522)
let tokyo = GeoPoint(latitude: 35.6762, longitude: 139.6503)

@Suite struct ScenarioTests {
    @Test func txCount5minCountsTheLastFiveMinutesExclusiveOfTheStart() {
        let f = features([
            txAt("2024-06-03T10:00:00Z"),  // 1: the first
            txAt("2024-06-03T10:02:00Z"),  // (09:57, 10:02]: 10:00, 10:02 → 2
            txAt("2024-06-03T10:02:30Z", card: "other"),  // another card never counts → 1
            txAt("2024-06-03T10:04:59Z"),  // (09:59:59, 10:04:59]: 10:00, 10:02, 10:04:59 → 3
            txAt("2024-06-03T10:05:00Z"),  // (10:00, 10:05]: 10:00 is out → 10:02, 10:04:59, 10:05 → 3
            txAt("2024-06-03T10:07:00Z"),  // (10:02, 10:07]: 10:04:59, 10:05, 10:07 → 3
            txAt("2024-06-03T10:20:00Z"),  // alone again → 1
        ])
        #expect(f.map { $0[.txCount5min] } == [1, 2, 1, 3, 3, 3, 1])
    }

    @Test func txCount1hrCountsTheLastHour() {
        let f = features([
            txAt("2024-06-03T09:00:00Z"),  // 1
            txAt("2024-06-03T09:30:00Z"),  // 2
            txAt("2024-06-03T09:59:59Z"),  // (08:59:59, 09:59:59]: all three → 3
            txAt("2024-06-03T10:00:00Z"),  // (09:00, 10:00]: 09:00 is out → 3
            txAt("2024-06-03T10:30:00Z"),  // (09:30, 10:30]: 09:59:59, 10:00, 10:30 → 3
            txAt("2024-06-03T12:00:00Z"),  // → 1
        ])
        #expect(f.map { $0[.txCount1hr] } == [1, 2, 3, 3, 3, 1])
    }

    @Test func avgAndMaxAmount1hr() {
        let f = features([
            txAt("2024-06-03T09:00:00Z", amount: 100),  // avg 100, max 100
            txAt("2024-06-03T09:30:00Z", amount: 50),  // {100, 50}: avg 75, max 100
            txAt("2024-06-03T09:45:00Z", amount: 300),  // {100, 50, 300}: avg 150, max 300
            txAt("2024-06-03T10:15:00Z", amount: 10),  // (09:15, 10:15]: {50, 300, 10}: avg 120, max 300
            txAt("2024-06-03T10:50:00Z", amount: 20),  // (09:50, 10:50]: {10, 20}: avg 15, max 20
        ])
        #expect(f.map { $0[.avgAmount1hr] } == [100, 75, 150, 120, 15])
        #expect(f.map { $0[.maxAmount1hr] } == [100, 100, 300, 300, 20])
    }

    @Test func geoVelocityFromTheLatestLocatedEvent() {
        let f = features([
            txAt("2024-06-03T10:00:00Z", place: newYork),  // first: 0
            txAt("2024-06-03T11:00:00Z", place: london),  // NY → London in 1 h: ≈ 5,570 km/h
            txAt("2024-06-03T11:30:00Z"),  // no coordinates: 0
            txAt("2024-06-03T12:00:00Z", place: paris),  // London (11:00) → Paris in 1 h: ≈ 344 km/h
            txAt("2024-06-03T12:00:30Z", place: london),  // Paris → London in 30 s, counted as 1 minute: ≈ 20,600 km/h
            txAt("2024-06-03T12:10:00Z", place: london),  // did not move: 0
        ])
        let nyLondon = newYork.distanceKm(to: london)
        let londonParis = london.distanceKm(to: paris)
        #expect((5_550...5_590).contains(nyLondon), "New York to London is about 5,570 km")
        #expect((335...350).contains(londonParis), "London to Paris is about 344 km")
        #expect(f[0][.geoVelocityKmh] == 0)
        #expect(abs(f[1][.geoVelocityKmh] - nyLondon) < 1e-9)
        #expect((5_550...5_590).contains(f[1][.geoVelocityKmh]))
        #expect(f[2][.geoVelocityKmh] == 0)
        #expect(abs(f[3][.geoVelocityKmh] - londonParis) < 1e-9)
        #expect(abs(f[4][.geoVelocityKmh] - londonParis * 60) < 1e-6)
        #expect((20_100...21_000).contains(f[4][.geoVelocityKmh]))
        #expect(f[5][.geoVelocityKmh] == 0)
    }

    @Test func timeSinceLastTransaction() {
        let f = features([
            txAt("2024-06-03T10:00:00Z"),  // first: 30 days = 2,592,000 s
            txAt("2024-06-03T10:01:30Z"),  // 90 s
            txAt("2024-06-03T10:04:00Z"),  // 150 s
            txAt("2024-06-03T10:03:00Z"),  // 1 minute late (allowed): since 10:01:30, not 10:04 → 90 s
            txAt("2024-06-03T10:03:00.250Z"),  // 0.25 s after the late one
            txAt("2024-07-02T10:04:00Z"),  // 29 days after 10:04 → 2,505,600 s
            txAt("2024-08-15T00:00:00Z"),  // 44 days later: capped at 2,592,000 s
        ])
        #expect(f.map { $0[.timeSinceLastTxS] } == [2_592_000, 90, 150, 90, 0.25, 2_505_600, 2_592_000])
    }

    @Test func highRiskMerchantCount1hr() {
        let f = features([
            txAt("2024-06-03T10:00:00Z", category: "7995"),  // betting: 1
            txAt("2024-06-03T10:10:00Z", category: "5411"),  // grocery; the 7995 still counts: 1
            txAt("2024-06-03T10:20:00Z", category: "4829"),  // 7995, 4829: 2
            txAt("2024-06-03T10:30:00Z", category: "Gift Cards"),  // by name (case-insensitive): 3
            txAt("2024-06-03T11:05:00Z", category: "6051"),  // (10:05, 11:05]: 4829, gift cards, 6051: 3
            txAt("2024-06-03T11:30:00Z"),  // (10:30, 11:30]: 6051 only: 1
            txAt("2024-06-03T11:31:00Z", card: "c2", category: "5947"),  // another card's first: 1
        ])
        #expect(f.map { $0[.highRiskMerchantCount1hr] } == [1, 1, 2, 3, 3, 1, 1])
        #expect(f.map { $0[.isHighRiskMerchant] } == [1, 0, 1, 1, 1, 0, 1])
    }

    @Test func amountVsAvgRatioAgainstTheEarlier30DayMean() {
        let f = features([
            txAt("2024-06-03T00:00:01Z", amount: 100),  // day 0, nothing earlier: 1
            txAt("2024-06-04T12:00:00Z", amount: 200),  // day 1: 200 / 100 = 2
            txAt("2024-06-05T12:00:00Z", amount: 30),  // day 2: 30 / mean(100, 200) = 0.2
            txAt("2024-07-02T23:59:59Z", amount: 66),  // day 29: [day 0, day 29]: 66 / mean(100, 200, 30) = 0.6
            // day 31 (July 4): [day 2, day 31] holds 30 and 66: 48 / 48 = 1
            txAt("2024-07-04T18:00:00Z", amount: 48),
            txAt("2024-09-01T12:00:00Z", amount: 5),  // nothing in the last 30 days: 1
        ])
        let want: [Double] = [1, 2, 0.2, 0.6, 1, 1]
        for (got, w) in zip(f.map { $0[.amountVsAvgRatio] }, want) { #expect(abs(got - w) < 1e-12, "\(got) vs \(w)") }
    }

    @Test func bucketedWindowsAreWholeUTCDays() {
        let f = features([
            txAt("2024-06-03T00:00:00Z", amount: 10),  // day 0
            txAt("2024-06-09T23:59:59Z", amount: 20),  // day 6: 7d = [day 0, day 6] → 2
            txAt("2024-06-10T00:00:00Z", amount: 30),  // day 7: 7d = [day 1, day 7] → 20, 30 → 2
            txAt("2024-07-02T23:59:59Z", amount: 40),  // day 29: 30d = [day 0, day 29] → all four
            txAt("2024-07-03T00:00:00Z", amount: 50),  // day 30: 30d = [day 1, day 30] → 20, 30, 40, 50
        ])
        #expect(f.map { $0[.cardTxCount7d] } == [1, 2, 2, 1, 2])
        #expect(f.map { $0[.cardAvgAmount7d] } == [10, 15, 25, 40, 45])
        #expect(f.map { $0[.cardTxCount30d] } == [1, 2, 3, 4, 4])
        #expect(f.map { $0[.cardAvgAmount30d] } == [10, 15, 20, 25, 35])
        // Exact 24 h windows: only the day-6 and day-7 events are within a day of each other.
        #expect(f.map { $0[.cardTxCount1d] } == [1, 1, 2, 1, 2])
        #expect(f.map { $0[.cardAvgAmount1d] } == [10, 20, 25, 40, 45])
        // The merchant's volume: every transaction here is at m1; 1d is [hour(t) − 23, hour(t)].
        #expect(f.map { $0[.merchantTxCount1d] } == [1, 1, 2, 1, 2])
        #expect(f.map { $0[.merchantTxCount7d] } == [1, 2, 2, 1, 2])
        #expect(f.map { $0[.merchantTxCount30d] } == [1, 2, 3, 4, 4])
    }

    @Test func smallAmountsAndChannels() {
        let f = features([
            txAt("2024-06-03T10:00:00Z", amount: 0.01, channel: .online),  // small: 1
            txAt("2024-06-03T10:00:05Z", amount: 2.00, channel: .pos),  // $2.00 is small: 2
            txAt("2024-06-03T10:00:10Z", amount: 2.01, channel: .atm),  // not small: 2
            txAt("2024-06-03T11:00:06Z", amount: 1.50),  // (10:00:06, 11:00:06]: 2.01, 1.50 → 1
        ])
        #expect(f.map { $0[.smallAmountCount1hr] } == [1, 2, 2, 1])
        #expect(f.map { $0[.isOnline] } == [1, 0, 0, 0])
        #expect(f.map { $0[.amount] } == [0.01, 2.00, 2.01, 1.50])
    }

    @Test func isNewMerchantRemembersSixteenMerchantsFor30Days() {
        var txs = [txAt("2024-06-03T10:00:00Z", merchant: "a")]  // first: 1
        txs.append(txAt("2024-06-03T11:00:00Z", merchant: "a"))  // seen: 0
        // 16 other merchants push "a" out of the 16 most recent ones.
        for k in 0..<16 { txs.append(txAt("2024-06-04T10:\(10 + k):00Z", merchant: "m\(k)")) }
        txs.append(txAt("2024-06-05T10:00:00Z", merchant: "a"))  // forgotten: 1
        txs.append(txAt("2024-07-04T09:00:00Z", merchant: "a"))  // day 31; last use day 2 = day(t) − 29: 0
        txs.append(txAt("2024-08-03T09:00:00Z", merchant: "a"))  // day 61; last use day 31 < day(t) − 29: 1
        txs.append(txAt("2024-09-01T23:00:00Z", merchant: "a"))  // day 90; last use day 61 = day(t) − 29: 0
        let f = features(txs)
        #expect(f[0][.isNewMerchant] == 1)
        #expect(f[1][.isNewMerchant] == 0)
        #expect(f[2..<18].allSatisfy { $0[.isNewMerchant] == 1 })
        #expect(f.suffix(4).map { $0[.isNewMerchant] } == [1, 0, 1, 0])
    }

    @Test func usualLocationIsARunningMeanWithWeightCappedAtOneTwentieth() {
        var txs = [txAt("2024-06-03T00:00:00Z", place: GeoPoint(latitude: 0, longitude: 0))]  // no earlier: 0
        txs.append(txAt("2024-06-03T01:00:00Z", place: GeoPoint(latitude: 0, longitude: 10)))  // home (0, 0)
        txs.append(txAt("2024-06-03T02:00:00Z"))  // no coordinates: 0, home unchanged
        txs.append(txAt("2024-06-03T03:00:00Z", place: GeoPoint(latitude: 0, longitude: 5)))  // home (0, 5): 0
        let f = features(txs)
        let tenDegrees = GeoPoint(latitude: 0, longitude: 0).distanceKm(to: GeoPoint(latitude: 0, longitude: 10))
        #expect((1_110...1_113).contains(tenDegrees), "10° of the equator is about 1,112 km")
        #expect(f.map { $0[.distanceFromHomeKm] } == [0, tenDegrees, 0, 0])

        // Twenty times at (0, 0), then (0, 20): 2,224 km from home; home moves by 1/20 of 20° to (0, 1).
        var more = (0..<20).map { txAt("2024-06-04T00:\(10 + $0):00Z", card: "c2", place: GeoPoint(latitude: 0, longitude: 0)) }
        more.append(txAt("2024-06-04T01:00:00Z", card: "c2", place: GeoPoint(latitude: 0, longitude: 20)))
        more.append(txAt("2024-06-04T02:00:00Z", card: "c2", place: GeoPoint(latitude: 0, longitude: 1)))
        let g = features(more)
        #expect(abs(g[20][.distanceFromHomeKm] - 2 * tenDegrees) < 1e-6)
        #expect(g[21][.distanceFromHomeKm] < 1e-9, "weight 1/20, not 1/21: \(g[21][.distanceFromHomeKm]) km")
    }

    @Test func localSolarTime() {
        let f = features([
            // Tokyo is 139.6503° E: + 9 h 18 m 36 s. 20:00Z Monday is 05:18 Tuesday: night, weekday.
            txAt("2024-06-03T20:00:00Z", place: tokyo),
            // New York is 74.006° W: − 4 h 56 m 1 s. 16:00Z Saturday is 11:03 Saturday.
            txAt("2024-06-01T16:00:00Z", card: "c2", place: newYork),
            // 23:30Z Friday is 08:48 Saturday in Tokyo.
            txAt("2024-05-31T23:30:00Z", card: "c3", place: tokyo),
            // No coordinates: UTC. 03:00Z Saturday: night, weekend.
            txAt("2024-06-01T03:00:00Z", card: "c4"),
            // 05:59:59Z Monday without coordinates: still night; 06:00 is not.
            txAt("2024-06-03T05:59:59Z", card: "c5"),
            txAt("2024-06-03T06:00:00Z", card: "c6"),
        ])
        #expect(f.map { $0[.hourOfDay] } == [5, 11, 8, 3, 5, 6])
        #expect(f.map { $0[.isNight] } == [1, 0, 0, 1, 1, 0])
        #expect(f.map { $0[.isWeekend] } == [0, 1, 1, 1, 0, 0])
    }
}
