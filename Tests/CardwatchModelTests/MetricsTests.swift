import CardwatchModel
import Testing

// Every metric against a deliberately naive reference on random inputs with many ties,
// then small fixtures computed by hand, then edge cases.

/// One random test window: rows over a few days and cards, scores often tied.
private struct Case: CustomStringConvertible {
    var scores: [Double] = []
    var labels: [Bool] = []
    var patterns: [String?] = []
    var days: [Int] = []
    var cards: [String] = []
    var seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        var rng = SplitMix(seed: seed)
        let n = Int.random(in: 0...60, using: &rng)
        // Half the cases draw scores from a handful of values: ties everywhere.
        let palette = (0..<Int.random(in: 1...5, using: &rng)).map { _ in Double(Int.random(in: 0...10, using: &rng)) / 10 }
        let tied = Bool.random(using: &rng)
        let fraudRate = [0, 0.05, 0.3, 0.5, 1][Int.random(in: 0...4, using: &rng)]
        for _ in 0..<n {
            scores.append(tied ? palette.randomElement(using: &rng)! : Double.random(in: 0..<1, using: &rng))
            let fraud = Double.random(in: 0..<1, using: &rng) < fraudRate
            labels.append(fraud)
            patterns.append(fraud ? ["geo_jump", "velocity_burst", nil].randomElement(using: &rng)! : nil)
            days.append(Int.random(in: 1...4, using: &rng))
            cards.append("c\(Int.random(in: 0..<8, using: &rng))")
        }
    }

    var description: String { "seed \(seed): scores \(scores) labels \(labels.map { $0 ? 1 : 0 })" }
}

private let cases = (0..<600).map { Case(seed: 0xCA7D_0000 &+ UInt64($0)) }

/// Equal within rounding, or both NaN.
private func same(_ a: Double, _ b: Double, tolerance: Double = 1e-12) -> Bool {
    (a.isNaN && b.isNaN) || abs(a - b) <= tolerance
}

// MARK: Naive references

private enum Naive {
    /// Every positive–negative pair: 1 when the positive scores higher, 1/2 on a tie.
    static func auc(_ s: [Double], _ y: [Bool]) -> Double {
        var wins = 0.0
        var pairs = 0.0
        for i in s.indices where y[i] {
            for j in s.indices where !y[j] {
                pairs += 1
                wins += s[i] > s[j] ? 1 : (s[i] == s[j] ? 0.5 : 0)
            }
        }
        return pairs > 0 ? wins / pairs : .nan
    }

    /// Counts at threshold t by a full scan.
    static func counts(_ s: [Double], _ y: [Bool], _ t: Double) -> (tp: Int, fp: Int, p: Int, n: Int) {
        var r = (tp: 0, fp: 0, p: 0, n: 0)
        for i in s.indices {
            if y[i] { r.p += 1 } else { r.n += 1 }
            if s[i] >= t { if y[i] { r.tp += 1 } else { r.fp += 1 } }
        }
        return r
    }

    /// Σ (Rₙ − Rₙ₋₁) Pₙ, every threshold recounted from scratch.
    static func ap(_ s: [Double], _ y: [Bool]) -> Double {
        guard y.contains(true) else { return .nan }
        var ap = 0.0
        var previousRecall = 0.0
        for t in Set(s).sorted(by: >) {
            let c = counts(s, y, t)
            let recall = Double(c.tp) / Double(c.p)
            ap += (recall - previousRecall) * Double(c.tp) / Double(c.tp + c.fp)
            previousRecall = recall
        }
        return ap
    }

    static func recallAtFPR(_ s: [Double], _ y: [Bool], _ maxFPR: Double) -> Double {
        guard y.contains(true), y.contains(false) else { return .nan }
        var best = 0.0
        for t in Set(s).union([.infinity]) {
            let c = counts(s, y, t)
            if Double(c.fp) / Double(c.n) <= maxFPR { best = max(best, Double(c.tp) / Double(c.p)) }
        }
        return best
    }

    static func thresholdForFPR(_ s: [Double], _ y: [Bool], _ target: Double) -> Double? {
        guard y.contains(false) else { return nil }
        return Set(s).filter { t in
            let c = counts(s, y, t)
            return Double(c.fp) / Double(c.n) <= target
        }.min()
    }

