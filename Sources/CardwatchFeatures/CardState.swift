import CardwatchCore

/// One of a card's recent transactions, kept exactly for the windows up to 24 hours.
struct CardEvent: Sendable {
    static let located: UInt8 = 1
    static let highRisk: UInt8 = 2
    static let small: UInt8 = 4

    var time: Int64
    var amount: Double
    var latitude: Double
    var longitude: Double
    var flags: UInt8
}

/// A card's scalar state. Plain old data, so a snapshot can copy it as bytes.
struct CardScalars: Sendable {
    /// Newest event time seen: the card's watermark.
    var latest: Int64 = .min
    /// Newest event that has left the exact ring (for "previous transaction" lookups).
    var olderTime: Int64 = .min
    var olderLocatedTime: Int64 = .min
    var olderLatitude: Double = 0
    var olderLongitude: Double = 0
    /// The usual location: a running mean with weight 1/n, n capped at `homeWeightCap`.
    var homeLatitude: Double = 0
    var homeLongitude: Double = 0
    var homeCount: Int32 = 0
    /// Day bucket of the newest slot of the day ring.
    var latestDay: Int32 = .min
}

/// Every card's state in flat arrays indexed by slot: scalars, the exact event ring,
/// the day ring (counts and sums) and the recently used merchants.
struct CardTable: Sendable {
    static let recentMerchants = 16
    static let homeWeightCap: Int32 = 20

    let days: Int
    var index = KeySlots()
    var scalars: [CardScalars] = []
    var events: [[CardEvent]] = []
    /// Transactions per day (saturating at 65,535: beyond that a card is a bot and the count is moot).
    var dayCount: [UInt16] = []
    var daySum: [Double] = []
    /// `merchants[slot * recentMerchants + k]`, most recent first; `merchantDay` is each one's latest use.
    var merchants: [Int32] = []
    var merchantDay: [Int32] = []

    init(days: Int) { self.days = days }

    var count: Int { index.count }

    mutating func slot(for key: String) -> Int {
        let (s, appended) = index.slot(for: key)
        if appended {
            scalars.append(CardScalars())
            events.append([])
            dayCount.append(contentsOf: repeatElement(0, count: days))
            daySum.append(contentsOf: repeatElement(0, count: days))
            merchants.append(contentsOf: repeatElement(-1, count: Self.recentMerchants))
            merchantDay.append(contentsOf: repeatElement(0, count: Self.recentMerchants))
        }
        return s
    }

    /// Forgets a card's history (after the horizon, or on eviction), keeping the slot.
    mutating func reset(_ s: Int) {
        scalars[s] = CardScalars()
        events[s].removeAll(keepingCapacity: false)
        for i in s * days..<(s + 1) * days {
            dayCount[i] = 0
            daySum[i] = 0
        }
        for i in s * Self.recentMerchants..<(s + 1) * Self.recentMerchants { merchants[i] = -1 }
    }

    mutating func evict(_ s: Int) {
        reset(s)
        index.release(s)
    }

    /// Moves the day ring forward to `day`, clearing the slots it reuses.
    mutating func advanceDays(_ s: Int, to day: Int64) {
        let latest = Int64(scalars[s].latestDay)
        guard day > latest else { return }
        let base = s * days
        let first = latest == Int64(Int32.min) ? day - Int64(days) + 1 : max(latest + 1, day - Int64(days) + 1)
        for b in first...day {
            let i = base + Int(b.floorMod(Int64(days)))
            dayCount[i] = 0
            daySum[i] = 0
        }
        scalars[s].latestDay = Int32(day)
    }

    /// Count and amount sum over day buckets [from, to], limited to what the ring holds.
    func daySums(_ s: Int, from: Int64, to: Int64) -> (count: UInt32, sum: Double) {
        let latest = Int64(scalars[s].latestDay)
        let lo = max(from, latest - Int64(days) + 1)
        let hi = min(to, latest)
        guard lo <= hi else { return (0, 0) }
        var count: UInt32 = 0
        var sum = 0.0
        let base = s * days
        for b in lo...hi {
            let i = base + Int(b.floorMod(Int64(days)))
            count &+= UInt32(dayCount[i])
            sum += daySum[i]
        }
        return (count, sum)
    }

    mutating func addToDay(_ s: Int, day: Int64, amount: Double) {
        let latest = Int64(scalars[s].latestDay)
        guard day > latest - Int64(days) else { return }
        let i = s * days + Int(day.floorMod(Int64(days)))
        if dayCount[i] < .max { dayCount[i] += 1 }
        daySum[i] += amount
    }

    /// Whether `merchant` was used recently (among the last distinct ones, on or after `sinceDay`),
    /// then records this use at the front.
    mutating func useMerchant(_ s: Int, merchant: Int32, day: Int64) -> Bool {
        let base = s * Self.recentMerchants
        var found = -1
        for k in 0..<Self.recentMerchants where merchants[base + k] == merchant {
            found = k
            break
        }
        let seen = found >= 0 && Int64(merchantDay[base + found]) >= day - 29
        let lastDay = found >= 0 ? max(Int64(merchantDay[base + found]), day) : day
        let shiftFrom = found >= 0 ? found : Self.recentMerchants - 1
        var k = shiftFrom
        while k > 0 {
            merchants[base + k] = merchants[base + k - 1]
            merchantDay[base + k] = merchantDay[base + k - 1]
            k -= 1
        }
        merchants[base] = merchant
        merchantDay[base] = Int32(clamping: lastDay)
        return seen
    }
}

extension Int64 {
    @inline(__always) func floorMod(_ m: Int64) -> Int64 {
        let r = self % m
        return r < 0 ? r + m : r
    }
}
