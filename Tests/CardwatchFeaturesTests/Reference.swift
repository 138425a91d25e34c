import CardwatchCore
import CardwatchFeatures

// A deliberately naive reference for the 29 features of schema v1, written from the
// specification table in `Feature`'s documentation and nothing else: every feature of every
// transaction is recomputed by plain loops over the full list of the transactions of the same
// card (or merchant) that arrived before it. It shares no code with the engine except
// `Feature`, `FeatureVector`, `GeoPoint.distanceKm` and `MerchantRisk`.
//
// Readings of the table where it is silent (stated in the report too):
// - An event more than the allowed lateness behind its key's newest event time is processed at
//   that newest time: for card features the card's newest, for merchant features the merchant's.
//   Its own attributes (hour of day, weekend, night) use its real timestamp.
// - "Latest earlier (located) event": the largest event time ≤ t; among equal times, the one that
//   arrived last.
// - No card feature looks further back than 30 days (`FeatureConfig`: "no window reaches
//   further"): `geo_velocity_kmh` ignores a located event more than 30 days before t, and the
//   usual location starts afresh when an event comes more than 30 days plus the allowed lateness
//   after the newest event of its card that arrived before it (as the table says).
// - Local solar time shifts UTC by longitude ÷ 15 hours, to the nearest second.
// - `is_new_merchant`: the 16 most recently used distinct merchants are taken over every earlier
//   arrival of the card, ordered by arrival; the merchant's latest earlier use (any arrival,
//   even one later in event time) must fall on or after day(t) − 29, as the table says.

/// Microseconds, spelled out here rather than taken from the engine.
enum Micros {
    static let second: Int64 = 1_000_000
    static let minute: Int64 = 60 * second
    static let hour: Int64 = 60 * minute
    static let day: Int64 = 24 * hour
}

/// The bucket number of `t` for buckets `width` wide: floor division, right before 1970 too.
func bucketOf(_ t: Int64, _ width: Int64) -> Int64 {
    let q = t / width
    if t % width != 0 && t < 0 { return q - 1 }
    return q
}

func dayOf(_ t: Int64) -> Int64 { bucketOf(t, Micros.day) }
func hourOf(_ t: Int64) -> Int64 { bucketOf(t, Micros.hour) }

/// Counters the reference expects the engine's `stats` to show.
struct ReferenceStats: Equatable {
    var processed = 0
    var lateWithinAllowance = 0
    var lateBeyondAllowance = 0
}

struct ReferenceEngine {
    /// What the reference keeps of one arrived transaction (plain values, so the loops stay quick).
    struct Record {
        /// Its own event time.
        var time: Int64
        /// The event time used for its card's windows (its own, or the card's newest when too late).
        var cardTime: Int64
        /// The same for its merchant's windows.
        var merchantTime: Int64
        var amount: Double
        var location: GeoPoint?
        var highRisk: Bool
        /// Its merchant, numbered in order of first appearance.
        var merchant: Int
    }

    let allowedLateness: Int64
    let labelDelay: Int64
    let smallAmount: Double
    /// Every arrived transaction of each card (merchant), in arrival order.
    var byCard: [String: [Record]] = [:]
    var byMerchant: [String: [Record]] = [:]
    /// The transaction times of the fraud labels applied so far, per merchant.
    var frauds: [String: [Int64]] = [:]
    var merchantNumbers: [String: Int] = [:]
    var stats = ReferenceStats()

    init(config: FeatureConfig) {
        allowedLateness = config.allowedLateness
        labelDelay = config.labelDelay
        smallAmount = config.smallAmount
    }

    /// Legitimate verdicts change no rate: every transaction is already in the denominators.
    mutating func apply(_ label: LabelFact) {
        if label.isFraud { frauds[label.merchantID, default: []].append(label.transactionTime.microseconds) }
    }

