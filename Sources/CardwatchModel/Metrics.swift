/// The evaluation metrics of a fraud model, as pure functions over parallel arrays of
/// scores (higher means more likely fraud) and labels (`true` for fraud).
///
/// Conventions shared by every function:
/// - a row is predicted positive when `score >= threshold`;
/// - the candidate thresholds are the distinct scores; tied scores are one threshold
///   step (they are flagged or not flagged together);
/// - a NaN score counts as the lowest possible score (−∞);
/// - a figure that is undefined for lack of a class is `.nan` (or `nil` for thresholds).
///
/// Everything is O(n log n): one sort, then linear scans.
public enum Metrics {
    /// The confusion matrix at one threshold, with the figures derived from it.
    public struct Confusion: Sendable, Equatable {
        public var truePositives: Int
        public var falsePositives: Int
        public var trueNegatives: Int
        public var falseNegatives: Int

        public init(truePositives: Int, falsePositives: Int, trueNegatives: Int, falseNegatives: Int) {
            self.truePositives = truePositives
            self.falsePositives = falsePositives
            self.trueNegatives = trueNegatives
            self.falseNegatives = falseNegatives
        }

        /// TP / (TP + FP); 0 when nothing is predicted positive.
        public var precision: Double { ratio(truePositives, truePositives + falsePositives) }
        /// TP / (TP + FN); 0 when there are no positives.
        public var recall: Double { ratio(truePositives, truePositives + falseNegatives) }
        /// FP / (FP + TN); 0 when there are no negatives.
        public var falsePositiveRate: Double { ratio(falsePositives, falsePositives + trueNegatives) }
        /// The harmonic mean of precision and recall; 0 when both are 0.
        public var f1: Double {
            let p = precision
            let r = recall
            return p + r > 0 ? 2 * p * r / (p + r) : 0
        }
    }

    // MARK: Ranking metrics

    /// The area under the ROC curve: the probability that a random fraud scores above a
    /// random legitimate row, a tied pair counting 1/2 (Mann–Whitney U / (P · N)).
    /// `.nan` when either class is absent.
    public static func rocAUC(scores: [Double], labels: [Bool]) -> Double {
        let curve = Curve(scores: scores, labels: labels)
        guard curve.positives > 0, curve.negatives > 0 else { return .nan }
        // Each negative of a step beats no positive of a lower step, loses to every
        // positive above it, and ties with the positives of its own step.
        var twiceWins = 0
        var positivesAbove = 0
        for step in curve.steps {
            twiceWins += step.negatives * (2 * positivesAbove + step.positives)
            positivesAbove += step.positives
        }
        return Double(twiceWins) / (2 * Double(curve.positives) * Double(curve.negatives))
    }

    /// Average precision as scikit-learn defines it: AP = Σₙ (Rₙ − Rₙ₋₁) · Pₙ over the
    /// distinct thresholds in decreasing order (no interpolation). `.nan` without positives.
    public static func averagePrecision(scores: [Double], labels: [Bool]) -> Double {
        let curve = Curve(scores: scores, labels: labels)
        guard curve.positives > 0 else { return .nan }
        var ap = 0.0
        var tp = 0
        var fp = 0
        for step in curve.steps {
            tp += step.positives
            fp += step.negatives
            guard step.positives > 0 else { continue }  // recall unchanged: the term is 0
            ap += Double(step.positives) / Double(curve.positives) * (Double(tp) / Double(tp + fp))
        }
        return ap
    }

    /// The confusion matrix when every row with `score >= threshold` is flagged.
    public static func confusion(scores: [Double], labels: [Bool], threshold: Double) -> Confusion {
        precondition(scores.count == labels.count, "scores and labels differ in length")
        var c = Confusion(truePositives: 0, falsePositives: 0, trueNegatives: 0, falseNegatives: 0)
        for (score, label) in zip(scores, labels) {
            switch (key(score) >= threshold, label) {
            case (true, true): c.truePositives += 1
            case (true, false): c.falsePositives += 1
            case (false, false): c.trueNegatives += 1
            case (false, true): c.falseNegatives += 1
            }
        }
        return c
    }

    /// The highest true-positive rate over the thresholds (distinct scores, and "flag
    /// nothing") whose false-positive rate is at most `maxFPR`. `.nan` when either class
    /// is absent.
    public static func recallAtFPR(scores: [Double], labels: [Bool], maxFPR: Double = 0.01) -> Double {
        let curve = Curve(scores: scores, labels: labels)
        guard curve.positives > 0, curve.negatives > 0 else { return .nan }
        var tp = 0
        var fp = 0
        var best = 0
        // Both rates only grow as the threshold falls, so the last admissible step is the best.
        for step in curve.steps {
            tp += step.positives
            fp += step.negatives
            guard Double(fp) / Double(curve.negatives) <= maxFPR else { break }
            best = tp
        }
        return Double(best) / Double(curve.positives)
    }

