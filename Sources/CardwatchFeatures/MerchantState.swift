/// A merchant's scalar state (plain old data).
struct MerchantScalars: Sendable {
    var latest: Int64 = .min
    var latestHour: Int64 = .min
    var latestDay: Int64 = .min
}

/// A ring of time buckets holding an event count and a known-fraud count each.
/// `slots[s]` owns `width` consecutive entries.
struct BucketRing: Sendable {
    let width: Int
    var count: [UInt32] = []
    var fraud: [UInt32] = []

    init(width: Int) { self.width = width }

    mutating func appendSlot() {
        count.append(contentsOf: repeatElement(0, count: width))
        fraud.append(contentsOf: repeatElement(0, count: width))
    }

    mutating func clear(_ s: Int) {
        for i in s * width..<(s + 1) * width {
            count[i] = 0
            fraud[i] = 0
        }
    }

    @inline(__always) func index(_ s: Int, _ b: Int64) -> Int { s * width + Int(b.floorMod(Int64(width))) }

    /// Moves the ring forward so that `b` is its newest bucket; returns the new newest bucket.
    mutating func advance(_ s: Int, from latest: Int64, to b: Int64) -> Int64 {
        guard b > latest else { return latest }
        let first = latest == .min ? b - Int64(width) + 1 : max(latest + 1, b - Int64(width) + 1)
        for x in first...b {
            let i = index(s, x)
            count[i] = 0
            fraud[i] = 0
        }
        return b
    }

    /// Whether bucket `b` is still held when the newest is `latest`.
    @inline(__always) func holds(_ b: Int64, latest: Int64) -> Bool { latest != .min && b <= latest && b > latest - Int64(width) }

    func sums(_ s: Int, from: Int64, to: Int64, latest: Int64) -> (count: UInt32, fraud: UInt32) {
        guard latest != .min else { return (0, 0) }
        let lo = max(from, latest - Int64(width) + 1)
        let hi = min(to, latest)
        guard lo <= hi else { return (0, 0) }
        var c: UInt32 = 0
        var f: UInt32 = 0
        for b in lo...hi {
            let i = index(s, b)
            c &+= count[i]
            f &+= fraud[i]
        }
        return (c, f)
    }
}

/// A window's sums remembered between a merchant's transactions: most follow each
/// other within the same hour, so the rings are summed only when a window moves.
struct CachedWindow: Sendable {
    var from: Int64 = .max
    var to: Int64 = .min
    var count: UInt32 = 0
    var fraud: UInt32 = 0
}

extension CachedWindow {
    @inline(__always) func covers(_ b: Int64) -> Bool { from <= b && b <= to }
}

/// Every merchant's state: hourly and daily rings of volume and known fraud.
struct MerchantTable: Sendable {
    /// The six windows: volume 1d (hours), 7d and 30d (days); fraud 1d (hours), 7d and 30d (days).
    static let windows = 6
    static let hourWindows = [0, 3]
    static let dayWindows = [1, 2, 4, 5]

    var index = KeySlots()
    var scalars: [MerchantScalars] = []
    var hours: BucketRing
    var days: BucketRing
    var cache: [CachedWindow] = []

    init(hours: Int, days: Int) {
        self.hours = BucketRing(width: hours)
        self.days = BucketRing(width: days)
    }

    var count: Int { index.count }

    mutating func slot(for key: String) -> Int {
        let (s, appended) = index.slot(for: key)
        if appended {
            scalars.append(MerchantScalars())
            cache.append(contentsOf: repeatElement(CachedWindow(), count: Self.windows))
            hours.appendSlot()
            days.appendSlot()
        }
        return s
    }

    mutating func reset(_ s: Int) {
        scalars[s] = MerchantScalars()
        for w in 0..<Self.windows { cache[s * Self.windows + w] = CachedWindow() }
        hours.clear(s)
        days.clear(s)
    }

    mutating func evict(_ s: Int) {
        reset(s)
        index.release(s)
    }

    /// Counts one event at time `t` (already clamped to the merchant's lateness).
    mutating func add(_ s: Int, at t: Int64) {
        let h = bucket(t, FeatureConfig.hour)
        let d = bucket(t, FeatureConfig.day)
        scalars[s].latestHour = hours.advance(s, from: scalars[s].latestHour, to: h)
        scalars[s].latestDay = days.advance(s, from: scalars[s].latestDay, to: d)
        if hours.holds(h, latest: scalars[s].latestHour) {
            hours.count[hours.index(s, h)] &+= 1
            for w in Self.hourWindows where cache[s * Self.windows + w].covers(h) { cache[s * Self.windows + w].count &+= 1 }
        }
        if days.holds(d, latest: scalars[s].latestDay) {
            days.count[days.index(s, d)] &+= 1
            for w in Self.dayWindows where cache[s * Self.windows + w].covers(d) { cache[s * Self.windows + w].count &+= 1 }
        }
        scalars[s].latest = max(scalars[s].latest, t)
    }

    /// Count and fraud over buckets [from, to] of window `w`, from the cache when it has not moved.
    mutating func sums(_ s: Int, window w: Int, from: Int64, to: Int64) -> (count: UInt32, fraud: UInt32) {
        let i = s * Self.windows + w
        if cache[i].from == from && cache[i].to == to { return (cache[i].count, cache[i].fraud) }
        let isHours = Self.hourWindows.contains(w)
        let r =
            isHours
            ? hours.sums(s, from: from, to: to, latest: scalars[s].latestHour)
            : days.sums(s, from: from, to: to, latest: scalars[s].latestDay)
        cache[i] = CachedWindow(from: from, to: to, count: r.count, fraud: r.fraud)
        return r
    }

    /// Records a known fraud on a transaction of this merchant at time `t`.
    mutating func addFraud(_ s: Int, at t: Int64) {
        let h = bucket(t, FeatureConfig.hour)
        let d = bucket(t, FeatureConfig.day)
        if hours.holds(h, latest: scalars[s].latestHour) {
            hours.fraud[hours.index(s, h)] &+= 1
            for w in Self.hourWindows where cache[s * Self.windows + w].covers(h) { cache[s * Self.windows + w].fraud &+= 1 }
        }
        if days.holds(d, latest: scalars[s].latestDay) {
            days.fraud[days.index(s, d)] &+= 1
            for w in Self.dayWindows where cache[s * Self.windows + w].covers(d) { cache[s * Self.windows + w].fraud &+= 1 }
        }
    }
}