    static func thresholdForPrecision(_ s: [Double], _ y: [Bool], _ target: Double) -> Double? {
        Set(s).filter { t in
            let c = counts(s, y, t)
            return Double(c.tp) / Double(c.tp + c.fp) >= target
        }.min()
    }

    /// Card precision@k with linear scans and top-k by repeated extraction of the best card.
    static func cardPrecision(_ c: Case, k: Int) -> Double? {
        guard !c.days.isEmpty else { return nil }
        var detected: [String] = []
        var total = 0.0
        let days = Set(c.days).sorted()
        for day in days {
            var candidates: [(card: String, score: Double, fraud: Bool)] = []
            for card in Set(c.cards).sorted() where !detected.contains(card) {
                let rows = c.days.indices.filter { c.days[$0] == day && c.cards[$0] == card }
                guard !rows.isEmpty else { continue }
                candidates.append((card, rows.map { c.scores[$0] }.max()!, rows.contains { c.labels[$0] }))
            }
            var hits = 0
            for _ in 0..<min(k, candidates.count) {
                var top = 0
                for i in candidates.indices {
                    let a = candidates[i]
                    let b = candidates[top]
                    if a.score > b.score || (a.score == b.score && a.card < b.card) { top = i }
                }
                let chosen = candidates.remove(at: top)
                if chosen.fraud {
                    hits += 1
                    detected.append(chosen.card)
                }
            }
            total += Double(hits) / Double(k)
        }
        return total / Double(days.count)
    }
}

// MARK: Against the references

@Suite struct MetricsTests {
    @Test func rocAUCEqualsPairwiseCount() {
        for c in cases {
            let got = Metrics.rocAUC(scores: c.scores, labels: c.labels)
            #expect(same(got, Naive.auc(c.scores, c.labels)), "\(c)")
        }
    }

    @Test func averagePrecisionEqualsBruteForce() {
        for c in cases {
            let got = Metrics.averagePrecision(scores: c.scores, labels: c.labels)
            #expect(same(got, Naive.ap(c.scores, c.labels)), "\(c)")
        }
    }

    @Test func recallAtFPREqualsBruteForce() {
        for c in cases {
            for maxFPR in [0, 0.01, 0.1, 0.25, 0.5, 1] {
                let got = Metrics.recallAtFPR(scores: c.scores, labels: c.labels, maxFPR: maxFPR)
                #expect(same(got, Naive.recallAtFPR(c.scores, c.labels, maxFPR)), "maxFPR \(maxFPR), \(c)")
            }
        }
    }

    @Test func thresholdsEqualBruteForce() {
        for c in cases {
            for target in [0, 0.01, 0.2, 0.5, 1] {
                let fpr = Metrics.threshold(forFPR: target, scores: c.scores, labels: c.labels)
                #expect(fpr == Naive.thresholdForFPR(c.scores, c.labels, target), "FPR \(target), \(c)")
            }
            for target in [0, 0.3, 0.5, 0.8, 1] {
                let precision = Metrics.threshold(forPrecision: target, scores: c.scores, labels: c.labels)
                #expect(precision == Naive.thresholdForPrecision(c.scores, c.labels, target), "precision \(target), \(c)")
            }
        }
    }

    /// The threshold chosen for an FPR gives exactly `recallAtFPR`, and confusion agrees.
    @Test func thresholdForFPRAchievesRecallAtFPR() {
        for c in cases where c.labels.contains(true) && c.labels.contains(false) {
            let recall = Metrics.recallAtFPR(scores: c.scores, labels: c.labels, maxFPR: 0.1)
            let t = Metrics.threshold(forFPR: 0.1, scores: c.scores, labels: c.labels)
            let m = t.map { Metrics.confusion(scores: c.scores, labels: c.labels, threshold: $0) }
            #expect(same(m?.recall ?? 0, recall), "\(c)")
            #expect((m?.falsePositiveRate ?? 0) <= 0.1, "\(c)")
        }
    }

    @Test func confusionAndPatternsEqualAScan() {
        for c in cases {
            let t = 0.5
            let m = Metrics.confusion(scores: c.scores, labels: c.labels, threshold: t)
            let n = Naive.counts(c.scores, c.labels, t)
            #expect(m.truePositives == n.tp && m.falsePositives == n.fp, "\(c)")
            #expect(m.truePositives + m.falseNegatives == n.p && m.falsePositives + m.trueNegatives == n.n, "\(c)")
            let recalls = Metrics.perPatternRecall(scores: c.scores, labels: c.labels, patterns: c.patterns, threshold: t)
            for name in ["geo_jump", "velocity_burst"] {
                let rows = c.scores.indices.filter { c.labels[$0] && c.patterns[$0] == name }
                let expected = rows.isEmpty ? nil : Double(rows.filter { c.scores[$0] >= t }.count) / Double(rows.count)
                #expect(recalls[name] == expected, "\(name), \(c)")
            }
            #expect(recalls.count <= 2)
        }
    }

