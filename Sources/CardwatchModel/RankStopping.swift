/// Early stopping by validation average precision, made for slices with a few dozen frauds:
/// AP is taken every `interval` rounds, averaged over the last `window` checkpoints (one
/// fraud moving up or down a rank moves a raw AP by a step), never judged before
/// `minimumRounds`, and the boosting stops `patience` rounds after the best smoothed value.
/// The trees kept end at the centre of the best window. Log-loss, the default criterion,
/// is dominated by the base rate on rare events and can stop after a few dozen rounds while
/// the ranking is still improving.
public struct RankStopping: Sendable, Equatable, Codable {
    public var interval = 10
    public var minimumRounds = 60
    public var patience = 80
    public var window = 5

    public init() {}

    /// The checkpoints of one fit and the best smoothed AP so far.
    struct Tracker {
        let settings: RankStopping
        let labels: [Bool]
        let weights: [Double]?
        var checkpoints: [(round: Int, averagePrecision: Double)] = []
        var best: Double?
        var bestEnd = 0
        var rounds = 0

        init(_ settings: RankStopping, labels: [Bool], weights: [Double]? = nil) {
            self.settings = settings
            self.labels = labels
            self.weights = weights
        }

        /// The trees to keep: the centre of the best window, or every round seen before any was judged.
        var bestRound: Int {
            guard best != nil else { return rounds }
            return max(1, bestEnd - (min(settings.window, checkpoints.count) - 1) / 2 * settings.interval)
        }

        /// Records round `round`'s validation margins; true when the boosting should stop.
        mutating func observe(round: Int, margins: [Double]) -> Bool {
            rounds = round
            guard round % max(1, settings.interval) == 0 else { return false }
            checkpoints.append((round, RankStopping.averagePrecision(margins, labels, weights: weights)))
            let recent = checkpoints.suffix(max(1, settings.window))
            let smoothed = recent.reduce(0) { $0 + $1.averagePrecision } / Double(recent.count)
            guard round >= settings.minimumRounds else { return false }
            if best == nil || smoothed > best! + 1e-12 {
                best = smoothed
                bestEnd = round
            }
            return round - bestEnd >= settings.patience
        }
    }

    /// Average precision exactly as `Metrics.averagePrecision` defines it (steps at distinct
    /// scores, ties counted together), in O(n log p) for p positives instead of a sort of all
    /// n rows: only the distinct fraud scores are steps that count, and each legitimate row
    /// only needs to know how many of them it reaches. NaN scores rank lowest. With `weights`,
    /// each row counts as its weight (a sample standing for all the rows).
    public static func averagePrecision(_ scores: [Double], _ labels: [Bool], weights: [Double]? = nil) -> Double {
        precondition(scores.count == labels.count, "scores and labels differ in length")
        var fraud: [(score: Double, weight: Double)] = []
        for (r, (s, y)) in zip(scores, labels).enumerated() where y {
            fraud.append((s.isNaN ? -.infinity : s, weights?[r] ?? 1))
        }
        guard !fraud.isEmpty else { return .nan }
        fraud.sort { $0.score < $1.score }
        var values: [Double] = []
        var frauds: [Double] = []
        for f in fraud {
            if values.last == f.score {
                frauds[frauds.count - 1] += f.weight
            } else {
                values.append(f.score)
                frauds.append(f.weight)
            }
        }
        // reaching[k]: legitimate rows whose score reaches exactly the k lowest fraud values.
        var reaching = [Double](repeating: 0, count: values.count + 1)
        for (r, (s, y)) in zip(scores, labels).enumerated() where !y {
            let x = s.isNaN ? -Double.infinity : s
            var lo = 0
            var hi = values.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if values[mid] <= x { lo = mid + 1 } else { hi = mid }
            }
            reaching[lo] += weights?[r] ?? 1
        }
        var ap = 0.0
        var fraudAtOrAbove = 0.0
        var legitAtOrAbove = 0.0
        for k in stride(from: values.count - 1, through: 0, by: -1) {
            fraudAtOrAbove += frauds[k]
            legitAtOrAbove += reaching[k + 1]
            ap += frauds[k] * fraudAtOrAbove / (fraudAtOrAbove + legitAtOrAbove)
        }
        return ap / fraudAtOrAbove
    }
}
