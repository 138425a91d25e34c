import CardwatchCore
import CardwatchGenerator
import Testing

/// Legitimate behaviour overlaps every fraud pattern: for each pattern, the best rule
/// "feature ≥ t" or "feature ≤ t" on any single feature stays clearly below perfect.
@Suite struct RealismTests {
    struct Rule: CustomStringConvertible {
        var feature: String
        var threshold: Double
        var above: Bool
        var precision: Double
        var recall: Double
        var f1: Double { precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0 }
        var description: String {
            "\(feature) \(above ? "≥" : "≤") \(threshold): precision \(rounded(precision)), recall \(rounded(recall)), F1 \(rounded(f1))"
        }
        func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
    }

    /// Simple per-transaction signals, computed by brute force from each card's history.
    static func features(_ txs: [Transaction], _ world: World) -> [String: [Double]] {
        let highRisk = MerchantRisk.highRiskMCCs
        var last: [String: Transaction] = [:]
        var recent: [String: [Timestamp]] = [:]
        var f: [String: [Double]] = [:]
        for t in txs {
            let card = world.cards[world.cardIndex(of: t.cardID)!]
            let prev = last[t.cardID]
            let hours = prev.map { t.timestamp.seconds(since: $0.timestamp) / 3600 } ?? 0
            let km = prev.map { $0.location!.distanceKm(to: t.location!) } ?? 0
            let window = (recent[t.cardID] ?? []).filter { t.timestamp.seconds(since: $0) <= 600 } + [t.timestamp]
            recent[t.cardID] = window
            f["amount", default: []].append(t.amount)
            f["amount_over_limit", default: []].append(t.amount / card.creditLimit)
            f["speed_kmh", default: []].append(prev == nil ? 0 : (hours > 0 ? km / hours : (km > 0 ? 1e9 : 0)))
            f["seconds_since_last", default: []].append(prev == nil ? 1e9 : hours * 3600)
            f["count_10min", default: []].append(Double(window.count))
            f["km_from_home", default: []].append(card.home.distanceKm(to: t.location!))
            f["high_risk_merchant", default: []].append(highRisk.contains(t.merchantCategory!) ? 1 : 0)
            f["online", default: []].append(t.channel == .online ? 1 : 0)
            last[t.cardID] = t
        }
        return f
    }

    /// The best-F1 threshold rule on one feature, by a sweep over the sorted values.
    static func bestRule(_ name: String, _ values: [Double], _ positive: [Bool]) -> Rule {
        let totalPositive = Double(positive.filter { $0 }.count)
        var best = Rule(feature: name, threshold: 0, above: true, precision: 0, recall: 0)
        for above in [true, false] {
            let order = values.indices.sorted { above ? values[$0] > values[$1] : values[$0] < values[$1] }
            var tp = 0.0
            var taken = 0.0
            var k = 0
            while k < order.count {
                let v = values[order[k]]
                while k < order.count, values[order[k]] == v {  // ties go together
                    if positive[order[k]] { tp += 1 }
                    taken += 1
                    k += 1
                }
                let rule = Rule(feature: name, threshold: v, above: above, precision: tp / taken, recall: tp / totalPositive)
                if rule.f1 > best.f1 { best = rule }
            }
        }
        return best
    }

    @Test func noSingleFeatureSeparatesAnyPatternPerfectly() {
        let txs = Array(Fixtures.million.transactions.prefix(300_000))
        let features = Self.features(txs, Fixtures.million.generator.world)
        for pattern in FraudPattern.allCases {
            // Legitimate transactions against this pattern's; other patterns are left out.
            let keep = txs.indices.filter { txs[$0].isFraud == false || txs[$0].fraudPattern == pattern.rawValue }
            let positive = keep.map { txs[$0].fraudPattern == pattern.rawValue }
            let best = features.keys.sorted().map { name in
                Self.bestRule(name, keep.map { features[name]![$0] }, positive)
            }.max { $0.f1 < $1.f1 }!
            print("best single-feature rule for \(pattern.rawValue): \(best)")
            #expect(best.f1 < 0.95, "\(pattern.rawValue) is separated almost perfectly by \(best)")
            #expect(best.f1 > 0.2, "\(pattern.rawValue) should still be detectable: \(best)")
        }
    }

    @Test func bestRuleSweepMatchesANaiveSearch() {
        // The sweep against trying every threshold directly, on small random data.
        var rng = SeededRandom(seed: 9)
        for _ in 0..<50 {
            let n = rng.int(5...40)
            let values = (0..<n).map { _ in Double(rng.int(0...8)) }
            let positive = (0..<n).map { _ in rng.chance(0.3) }
            guard positive.contains(true) else { continue }
            let fast = Self.bestRule("x", values, positive)
            var naive = 0.0
            for t in Set(values) {
                for above in [true, false] {
                    let hit = values.indices.filter { above ? values[$0] >= t : values[$0] <= t }
                    let tp = Double(hit.filter { positive[$0] }.count)
                    let p = tp / Double(hit.count)
                    let r = tp / Double(positive.filter { $0 }.count)
                    if p + r > 0 { naive = max(naive, 2 * p * r / (p + r)) }
                }
            }
            #expect(abs(fast.f1 - naive) < 1e-9)
        }
    }
}
