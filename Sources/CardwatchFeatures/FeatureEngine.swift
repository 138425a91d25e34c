public import CardwatchCore

/// A label the engine can use: which merchant's transaction, when it happened, and the verdict.
/// (Label events name only a transaction id; whoever holds the transaction resolves it.)
public struct LabelFact: Sendable, Hashable {
    public var merchantID: String
    public var transactionTime: Timestamp
    public var isFraud: Bool
    public init(merchantID: String, transactionTime: Timestamp, isFraud: Bool) {
        self.merchantID = merchantID
        self.transactionTime = transactionTime
        self.isFraud = isFraud
    }
}

/// What the engine has seen, for metrics.
public struct FeatureEngineStats: Sendable, Equatable {
    public var processed = 0
    /// Events behind their card's newest one but within the allowed lateness: folded in exactly.
    public var lateWithinAllowance = 0
    /// Events later than the allowed lateness: processed at their key's newest time.
    public var lateBeyondAllowance = 0
    public var labelsApplied = 0
    public var evictedCards = 0
    public var evictedMerchants = 0
}

/// The streaming feature engine: keyed state per card and per merchant in event
/// time, updated one transaction at a time. Training replays history through this
/// same type (`FeatureReplay`), so serving and training cannot disagree.
///
/// Each transaction is seen once: `process` folds it into its card's and
/// merchant's state and returns its features as of its event time. No heap
/// allocation happens per transaction once a key's buffers have grown.
public struct FeatureEngine: Sendable {
    public let config: FeatureConfig
    public internal(set) var stats = FeatureEngineStats()
    var cards: CardTable
    var merchants: MerchantTable
    /// Newest event time over all keys (µs; `.min` before the first), and when idle keys are next swept.
    public internal(set) var maxTime: Int64 = .min
    var nextSweep: Int64 = .min

    public init(config: FeatureConfig = FeatureConfig()) throws(FeatureConfigError) {
        try config.validate()
        self.config = config
        cards = CardTable(days: config.cardDays)
        merchants = MerchantTable(hours: config.merchantHours, days: config.merchantDays)
    }

    public var activeCards: Int { cards.count }
    public var activeMerchants: Int { merchants.count }

    /// Folds `tx` into its card's and merchant's state and returns its features.
    public mutating func process(_ tx: Transaction) -> FeatureVector {
        var f = FeatureVector()
        let t = tx.timestamp.microseconds
        let highRisk = MerchantRisk.isHighRisk(category: tx.merchantCategory)
        let m = merchants.slot(for: tx.merchantID)
        processCard(tx, t: t, highRisk: highRisk, merchantSlot: Int32(m), into: &f)
        processMerchant(m, t: t, into: &f)

        // Attributes of the transaction itself, in the local solar time of where it happened.
        f[.amount] = tx.amount
        let solar = tx.location.map { Int64(($0.longitude / 15 * 3600).rounded()) } ?? 0
        let hour = tx.timestamp.hourOfDay(offsetSeconds: solar)
        let weekday = tx.timestamp.dayOfWeek(offsetSeconds: solar)
        f[.hourOfDay] = Double(hour)
        f[.isWeekend] = weekday >= 5 ? 1 : 0
        f[.isNight] = hour < 6 ? 1 : 0
        f[.isOnline] = tx.channel == .online ? 1 : 0
        f[.isHighRiskMerchant] = highRisk ? 1 : 0

        stats.processed += 1
        if t > maxTime {
            maxTime = t
            if maxTime >= nextSweep { sweep() }
        }
        return f
    }