    mutating func process(_ tx: Transaction) -> FeatureVector {
        let t = tx.timestamp.microseconds
        var f = FeatureVector()
        var cardTime = t
        var merchantTime = t
        do {  // the histories are released before they grow, so appending never copies them
            let cardPast = byCard[tx.cardID] ?? []
            let merchantPast = byMerchant[tx.merchantID] ?? []

            // Lateness, per key.
            var cardNewest: Int64? = nil
            for r in cardPast where cardNewest == nil || r.cardTime > cardNewest! { cardNewest = r.cardTime }
            if let newest = cardNewest, t < newest {
                if newest - t > allowedLateness {
                    stats.lateBeyondAllowance += 1
                    cardTime = newest
                } else {
                    stats.lateWithinAllowance += 1
                }
            }
            var merchantNewest: Int64? = nil
            for r in merchantPast where merchantNewest == nil || r.merchantTime > merchantNewest! {
                merchantNewest = r.merchantTime
            }
            if let newest = merchantNewest, newest - t > allowedLateness { merchantTime = newest }

            cardFeatures(tx, at: cardTime, past: cardPast, into: &f)
            merchantFeatures(tx, at: merchantTime, past: merchantPast, into: &f)
            attributes(tx, into: &f)
        }

        let merchant = merchantNumbers[tx.merchantID] ?? merchantNumbers.count
        merchantNumbers[tx.merchantID] = merchant
        let record = Record(
            time: t, cardTime: cardTime, merchantTime: merchantTime, amount: tx.amount, location: tx.location,
            highRisk: MerchantRisk.isHighRisk(category: tx.merchantCategory), merchant: merchant)
        byCard[tx.cardID, default: []].append(record)
        byMerchant[tx.merchantID, default: []].append(record)
        stats.processed += 1
        return f
    }

    func cardFeatures(_ tx: Transaction, at t: Int64, past: [Record], into f: inout FeatureVector) {
        let amount = tx.amount
        let highRisk = MerchantRisk.isHighRisk(category: tx.merchantCategory)
        let thirtyDays = 30 * Micros.day
        let today = dayOf(t)
        let merchant = merchantNumbers[tx.merchantID] ?? -1

        // Exact windows (t − w, t]: the current transaction plus the earlier ones inside.
        var count5m = 1
        var count1h = 1
        var count1d = 1
        var sum1h = amount
        var max1h = amount
        var sum1d = amount
        var risky1h = highRisk ? 1 : 0
        var small1h = amount <= smallAmount ? 1 : 0
        // The latest earlier event, and the latest earlier located one (ties: the later arrival).
        var previous: Int64? = nil
        var previousLocated: Record? = nil
        // Usual location: running mean over earlier located events in arrival order, weight
        // 1/min(n, 20); forgotten whenever the card comes back after more than 30 days.
        var home = (latitude: 0.0, longitude: 0.0)
        var n = 0
        var newest: Int64? = nil
        // Bucketed day windows [day(t) − (D − 1), day(t)]: every earlier arrival whose day is inside.
        var count7 = 0
        var sum7 = 0.0
        var count30 = 0
        var sum30 = 0.0
        // An earlier use of this merchant on a day from day(t) − 29 on.
        var usedInWindow = false

        for r in past {  // in arrival order
            if let last = newest, r.time - last > thirtyDays + allowedLateness { n = 0 }
            newest = max(newest ?? r.cardTime, r.cardTime)
            if let p = r.location {
                n += 1
                if n == 1 {
                    home = (p.latitude, p.longitude)
                } else {
                    let w = Double(min(n, 20))
                    home.latitude += (p.latitude - home.latitude) / w
                    home.longitude += (p.longitude - home.longitude) / w
                }
            }

            let d = dayOf(r.cardTime)
            if d >= today - 6 && d <= today {
                count7 += 1
                sum7 += r.amount
            }
            if d >= today - 29 && d <= today {
                count30 += 1
                sum30 += r.amount
            }
            if r.merchant == merchant && d >= today - 29 { usedInWindow = true }

            guard r.cardTime <= t else { continue }
            if r.cardTime > t - 5 * Micros.minute { count5m += 1 }
            if r.cardTime > t - Micros.hour {
                count1h += 1
                sum1h += r.amount
                max1h = max(max1h, r.amount)
                if r.highRisk { risky1h += 1 }
                if r.amount <= smallAmount { small1h += 1 }
            }
            if r.cardTime > t - Micros.day {
                count1d += 1
                sum1d += r.amount
            }
            if previous == nil || r.cardTime > previous! { previous = r.cardTime }
            if r.location != nil && (previousLocated == nil || r.cardTime >= previousLocated!.cardTime) {
                previousLocated = r
            }
        }
        if let last = newest, tx.timestamp.microseconds - last > thirtyDays + allowedLateness { n = 0 }

        f[.txCount5min] = Double(count5m)
        f[.txCount1hr] = Double(count1h)
        f[.avgAmount1hr] = sum1h / Double(count1h)
        f[.maxAmount1hr] = max1h
        f[.highRiskMerchantCount1hr] = Double(risky1h)
        f[.smallAmountCount1hr] = Double(small1h)
        f[.cardTxCount1d] = Double(count1d)
        f[.cardAvgAmount1d] = sum1d / Double(count1d)

        if let p = previous {
            f[.timeSinceLastTxS] = Double(min(t - p, thirtyDays)) / Double(Micros.second)
        } else {
            f[.timeSinceLastTxS] = 2_592_000
        }
        f[.geoVelocityKmh] = 0
        if let here = tx.location, let p = previousLocated, t - p.cardTime <= thirtyDays {
            let km = here.distanceKm(to: p.location!)
            let hours = Double(max(t - p.cardTime, Micros.minute)) / Double(Micros.hour)
            f[.geoVelocityKmh] = km / hours
        }
        f[.distanceFromHomeKm] = 0
        if let here = tx.location, n > 0 {
            f[.distanceFromHomeKm] = here.distanceKm(to: GeoPoint(latitude: home.latitude, longitude: home.longitude))
        }

        f[.cardTxCount7d] = Double(count7 + 1)
        f[.cardAvgAmount7d] = (sum7 + amount) / Double(count7 + 1)
        f[.cardTxCount30d] = Double(count30 + 1)
        f[.cardAvgAmount30d] = (sum30 + amount) / Double(count30 + 1)
        f[.amountVsAvgRatio] = count30 == 0 ? 1 : amount / (sum30 / Double(count30))

        // is_new_merchant: the 16 most recently used distinct merchants, newest arrival first.
        var recent: [Int] = []
        for r in past.reversed() where recent.count < 16 && !recent.contains(r.merchant) {
            recent.append(r.merchant)
        }
        f[.isNewMerchant] = recent.contains(merchant) && usedInWindow ? 0 : 1
    }

