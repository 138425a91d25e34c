import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import Testing

// Random transaction streams for the property tests, the comparison of engine and reference,
// and a shrinker that cuts a failing stream down to a few steps.

/// One input of the engine: a transaction to process or a label to apply.
enum Step: CustomStringConvertible {
    case tx(Transaction)
    case label(LabelFact)

    var description: String {
        switch self {
        case .tx(let t):
            let loc = t.location.map { "(\($0.latitude), \($0.longitude))" } ?? "nil"
            return "tx \(t.transactionID) card=\(t.cardID) merchant=\(t.merchantID) amount=\(t.amount) "
                + "time=\(t.timestamp.rfc3339) [\(t.timestamp.microseconds)] loc=\(loc) "
                + "cat=\(t.merchantCategory ?? "nil") channel=\(t.channel?.rawValue ?? "nil")"
        case .label(let l):
            return "label merchant=\(l.merchantID) time=\(l.transactionTime.rfc3339) fraud=\(l.isFraud)"
        }
    }
}

struct Scenario {
    var config: FeatureConfig
    var steps: [Step]
}

/// Points spread over the globe (including near the antimeridian and the poles).
let places: [GeoPoint] = [
    GeoPoint(latitude: 40.7128, longitude: -74.0060), GeoPoint(latitude: 51.5074, longitude: -0.1278),
    GeoPoint(latitude: 35.6762, longitude: 139.6503), GeoPoint(latitude: -33.8688, longitude: 151.2093),
    GeoPoint(latitude: -23.5505, longitude: -46.6333), GeoPoint(latitude: 19.0760, longitude: 72.8777),
    GeoPoint(latitude: 64.1466, longitude: -21.9426), GeoPoint(latitude: -17.7134, longitude: 178.0650),
    GeoPoint(latitude: 71.2906, longitude: -156.7886), GeoPoint(latitude: 0.0, longitude: 0.0),
]

let categories: [String?] = [
    nil, "5411", "5812", "5999", "7995", "4829", "6051", "5947", "gambling", "Gift Cards", "grocery",
]