    /// The lowest score threshold whose false-positive rate is at most `target`; nil when
    /// there are no negatives or even the highest score exceeds the target.
    public static func threshold(forFPR target: Double, scores: [Double], labels: [Bool]) -> Double? {
        let curve = Curve(scores: scores, labels: labels)
        guard curve.negatives > 0 else { return nil }
        var fp = 0
        var found: Double?
        for step in curve.steps {
            fp += step.negatives
            guard Double(fp) / Double(curve.negatives) <= target else { break }
            found = step.score
        }
        return found
    }

    /// The lowest score threshold whose precision is at least `target`; nil when none is.
    public static func threshold(forPrecision target: Double, scores: [Double], labels: [Bool]) -> Double? {
        let curve = Curve(scores: scores, labels: labels)
        var tp = 0
        var fp = 0
        var found: Double?
        // Precision is not monotone in the threshold: every step has to be looked at.
        for step in curve.steps {
            tp += step.positives
            fp += step.negatives
            if Double(tp) / Double(tp + fp) >= target { found = step.score }
        }
        return found
    }

    // MARK: Per pattern and per card

    /// Recall at `threshold` among the positives of each named fraud pattern. Rows whose
    /// pattern is nil, and patterns on legitimate rows, are ignored.
    public static func perPatternRecall(
        scores: [Double], labels: [Bool], patterns: [String?], threshold: Double
    ) -> [String: Double] {
        precondition(scores.count == labels.count && scores.count == patterns.count, "arrays differ in length")
        var caught: [String: (flagged: Int, total: Int)] = [:]
        for i in scores.indices where labels[i] {
            guard let pattern = patterns[i] else { continue }
            let flagged = key(scores[i]) >= threshold ? 1 : 0
            caught[pattern, default: (0, 0)].flagged += flagged
            caught[pattern, default: (0, 0)].total += 1
        }
        return caught.mapValues { Double($0.flagged) / Double($0.total) }
    }

    /// The Fraud Detection Handbook's card precision top-k, averaged over the days.
    ///
    /// Days are taken in increasing order. On each day the rows of cards detected on an
    /// earlier day (known compromised) are dropped; the remaining rows are grouped by
    /// card, a card taking its highest score and its highest label; the `k` cards with
    /// the highest scores (ties: card id ascending) are checked, and the day's precision
    /// is the number of frauds among them divided by `k` — not by the number of cards
    /// available. Those frauds join the detected cards. nil when there are no rows.
    public static func cardPrecisionAtK(
        days: [Int], cards: [String], scores: [Double], labels: [Bool], k: Int = 100
    ) -> Double? {
        precondition(
            days.count == cards.count && days.count == scores.count && days.count == labels.count,
            "arrays differ in length")
        precondition(k > 0, "k must be positive")
        guard !days.isEmpty else { return nil }
        let order = days.indices.sorted { days[$0] < days[$1] }
        var detected: Set<String> = []
        var precisions: [Double] = []
        var start = 0
        while start < order.count {
            let day = days[order[start]]
            var end = start
            var best: [String: (score: Double, fraud: Bool)] = [:]
            while end < order.count, days[order[end]] == day {
                let i = order[end]
                end += 1
                guard !detected.contains(cards[i]) else { continue }
                let score = key(scores[i])
                if let seen = best[cards[i]] {
                    best[cards[i]] = (max(seen.score, score), seen.fraud || labels[i])
                } else {
                    best[cards[i]] = (score, labels[i])
                }
            }
            let ranked = best.sorted { a, b in
                a.value.score != b.value.score ? a.value.score > b.value.score : a.key < b.key
            }
            let frauds = ranked.prefix(k).filter { $0.value.fraud }.map(\.key)
            precisions.append(Double(frauds.count) / Double(k))
            detected.formUnion(frauds)
            start = end
        }
        return precisions.reduce(0, +) / Double(precisions.count)
    }

    // MARK: Everything at once

