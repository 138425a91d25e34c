/// A paired bootstrap of average precision over models scored on the same rows: each
/// replicate draws the rows again with replacement (the same draw for every model, so
/// differences between models are judged on the same resampled rows), and the spread of
/// the replicates' APs gives a percentile confidence interval.
///
/// A replicate is a count per row (how often the multinomial draw picked it); each
/// model's rows are sorted by score once, so a replicate's AP is one linear pass over the
/// score steps with those counts as weights — equal to `Metrics.averagePrecision` of the
/// resampled rows written out (the tests check it against exactly that).
public struct AveragePrecisionBootstrap: Sendable {
    /// A percentile interval.
    public struct Interval: Sendable, Equatable, Codable {
        public var lower: Double
        public var upper: Double
    }

    /// Per model, the replicates' APs, in replicate order.
    public private(set) var replicates: [[Double]]
    public let level: Double

    /// One model's rows in decreasing score order, cut into steps of equal score.
    struct Ranking {
        var order: [Int32]
        /// Index into `order` where each step ends.
        var stepEnds: [Int32]

        init(scores: [Double]) {
            let keys = scores.map { Metrics.key($0) }
            order = (0..<Int32(scores.count)).sorted { keys[Int($0)] > keys[Int($1)] }
            stepEnds = []
            for i in stride(from: 1, through: order.count, by: 1)
            where i == order.count || keys[Int(order[i])] != keys[Int(order[i - 1])] {
                stepEnds.append(Int32(i))
            }
        }

        /// AP of the rows weighted by `counts` (rows never drawn count 0); NaN without positives.
        func averagePrecision(labels: [Bool], counts: [Int32]) -> Double {
            var positives = 0
            for (c, y) in zip(counts, labels) where y { positives += Int(c) }
            guard positives > 0 else { return .nan }
            var ap = 0.0
            var tp = 0
            var fp = 0
            var start = 0
            for end in stepEnds {
                var stepPositives = 0
                for k in start..<Int(end) {
                    let r = Int(order[k])
                    if labels[r] { stepPositives += Int(counts[r]) } else { fp += Int(counts[r]) }
                }
                tp += stepPositives
                if stepPositives > 0 { ap += Double(stepPositives) / Double(positives) * (Double(tp) / Double(tp + fp)) }
                start = Int(end)
            }
            return ap
        }
    }

    /// `scores[m]` are model m's scores of the rows `labels` describe.
    public init(scores: [[Double]], labels: [Bool], replicates count: Int = 1000, seed: UInt64 = 1, level: Double = 0.95) {
        precondition(scores.allSatisfy { $0.count == labels.count }, "every model scores every row")
        precondition(level > 0 && level < 1, "the confidence level is within (0, 1)")
        self.level = level
        let rankings = scores.map { Ranking(scores: $0) }
        var rng = SplitMix(seed: seed)
        var counts = [Int32](repeating: 0, count: labels.count)
        var replicates = [[Double]](repeating: [], count: scores.count)
        let n = UInt64(labels.count)
        for _ in 0..<(labels.isEmpty ? 0 : count) {
            for i in counts.indices { counts[i] = 0 }
            for _ in 0..<labels.count {
                // Lemire's multiply-shift: an index in 0..<n from 64 random bits (bias < n / 2^64).
                counts[Int(rng.next().multipliedFullWidth(by: n).high)] += 1
            }
            for (m, ranking) in rankings.enumerated() {
                replicates[m].append(ranking.averagePrecision(labels: labels, counts: counts))
            }
        }
        self.replicates = replicates
    }

    /// The percentile interval of model m's AP (replicates without a fraud row left out).
    public func interval(model m: Int) -> Interval? { Self.percentiles(replicates[m], level) }

    /// The interval of AP(model m) − AP(model base) over the same replicates.
    public func differenceInterval(model m: Int, base: Int) -> Interval? {
        Self.percentiles(zip(replicates[m], replicates[base]).map { $0 - $1 }, level)
    }

    /// The share of replicates in which model m's AP is above model base's.
    public func shareAbove(model m: Int, base: Int) -> Double? {
        let pairs = zip(replicates[m], replicates[base]).filter { !$0.0.isNaN && !$0.1.isNaN }
        guard !pairs.isEmpty else { return nil }
        return Double(pairs.filter { $0.0 > $0.1 }.count) / Double(pairs.count)
    }

    /// Lower and upper percentiles (nearest rank) of the defined values.
    static func percentiles(_ values: [Double], _ level: Double) -> Interval? {
        let sorted = values.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return nil }
        let tail = (1 - level) / 2
        func rank(_ q: Double) -> Double {
            sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
        }
        return Interval(lower: rank(tail), upper: rank(1 - tail))
    }
}