    func merchantFeatures(_ tx: Transaction, at t: Int64, past: [Record], into f: inout FeatureVector) {
        // Volume: the current transaction plus every earlier arrival in the buckets.
        let hour = hourOf(t)
        let day = dayOf(t)
        var count1d = 1
        var count7d = 1
        var count30d = 1
        // Fraud rates over windows ending one label delay before t; the current one never counts.
        let kh = hourOf(t - labelDelay)
        let kd = dayOf(t - labelDelay)
        var events = (d1: 0, d7: 0, d30: 0)
        var known = (d1: 0, d7: 0, d30: 0)
        for r in past {
            let h = hourOf(r.merchantTime)
            let d = dayOf(r.merchantTime)
            if h >= hour - 23 && h <= hour { count1d += 1 }
            if d >= day - 6 && d <= day { count7d += 1 }
            if d >= day - 29 && d <= day { count30d += 1 }
            if h >= kh - 24 && h <= kh - 1 { events.d1 += 1 }
            if d >= kd - 7 && d <= kd - 1 { events.d7 += 1 }
            if d >= kd - 30 && d <= kd - 1 { events.d30 += 1 }
        }
        for time in self.frauds[tx.merchantID] ?? [] {
            let h = hourOf(time)
            let d = dayOf(time)
            if h >= kh - 24 && h <= kh - 1 { known.d1 += 1 }
            if d >= kd - 7 && d <= kd - 1 { known.d7 += 1 }
            if d >= kd - 30 && d <= kd - 1 { known.d30 += 1 }
        }
        func rate(_ fraud: Int, _ count: Int) -> Double { count == 0 ? 0 : Double(fraud) / Double(count) }
        f[.merchantTxCount1d] = Double(count1d)
        f[.merchantTxCount7d] = Double(count7d)
        f[.merchantTxCount30d] = Double(count30d)
        f[.merchantFraudRate1d] = rate(known.d1, events.d1)
        f[.merchantFraudRate7d] = rate(known.d7, events.d7)
        f[.merchantFraudRate30d] = rate(known.d30, events.d30)
    }

    func attributes(_ tx: Transaction, into f: inout FeatureVector) {
        f[.amount] = tx.amount
        var local = tx.timestamp.microseconds
        if let p = tx.location { local += Int64((p.longitude * 240).rounded()) * Micros.second }
        let hour = Int((hourOf(local) % 24 + 24) % 24)
        // 1970-01-01 was a Thursday: with Monday = 0 it is weekday 3.
        let weekday = Int(((dayOf(local) + 3) % 7 + 7) % 7)
        f[.hourOfDay] = Double(hour)
        f[.isWeekend] = weekday == 5 || weekday == 6 ? 1 : 0
        f[.isNight] = hour < 6 ? 1 : 0
        f[.isOnline] = tx.channel == .online ? 1 : 0
        f[.isHighRiskMerchant] = MerchantRisk.isHighRisk(category: tx.merchantCategory) ? 1 : 0
    }
}