    /// Every figure of `EvaluationMetrics` for one test window. Per-pattern recall is
    /// empty without `patterns`; card precision@100 is nil without both `days` and `cards`.
    public static func evaluate(
        scores: [Double], labels: [Bool], patterns: [String?]? = nil, days: [Int]? = nil, cards: [String]? = nil,
        threshold: Double
    ) -> EvaluationMetrics {
        let c = confusion(scores: scores, labels: labels, threshold: threshold)
        var cardPrecision: Double?
        if let days, let cards {
            cardPrecision = cardPrecisionAtK(days: days, cards: cards, scores: scores, labels: labels, k: 100)
        }
        return EvaluationMetrics(
            rows: scores.count, positives: c.truePositives + c.falseNegatives,
            rocAUC: rocAUC(scores: scores, labels: labels),
            averagePrecision: averagePrecision(scores: scores, labels: labels), threshold: threshold,
            precision: c.precision, recall: c.recall, f1: c.f1, truePositives: c.truePositives,
            falsePositives: c.falsePositives, trueNegatives: c.trueNegatives, falseNegatives: c.falseNegatives,
            recallAt1PctFPR: recallAtFPR(scores: scores, labels: labels, maxFPR: 0.01),
            cardPrecisionAt100: cardPrecision,
            perPatternRecall: patterns.map {
                perPatternRecall(scores: scores, labels: labels, patterns: $0, threshold: threshold)
            } ?? [:],
            brierScore: brierScore(scores: scores, labels: labels))
    }

    // MARK: Calibration

    /// Mean of (probability − outcome)²: 0 for a perfect forecaster, 0.25 for always saying 0.5.
    public static func brierScore(scores: [Double], labels: [Bool]) -> Double {
        precondition(scores.count == labels.count, "scores and labels differ in length")
        guard !scores.isEmpty else { return .nan }
        var sum = 0.0
        for (s, y) in zip(scores, labels) {
            let d = (s.isNaN ? 0 : s) - (y ? 1 : 0)
            sum += d * d
        }
        return sum / Double(scores.count)
    }

    /// One bin of a reliability table: the rows whose probability fell in [lower, upper).
    public struct ReliabilityBin: Codable, Sendable, Equatable {
        public var lower: Double
        public var upper: Double
        public var rows: Int
        public var meanProbability: Double
        public var fraudShare: Double
    }

    /// The reliability table: probabilities cut at `edges` (the last bin includes 1), per bin
    /// the mean predicted probability against the share that was fraud; empty bins left out.
    /// The default edges are finer near 0, where fraud probabilities live.
    public static func reliability(
        scores: [Double], labels: [Bool], edges: [Double] = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1]
    ) -> [ReliabilityBin] {
        precondition(scores.count == labels.count, "scores and labels differ in length")
        precondition(edges.count >= 2, "a reliability table needs at least one bin")
        let bins = edges.count - 1
        var rows = [Int](repeating: 0, count: bins)
        var sums = [Double](repeating: 0, count: bins)
        var frauds = [Int](repeating: 0, count: bins)
        for (s, y) in zip(scores, labels) where !s.isNaN {
            // The bin whose lower edge is the last at most s; beyond the ends, the end bins.
            var b = 0
            while b + 1 < bins && s >= edges[b + 1] { b += 1 }
            rows[b] += 1
            sums[b] += s
            if y { frauds[b] += 1 }
        }
        return (0..<bins).filter { rows[$0] > 0 }.map {
            ReliabilityBin(
                lower: edges[$0], upper: edges[$0 + 1], rows: rows[$0], meanProbability: sums[$0] / Double(rows[$0]),
                fraudShare: Double(frauds[$0]) / Double(rows[$0]))
        }
    }

    // MARK: Internals

    /// The score used for ranking: NaN sorts as the lowest score.
    @inline(__always) static func key(_ score: Double) -> Double { score.isNaN ? -.infinity : score }

    /// One threshold step: the rows sharing one distinct score.
    struct Step {
        var score: Double
        var positives: Int
        var negatives: Int
    }

    /// The rows grouped by distinct score, highest score first.
    struct Curve {
        var steps: [Step] = []
        var positives = 0
        var negatives = 0

        init(scores: [Double], labels: [Bool]) {
            precondition(scores.count == labels.count, "scores and labels differ in length")
            let rows = zip(scores.lazy.map(Metrics.key), labels).sorted { $0.0 > $1.0 }
            for (score, label) in rows {
                if steps.last?.score != score { steps.append(Step(score: score, positives: 0, negatives: 0)) }
                if label {
                    steps[steps.count - 1].positives += 1
                    positives += 1
                } else {
                    steps[steps.count - 1].negatives += 1
                    negatives += 1
                }
            }
        }
    }
}

private func ratio(_ a: Int, _ b: Int) -> Double { b > 0 ? Double(a) / Double(b) : 0 }
