/// How the probability map was chosen: each candidate's Brier score and average precision on
/// the validation rows it was not fitted on (two folds, each fitted on the other).
public struct CalibrationChoice: Codable, Sendable, Equatable {
    public var method: String
    public var plattBrier: Double
    public var isotonicBrier: Double?
    public var plattAveragePrecision: Double
    public var isotonicAveragePrecision: Double?
}

extension Calibration {
    /// Isotonic regression of the labels on the margins (pool adjacent violators): the
    /// non-decreasing step function with the least squared error, one step per pooled block,
    /// its lower edge the block's smallest margin.
    public static func isotonic(margins: [Double], labels: [Bool]) -> Calibration {
        precondition(margins.count == labels.count, "margins and labels differ in length")
        let order = margins.indices.filter { !margins[$0].isNaN }.sorted { margins[$0] < margins[$1] }
        var edges: [Double] = []
        var sums: [Double] = []
        var counts: [Double] = []
        // Rows with equal margins form one group before any pooling (the map is a function of the margin).
        var groups: [(edge: Double, sum: Double, count: Double)] = []
        for i in order {
            let y = labels[i] ? 1.0 : 0.0
            if margins[i] == groups.last?.edge {
                groups[groups.count - 1].sum += y
                groups[groups.count - 1].count += 1
            } else {
                groups.append((margins[i], y, 1))
            }
        }
        for g in groups {
            edges.append(g.edge)
            sums.append(g.sum)
            counts.append(g.count)
            // Pool while the block before has the higher mean.
            while sums.count > 1, sums[sums.count - 2] * counts[counts.count - 1] > sums.last! * counts[counts.count - 2] {
                sums[sums.count - 2] += sums.removeLast()
                counts[counts.count - 2] += counts.removeLast()
                edges.removeLast()
            }
        }
        guard !edges.isEmpty else { return Calibration() }
        return Calibration(isotonicMargins: edges, isotonicProbabilities: zip(sums, counts).map { $0 / $1 })
    }

    /// Platt or isotonic, whichever forecasts better on rows it was not fitted on: the
    /// validation rows are cut into two interleaved folds (alternate rows in the given order,
    /// so both span the slice's time), each map is fitted on one fold and scored on the other.
    /// Isotonic wins when its cross-fitted Brier score is lower and its steps cost no average
    /// precision (tied probabilities rank worse than margins); the winner is refitted on all rows.
    public static func choose(margins: [Double], labels: [Bool]) -> (Calibration, CalibrationChoice) {
        precondition(margins.count == labels.count, "margins and labels differ in length")
        let folds = [stride(from: 0, to: margins.count, by: 2).map { $0 }, stride(from: 1, to: margins.count, by: 2).map { $0 }]
        var platt = [Double](repeating: 0, count: margins.count)
        var isotonic = platt
        for (k, fold) in folds.enumerated() {
            let other = folds[1 - k]
            let m = other.map { margins[$0] }
            let y = other.map { labels[$0] }
            let p = Calibration.fit(margins: m, labels: y)
            let iso = Calibration.isotonic(margins: m, labels: y)
            for i in fold {
                platt[i] = p.probability(margin: margins[i])
                isotonic[i] = iso.probability(margin: margins[i])
            }
        }
        let plattBrier = Metrics.brierScore(scores: platt, labels: labels)
        let isotonicBrier = Metrics.brierScore(scores: isotonic, labels: labels)
        let plattAP = RankStopping.averagePrecision(platt, labels)
        let isotonicAP = RankStopping.averagePrecision(isotonic, labels)
        let useIsotonic = isotonicBrier < plattBrier && isotonicAP >= plattAP
        let choice = CalibrationChoice(
            method: useIsotonic ? "isotonic" : "platt", plattBrier: plattBrier, isotonicBrier: isotonicBrier,
            plattAveragePrecision: plattAP, isotonicAveragePrecision: isotonicAP)
        let map =
            useIsotonic
            ? Calibration.isotonic(margins: margins, labels: labels) : Calibration.fit(margins: margins, labels: labels)
        return (map, choice)
    }
}