    mutating func processCard(_ tx: Transaction, t: Int64, highRisk: Bool, merchantSlot: Int32, into f: inout FeatureVector) {
        let s = cards.slot(for: tx.cardID)
        var latest = cards.scalars[s].latest
        if latest != .min, t - latest > FeatureConfig.cardHorizon + config.allowedLateness {
            // Idle past every window, even of an event arriving late after this one: start afresh.
            cards.reset(s)
            latest = .min
        }
        var te = t
        if latest != .min, t < latest {
            if latest - t > config.allowedLateness {
                stats.lateBeyondAllowance += 1
                te = latest
            } else {
                stats.lateWithinAllowance += 1
            }
        }
        let newLatest = max(latest, te)
        expireEvents(s, before: newLatest - config.allowedLateness - FeatureConfig.day)

        // Scan the exact ring backwards from te: windows up to 24 h, previous events.
        let amount = tx.amount
        let small = amount <= config.smallAmount
        var c5 = 1
        var c1h = 1
        var c1d = 1
        var sum1h = amount
        var max1h = amount
        var sum1d = amount
        var risky1h = highRisk ? 1 : 0
        var small1h = small ? 1 : 0
        var previous = cards.scalars[s].olderTime
        var previousLocated: (time: Int64, lat: Double, lon: Double)? =
            cards.scalars[s].olderLocatedTime == .min
            ? nil : (cards.scalars[s].olderLocatedTime, cards.scalars[s].olderLatitude, cards.scalars[s].olderLongitude)
        var insertAt = 0
        cards.events[s].withUnsafeBufferPointer { ring in
            var i = ring.count
            while i > 0, ring[i - 1].time > te { i -= 1 }
            insertAt = i
            if i > 0 { previous = ring[i - 1].time }
            var foundLocated = false
            while i > 0 {
                i -= 1
                let e = ring[i]
                let age = te - e.time
                if !foundLocated, e.flags & CardEvent.located != 0 {
                    previousLocated = (e.time, e.latitude, e.longitude)
                    foundLocated = true
                }
                guard age < FeatureConfig.day else { break }
                c1d += 1
                sum1d += e.amount
                if age < FeatureConfig.hour {
                    c1h += 1
                    sum1h += e.amount
                    if e.amount > max1h { max1h = e.amount }
                    if e.flags & CardEvent.highRisk != 0 { risky1h += 1 }
                    if e.flags & CardEvent.small != 0 { small1h += 1 }
                    if age < 5 * FeatureConfig.minute { c5 += 1 }
                }
            }
            if !foundLocated {
                // Every event left in the ring is older than a day: keep looking for a location.
                while i > 0 {
                    i -= 1
                    if ring[i].flags & CardEvent.located != 0 {
                        previousLocated = (ring[i].time, ring[i].latitude, ring[i].longitude)
                        break
                    }
                }
            }
        }
        f[.txCount5min] = Double(c5)
        f[.txCount1hr] = Double(c1h)
        f[.avgAmount1hr] = sum1h / Double(c1h)
        f[.maxAmount1hr] = max1h
        f[.highRiskMerchantCount1hr] = Double(risky1h)
        f[.smallAmountCount1hr] = Double(small1h)
        f[.cardTxCount1d] = Double(c1d)
        f[.cardAvgAmount1d] = sum1d / Double(c1d)
        f[.timeSinceLastTxS] =
            previous == .min
            ? Double(FeatureConfig.cardHorizon) / 1e6 : Double(min(te - previous, FeatureConfig.cardHorizon)) / 1e6

        var velocity = 0.0
        var fromHome = 0.0
        if let here = tx.location {
            if let p = previousLocated, te - p.time <= FeatureConfig.cardHorizon {
                let km = here.distanceKm(to: GeoPoint(latitude: p.lat, longitude: p.lon))
                velocity = km / (Double(max(te - p.time, FeatureConfig.minute)) / Double(FeatureConfig.hour))
            }
            let n = cards.scalars[s].homeCount
            if n > 0 {
                fromHome = here.distanceKm(
                    to: GeoPoint(latitude: cards.scalars[s].homeLatitude, longitude: cards.scalars[s].homeLongitude))
            }
            let w = Double(min(n + 1, CardTable.homeWeightCap))
            cards.scalars[s].homeLatitude += (here.latitude - cards.scalars[s].homeLatitude) / w
            cards.scalars[s].homeLongitude += (here.longitude - cards.scalars[s].homeLongitude) / w
            cards.scalars[s].homeCount = min(n + 1, CardTable.homeWeightCap)
        }
        f[.geoVelocityKmh] = velocity
        f[.distanceFromHomeKm] = fromHome

        // Day buckets for 7 and 30 days.
        let day = bucket(te, FeatureConfig.day)
        cards.advanceDays(s, to: day)
        let d7 = cards.daySums(s, from: day - 6, to: day)
        let d30 = cards.daySums(s, from: day - 29, to: day)
        f[.cardTxCount7d] = Double(d7.count + 1)
        f[.cardAvgAmount7d] = (d7.sum + amount) / Double(d7.count + 1)
        f[.cardTxCount30d] = Double(d30.count + 1)
        f[.cardAvgAmount30d] = (d30.sum + amount) / Double(d30.count + 1)
        f[.amountVsAvgRatio] = d30.count > 0 ? amount / (d30.sum / Double(d30.count)) : 1
        cards.addToDay(s, day: day, amount: amount)

        f[.isNewMerchant] = cards.useMerchant(s, merchant: merchantSlot, day: day) ? 0 : 1

        var flags: UInt8 = 0
        if tx.location != nil { flags |= CardEvent.located }
        if highRisk { flags |= CardEvent.highRisk }
        if small { flags |= CardEvent.small }
        let event = CardEvent(
            time: te, amount: amount, latitude: tx.location?.latitude ?? 0, longitude: tx.location?.longitude ?? 0, flags: flags)
        if insertAt == cards.events[s].count {
            cards.events[s].append(event)
        } else {
            cards.events[s].insert(event, at: insertAt)
        }
        cards.scalars[s].latest = newLatest
    }