enum Streams {
    /// A random stream. Arrivals are shuffled locally so that no event is more than the allowed
    /// lateness behind any event that arrived before it, unless `beyondLateness` is set, in which
    /// case a few events are held back much longer.
    static func make(seed: UInt64, beyondLateness: Bool = false) -> Scenario {
        var rng = SeededRandom(seed: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

        var config = FeatureConfig()
        config.allowedLateness = pick([0, 5 * Micros.minute, 5 * Micros.minute, 5 * Micros.minute, Micros.hour, Micros.day])
        config.labelDelay = pick([7 * Micros.day, 7 * Micros.day, 0, Micros.hour, Micros.day, 2 * Micros.day])
        config.idleTTL = pick([30 * Micros.day, 30 * Micros.day, 45 * Micros.day, 3650 * Micros.day])
        // Eviction promises nothing for events later than the lateness behind the newest event
        // overall (Feature's documentation), and the reference does not evict: keep everything.
        if beyondLateness { config.idleTTL = 3650 * Micros.day }
        config.smallAmount = pick([2.0, 2.0, 2.0, 0, 10])

        let cardCount = pick([1, 2, 3, 10, 30, 100, 400])
        let merchantCount = pick([1, 2, 4, 12, 40, 200])
        // The reference is quadratic in a key's history: long streams only with many keys.
        let eventCount = min(
            pick([200, 300, 500, 800, 1200, 2000, 3000]), min(cardCount, merchantCount) <= 3 ? 900 : 3000)
        // Gap mixture weights: same instant, ms, seconds, minutes, hours, days, about 30 days.
        let regimes: [[Double]] = [
            [1, 30, 30, 20, 5, 1, 0],  // dense
            [1, 10, 15, 25, 25, 15, 1],  // mixed
            [0, 2, 3, 10, 30, 40, 3],  // sparse: spans weeks to months
            [0, 5, 5, 10, 10, 10, 6],  // bursts and long idles
        ]
        let weights = pick(regimes)
        let stick = pick([0.0, 0.3, 0.7, 0.9])  // chance that the next event is the same card's
        let locatedShare = pick([1.0, 0.8, 0.5, 0.0])
        let bases: [Int64] = [
            1_704_067_200 * Micros.second,  // 2024-01-01
            1_719_792_000 * Micros.second,  // 2024-07-01
            -20 * Micros.day,  // before 1970: negative times
        ]
        var time = pick(bases) + Int64.random(in: 0..<Micros.day, using: &rng)

        let cardHome = (0..<cardCount).map { _ in pick(places) }
        let merchantCategory = (0..<merchantCount).map { _ in pick(categories) }
        func skewed(_ n: Int) -> Int {  // popular keys first: roughly Zipf-like
            let u = Double.random(in: 0..<1, using: &rng)
            return min(n - 1, Int(Double(n) * u * u * u))
        }

        var txs: [Transaction] = []
        var card = 0
        for i in 0..<eventCount {
            var r = Double.random(in: 0..<weights.reduce(0, +), using: &rng)
            var kind = 0
            while r >= weights[kind] {
                r -= weights[kind]
                kind += 1
            }
            let gap: Int64
            switch kind {
            case 0: gap = 0
            case 1: gap = Int64.random(in: 1...999_999, using: &rng)
            case 2: gap = Int64.random(in: Micros.second...120 * Micros.second, using: &rng)
            case 3: gap = Int64.random(in: 2 * Micros.minute...30 * Micros.minute, using: &rng)
            case 4: gap = Int64.random(in: 30 * Micros.minute...6 * Micros.hour, using: &rng)
            case 5: gap = Int64.random(in: 6 * Micros.hour...3 * Micros.day, using: &rng)
            default:
                gap =
                    chance(0.5)
                    ? 30 * Micros.day + Int64.random(in: -10 * Micros.minute...10 * Micros.minute, using: &rng)
                    : Int64.random(in: 20 * Micros.day...40 * Micros.day, using: &rng)
            }
            time += gap
            if !(i > 0 && chance(stick)) { card = skewed(cardCount) }
            let merchant = chance(0.5) ? (card * 7 + Int.random(in: 0..<3, using: &rng)) % merchantCount : skewed(merchantCount)

            let amount: Double
            switch Int.random(in: 0..<20, using: &rng) {
            case 0..<4: amount = Double(Int.random(in: 1...200, using: &rng)) / 100
            case 4: amount = pick([0.01, 2.0, config.smallAmount == 0 ? 0.01 : config.smallAmount, 2.01])
            case 5: amount = Double.random(in: 1e6...1e9, using: &rng)
            default: amount = (Double.random(in: 2...100_000, using: &rng) * 100).rounded() / 100
            }
            var location: GeoPoint? = nil
            if chance(locatedShare) {
                let centre = chance(0.8) ? cardHome[card] : pick(places)
                location = GeoPoint(
                    latitude: max(-90, min(90, centre.latitude + Double.random(in: -0.5...0.5, using: &rng))),
                    longitude: max(-180, min(180, centre.longitude + Double.random(in: -0.5...0.5, using: &rng))))
            }
            txs.append(
                Transaction(
                    transactionID: "t\(i)", cardID: "c\(card)", amount: amount, timestamp: Timestamp(microseconds: time),
                    merchantID: "m\(merchant)", merchantCategory: chance(0.9) ? merchantCategory[merchant] : pick(categories),
                    location: location, channel: pick([nil, .pos, .online, .atm])))
        }

        // Arrival order: each event is delayed by up to the allowed lateness, so none arrives more
        // than that behind anything before it; optionally a few are held back far longer.
        let lateness = config.allowedLateness
        let shuffled = chance(0.8)
        var keyed: [(key: Int64, index: Int)] = []
        for (i, tx) in txs.enumerated() {
            var delay = shuffled ? Int64.random(in: 0...lateness, using: &rng) : 0
            if beyondLateness && chance(0.03) {
                delay = lateness + Int64.random(in: 1...(3 * lateness + 2 * Micros.hour), using: &rng)
            }
            keyed.append((tx.timestamp.microseconds + delay, i))
        }
        keyed.sort { ($0.key, $0.index) < ($1.key, $1.index) }

        // Labels for already processed transactions, interleaved at random.
        let labelRate = pick([0.0, 0.05, 0.2, 0.5])
        let fraudShare = pick([0.2, 0.5, 1.0])
        var steps: [Step] = []
        var processed: [Int] = []
        for (_, index) in keyed {
            steps.append(.tx(txs[index]))
            processed.append(index)
            while chance(labelRate) && !processed.isEmpty {
                // Prefer older transactions, as chargebacks come late; label each at most once.
                let j = chance(0.5) ? Int.random(in: 0..<processed.count, using: &rng) : skewed(processed.count)
                let labelled = txs[processed.remove(at: j)]
                steps.append(
                    .label(
                        LabelFact(
                            merchantID: labelled.merchantID, transactionTime: labelled.timestamp, isFraud: chance(fraudShare))))
            }
        }
        return Scenario(config: config, steps: steps)
    }
}

// MARK: - Comparison

/// Features whose value is a floating-point mean, ratio or distance: the engine may sum in
/// another order, so they are compared to 1e-9 relative. Everything else must match exactly.
let approximateFeatures: Set<Feature> = [
    .avgAmount1hr, .geoVelocityKmh, .amountVsAvgRatio, .distanceFromHomeKm, .cardAvgAmount1d, .cardAvgAmount7d,
    .cardAvgAmount30d,
]

func featureMatches(_ f: Feature, _ want: Double, _ got: Double) -> Bool {
    if want == got { return true }
    guard approximateFeatures.contains(f), want.isFinite, got.isFinite else { return false }
    return abs(want - got) <= 1e-9 * max(abs(want), abs(got)) || abs(want - got) <= 1e-9
}

/// The first disagreement of a run.
struct Mismatch: CustomStringConvertible {
    var step: Int
    var feature: Feature
    var want: Double
    var got: Double
    var description: String { "step \(step): \(feature.name) expected \(want), engine \(got)" }
}

/// Runs `scenario` through the engine and the reference; returns every disagreement (at most
/// `limit`), the first of each feature first, and the stats of both.
func compare(_ scenario: Scenario, limit: Int = 40) -> [Mismatch] {
    var engine = try! FeatureEngine(config: scenario.config)
    var reference = ReferenceEngine(config: scenario.config)
    var mismatches: [Mismatch] = []
    var seen: Set<Feature> = []
    for (i, step) in scenario.steps.enumerated() {
        switch step {
        case .tx(let tx):
            let got = engine.process(tx)
            let want = reference.process(tx)
            for f in Feature.allCases where !featureMatches(f, want[f], got[f]) && !seen.contains(f) {
                seen.insert(f)
                mismatches.append(Mismatch(step: i, feature: f, want: want[f], got: got[f]))
            }
        case .label(let l):
            engine.apply(l)
            reference.apply(l)
        }
        if mismatches.count >= limit { break }
    }
    return mismatches
}

/// The features that disagree on the last transaction of `steps`.
func disagreementsAtEnd(_ scenario: Scenario) -> Set<Feature> {
    var engine = try! FeatureEngine(config: scenario.config)
    var reference = ReferenceEngine(config: scenario.config)
    var last: Set<Feature> = []
    for step in scenario.steps {
        switch step {
        case .tx(let tx):
            let got = engine.process(tx)
            let want = reference.process(tx)
            last = Set(Feature.allCases.filter { !featureMatches($0, want[$0], got[$0]) })
        case .label(let l):
            engine.apply(l)
            reference.apply(l)
        }
    }
    return last
}

/// Cuts a stream that disagrees on `feature` down to a locally minimal one that still disagrees
/// on that feature at its last transaction (greedy delta debugging over its steps).
func shrink(_ scenario: Scenario, step: Int, feature: Feature) -> Scenario {
    var current = Scenario(config: scenario.config, steps: Array(scenario.steps[...step]))
    func fails(_ steps: [Step]) -> Bool {
        guard case .tx = steps.last else { return false }
        return disagreementsAtEnd(Scenario(config: current.config, steps: steps)).contains(feature)
    }
    var chunk = max(1, current.steps.count / 2)
    while chunk >= 1 {
        var start = 0
        var removedAny = false
        while start < current.steps.count - 1 {
            var candidate = current.steps
            candidate.removeSubrange(start..<min(start + chunk, candidate.count - 1))
            if candidate.count < current.steps.count && fails(candidate) {
                current.steps = candidate
                removedAny = true
            } else {
                start += chunk
            }
        }
        if !removedAny || chunk > 1 { chunk /= 2 }
    }
    return current
}