    @Test func cardPrecisionEqualsNaiveReplay() {
        for c in cases {
            for k in [1, 2, 3, 100] {
                let got = Metrics.cardPrecisionAtK(days: c.days, cards: c.cards, scores: c.scores, labels: c.labels, k: k)
                let want = Naive.cardPrecision(c, k: k)
                #expect(got.map { same($0, want ?? .nan) } ?? (want == nil), "k \(k), \(c)")
            }
        }
    }

    // MARK: Hand-computed fixtures

    @Test func aucFixtures() {
        // Positives 0.35, 0.8; negatives 0.1, 0.4. Pairs: 0.35>0.1 ✓, 0.35<0.4 ✗, 0.8>0.1 ✓, 0.8>0.4 ✓ → 3/4.
        #expect(Metrics.rocAUC(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true]) == 0.75)
        // Positives 0.5, 0.9; negatives 0.2, 0.5. Pairs: 0.5>0.2 → 1, 0.5=0.5 → 1/2, 0.9>0.2 → 1,
        // 0.9>0.5 → 1; total 3.5 of 4 → 0.875.
        #expect(Metrics.rocAUC(scores: [0.2, 0.5, 0.5, 0.9], labels: [false, true, false, true]) == 0.875)
        // Every pair tied → 1/2 each → 0.5.
        #expect(Metrics.rocAUC(scores: [0.3, 0.3, 0.3], labels: [true, false, false]) == 0.5)
        // Perfect and reversed rankings.
        #expect(Metrics.rocAUC(scores: [0.9, 0.1], labels: [true, false]) == 1)
        #expect(Metrics.rocAUC(scores: [0.1, 0.9], labels: [true, false]) == 0)
    }