    /// Drops ring events at or before `cutoff`, remembering the newest of them.
    mutating func expireEvents(_ s: Int, before cutoff: Int64) {
        var n = 0
        let ring = cards.events[s]
        while n < ring.count, ring[n].time <= cutoff {
            let e = ring[n]
            cards.scalars[s].olderTime = e.time
            if e.flags & CardEvent.located != 0 {
                cards.scalars[s].olderLocatedTime = e.time
                cards.scalars[s].olderLatitude = e.latitude
                cards.scalars[s].olderLongitude = e.longitude
            }
            n += 1
        }
        guard n > 0 else { return }
        cards.events[s].removeFirst(n)
        // A burst leaves a large buffer behind; give most of it back once the card is quiet again.
        let left = cards.events[s].count
        if cards.events[s].capacity >= 16 && left <= cards.events[s].capacity / 8 {
            var smaller: [CardEvent] = []
            smaller.reserveCapacity(max(4, left * 2))
            smaller.append(contentsOf: cards.events[s])
            cards.events[s] = smaller
        }
    }

    mutating func processMerchant(_ m: Int, t: Int64, into f: inout FeatureVector) {
        var latest = merchants.scalars[m].latest
        if latest != .min, t - latest > config.merchantHorizon + config.allowedLateness {
            merchants.reset(m)
            latest = .min
        }
        var te = t
        if latest != .min, latest - t > config.allowedLateness { te = latest }
        merchants.add(m, at: te)
        let hour = bucket(te, FeatureConfig.hour)
        let day = bucket(te, FeatureConfig.day)
        f[.merchantTxCount1d] = Double(merchants.sums(m, window: 0, from: hour - 23, to: hour).count)
        f[.merchantTxCount7d] = Double(merchants.sums(m, window: 1, from: day - 6, to: day).count)
        f[.merchantTxCount30d] = Double(merchants.sums(m, window: 2, from: day - 29, to: day).count)

        let known = te - config.labelDelay
        let kh = bucket(known, FeatureConfig.hour)
        let kd = bucket(known, FeatureConfig.day)
        func rate(_ s: (count: UInt32, fraud: UInt32)) -> Double { s.count == 0 ? 0 : Double(s.fraud) / Double(s.count) }
        f[.merchantFraudRate1d] = rate(merchants.sums(m, window: 3, from: kh - 24, to: kh - 1))
        f[.merchantFraudRate7d] = rate(merchants.sums(m, window: 4, from: kd - 7, to: kd - 1))
        f[.merchantFraudRate30d] = rate(merchants.sums(m, window: 5, from: kd - 30, to: kd - 1))
    }

    /// Makes a label known from now on. Legitimate verdicts change nothing (the
    /// rates' denominators already count every transaction); labels for merchants
    /// the engine no longer holds are ignored.
    public mutating func apply(_ label: LabelFact) {
        guard label.isFraud, let m = merchants.index.slots[label.merchantID] else { return }
        merchants.addFraud(Int(m), at: label.transactionTime.microseconds)
        stats.labelsApplied += 1
    }

    /// Evicts keys idle longer than their TTL; runs once an hour of event time. Twice the
    /// allowed lateness is added so that an event up to the lateness behind the newest one
    /// overall still finds every state it can reach (the reset rule itself allows one lateness).
    mutating func sweep() {
        nextSweep = maxTime + FeatureConfig.hour
        let margin = 2 * config.allowedLateness
        for s in 0..<cards.index.keys.count
        where !cards.index.keys[s].isEmpty && cards.scalars[s].latest < maxTime - config.idleTTL - margin {
            cards.evict(s)
            stats.evictedCards += 1
        }
        for m in 0..<merchants.index.keys.count
        where !merchants.index.keys[m].isEmpty && merchants.scalars[m].latest < maxTime - config.merchantTTL - margin {
            merchants.evict(m)
            stats.evictedMerchants += 1
        }
    }
}

extension FeatureEngine {
    /// Bytes of state held for cards and for merchants, counted from the buffers'
    /// sizes (keys, table slots, rings, event buffers); allocator slack is not included.
    public var stateBytes: (cards: Int, merchants: Int) {
        func keyBytes(_ k: String) -> Int { k.utf8.count > 15 ? 32 + k.utf8.count : 0 }
        let dictionaryEntry = (MemoryLayout<String>.stride + MemoryLayout<Int32>.stride) * 4 / 3
        var c = cards.index.keys.count * (MemoryLayout<String>.stride + dictionaryEntry + MemoryLayout<CardScalars>.stride)
        c += cards.index.keys.count * cards.days * (MemoryLayout<UInt16>.stride + MemoryLayout<Double>.stride)
        c += cards.index.keys.count * CardTable.recentMerchants * 2 * MemoryLayout<Int32>.stride
        for (k, e) in zip(cards.index.keys, cards.events) {
            c += keyBytes(k) + MemoryLayout<[CardEvent]>.stride
            if e.capacity > 0 { c += 32 + e.capacity * MemoryLayout<CardEvent>.stride }
        }
        var m =
            merchants.index.keys.count * (MemoryLayout<String>.stride + dictionaryEntry + MemoryLayout<MerchantScalars>.stride)
        m += merchants.index.keys.count * (merchants.hours.width + merchants.days.width) * 2 * MemoryLayout<UInt32>.stride
        for k in merchants.index.keys { m += keyBytes(k) }
        return (c, m)
    }
}