    @Test func averagePrecisionFixtures() {
        // scikit-learn's docs example. Thresholds down: 0.8 → TP1 FP0, P=1, R=1/2; 0.4 → TP1 FP1, R unchanged;
        // 0.35 → TP2 FP1, P=2/3, R=1; 0.1 → R unchanged. AP = (1/2)(1) + (1/2)(2/3) = 5/6 ≈ 0.8333.
        let ap = Metrics.averagePrecision(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true])
        #expect(abs(ap - 5.0 / 6) < 1e-15)
        // Ties form one step. 0.9 → TP1 FP1, P=1/2, R=1/3; 0.5 → TP3 FP1, P=3/4, R=1; 0.1 → R unchanged.
        // AP = (1/3)(1/2) + (2/3)(3/4) = 1/6 + 1/2 = 2/3.
        let tiedAP = Metrics.averagePrecision(scores: [0.9, 0.9, 0.5, 0.5, 0.1], labels: [true, false, true, true, false])
        #expect(abs(tiedAP - 2.0 / 3) < 1e-15)
        // All scores equal: one step, P = prevalence = 2/5.
        #expect(
            abs(Metrics.averagePrecision(scores: [0.5, 0.5, 0.5, 0.5, 0.5], labels: [true, true, false, false, false]) - 0.4)
                < 1e-15)
    }

    @Test func confusionFixture() {
        let s = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1]
        let y = [true, false, true, true, false, false]
        // At 0.6 (inclusive): flagged 0.9 (TP), 0.8 (FP), 0.6 (TP); 0.4 is a missed fraud (FN); 0.3, 0.1 TN.
        // Precision 2/3, recall 2/3, F1 = 2/3.
        let m = Metrics.confusion(scores: s, labels: y, threshold: 0.6)
        #expect(m == Metrics.Confusion(truePositives: 2, falsePositives: 1, trueNegatives: 2, falseNegatives: 1))
        #expect(abs(m.precision - 2.0 / 3) < 1e-15 && abs(m.recall - 2.0 / 3) < 1e-15 && abs(m.f1 - 2.0 / 3) < 1e-15)
        // At 0.8: TP1 FP1 FN2 TN2. Precision 1/2, recall 1/3, F1 = 2(1/6)/(5/6) = 0.4.
        let h = Metrics.confusion(scores: s, labels: y, threshold: 0.8)
        #expect(h == Metrics.Confusion(truePositives: 1, falsePositives: 1, trueNegatives: 2, falseNegatives: 2))
        #expect(h.precision == 0.5 && abs(h.recall - 1.0 / 3) < 1e-15 && abs(h.f1 - 0.4) < 1e-15)
        // Above every score nothing is flagged: precision 0 by convention, F1 0.
        let none = Metrics.confusion(scores: s, labels: y, threshold: 0.95)
        #expect(none.precision == 0 && none.recall == 0 && none.f1 == 0)
    }

    @Test func recallAtFPRAndThresholdFixtures() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
        let y = [true, false, true, true, false, true, false, false]
        // 4 negatives: FPR ≤ 1/4 allows one false positive. Down to 0.6: TP3 FP1 (FPR 1/4);
        // 0.5 would be FP2 (FPR 1/2). Recall 3/4, and 0.6 is the lowest admissible threshold.
        #expect(Metrics.recallAtFPR(scores: s, labels: y, maxFPR: 0.25) == 0.75)
        #expect(Metrics.threshold(forFPR: 0.25, scores: s, labels: y) == 0.6)
        // FPR 0 stops before 0.8: recall 1/4 at 0.9.
        #expect(Metrics.recallAtFPR(scores: s, labels: y, maxFPR: 0) == 0.25)
        #expect(Metrics.threshold(forFPR: 0, scores: s, labels: y) == 0.9)
        // Precision per threshold: 0.9 → 1, 0.8 → 1/2, 0.7 → 2/3, 0.6 → 3/4, 0.5 → 3/5, 0.4 → 4/6, 0.3 → 4/7, 0.2 → 1/2.
        #expect(Metrics.threshold(forPrecision: 0.75, scores: s, labels: y) == 0.6)
        #expect(Metrics.threshold(forPrecision: 0.8, scores: s, labels: y) == 0.9)
        #expect(Metrics.threshold(forPrecision: 0.5, scores: s, labels: y) == 0.2)
        #expect(Metrics.threshold(forPrecision: 1.01, scores: s, labels: y) == nil)
        // A negative tied with the top positive: FPR 0 cannot be reached by any score.
        #expect(Metrics.threshold(forFPR: 0, scores: [0.9, 0.9, 0.1], labels: [true, false, false]) == nil)
        #expect(Metrics.recallAtFPR(scores: [0.9, 0.9, 0.1], labels: [true, false, false], maxFPR: 0) == 0)
    }

    @Test func perPatternRecallFixture() {
        // Threshold 0.5. geo_jump frauds score 0.9, 0.2 → 1/2; card_testing 0.7 → 1;
        // the unnamed fraud and the legitimate row with a pattern are ignored.
        let recalls = Metrics.perPatternRecall(
            scores: [0.9, 0.2, 0.7, 0.8, 0.6], labels: [true, true, true, true, false],
            patterns: ["geo_jump", "geo_jump", "card_testing", nil, "velocity_burst"], threshold: 0.5)
        #expect(recalls == ["geo_jump": 0.5, "card_testing": 1])
    }

    @Test func cardPrecisionFixture() {
        // k = 2, rows given out of day order.
        // Day 1: A rows (0.9, legit) and (0.2, fraud) → A = (0.9, fraud); B (0.8, fraud); C (0.3, legit).
        //        Top 2: A, B, both fraud → 2/2 = 1. Detected {A, B}.
        // Day 2: A (0.95, fraud) and B (0.9, fraud) are known compromised and dropped; C (0.6, legit),
        //        D (0.6, fraud), E (0.1, fraud). Top 2: C, D (tied, id order) → 1/2. Detected {A, B, D}.
        //        (Without the exclusion it would have been A, B → 1.)
        // Day 3: D (0.99, fraud) dropped; only E (0.5, fraud) → 1 fraud / k = 1/2, not 1/1.
        // Mean over the 3 days: (1 + 1/2 + 1/2) / 3 = 2/3.
        let rows: [(day: Int, card: String, score: Double, fraud: Bool)] = [
            (3, "D", 0.99, true), (2, "A", 0.95, true), (1, "A", 0.9, false), (1, "A", 0.2, true),
            (2, "B", 0.9, true), (1, "B", 0.8, true), (1, "C", 0.3, false), (2, "D", 0.6, true),
            (2, "C", 0.6, false), (2, "E", 0.1, true), (3, "E", 0.5, true),
        ]
        let cp = Metrics.cardPrecisionAtK(
            days: rows.map(\.day), cards: rows.map(\.card), scores: rows.map(\.score), labels: rows.map(\.fraud), k: 2)
        #expect(cp.map { abs($0 - 2.0 / 3) < 1e-15 } == true)
        #expect(Metrics.cardPrecisionAtK(days: [], cards: [], scores: [], labels: []) == nil)
    }

    @Test func evaluateBundlesEverything() {
        let s = [0.1, 0.4, 0.35, 0.8]
        let y = [false, false, true, true]
        let m = Metrics.evaluate(
            scores: s, labels: y, patterns: [nil, nil, "geo_jump", "high_amount"], days: [1, 1, 1, 1],
            cards: ["a", "b", "c", "d"], threshold: 0.35)
        #expect(m.rows == 4 && m.positives == 2 && m.rocAUC == 0.75 && abs(m.averagePrecision - 5.0 / 6) < 1e-15)
        // At 0.35: flagged 0.4 (FP), 0.35 (TP), 0.8 (TP) → precision 2/3, recall 1, F1 0.8.
        #expect(m.truePositives == 2 && m.falsePositives == 1 && m.trueNegatives == 1 && m.falseNegatives == 0)
        #expect(abs(m.precision - 2.0 / 3) < 1e-15 && m.recall == 1 && abs(m.f1 - 0.8) < 1e-15)
        // FPR ≤ 1 % allows no negative: only 0.8 is flagged → recall 1/2.
        #expect(m.recallAt1PctFPR == 0.5)
        // One day, two fraud cards among four, k = 100 → 2/100.
        #expect(m.cardPrecisionAt100 == 0.02)
        #expect(m.perPatternRecall == ["geo_jump": 1, "high_amount": 1])
        let bare = Metrics.evaluate(scores: s, labels: y, threshold: 0.5)
        #expect(bare.cardPrecisionAt100 == nil && bare.perPatternRecall.isEmpty)
    }

    // MARK: Edge cases

    @Test func edgeCases() {
        // A class absent: AUC and recall@FPR undefined; AP undefined without positives.
        #expect(Metrics.rocAUC(scores: [0.1, 0.9], labels: [false, false]).isNaN)
        #expect(Metrics.rocAUC(scores: [0.1, 0.9], labels: [true, true]).isNaN)
        #expect(Metrics.rocAUC(scores: [], labels: []).isNaN)
        #expect(Metrics.averagePrecision(scores: [0.1, 0.9], labels: [false, false]).isNaN)
        #expect(Metrics.averagePrecision(scores: [0.1, 0.9], labels: [true, true]) == 1)
        #expect(Metrics.recallAtFPR(scores: [0.1, 0.9], labels: [false, false]).isNaN)
        #expect(Metrics.threshold(forFPR: 0.5, scores: [0.1, 0.9], labels: [true, true]) == nil)
        // All the same score: AUC 0.5.
        #expect(Metrics.rocAUC(scores: Array(repeating: 0.7, count: 10), labels: (0..<10).map { $0 % 3 == 0 }) == 0.5)
        // NaN scores rank lowest and are never flagged.
        #expect(Metrics.rocAUC(scores: [.nan, 0.2], labels: [false, true]) == 1)
        #expect(Metrics.confusion(scores: [.nan], labels: [true], threshold: 0).falseNegatives == 1)
    }

    /// O(n log n): 200,000 rows finish quickly (a quadratic version would not).
    @Test func scalesToLargeInputs() {
        var rng = SplitMix(seed: 42)
        let y = (0..<200_000).map { _ in Double.random(in: 0..<1, using: &rng) < 0.01 }
        let s = y.map { $0 ? Double.random(in: 0.3..<1, using: &rng) : Double.random(in: 0..<0.7, using: &rng) }
        // Frauds ~ U(0.3, 1), legit ~ U(0, 0.7): a fraud ranks lower only when both fall in
        // [0.3, 0.7] (probability 4/7 · 4/7) and then half the time: AUC = 1 − 8/49 ≈ 0.837.
        let auc = Metrics.rocAUC(scores: s, labels: y)
        #expect(abs(auc - 41.0 / 49) < 0.02)
        #expect(Metrics.averagePrecision(scores: s, labels: y) > 0.1)
    }
}
