extension Metrics {
    /// The score threshold with the highest F1 (predicted positive ⇔ score ≥ threshold); nil without positives.
    public static func bestF1Threshold(scores: [Double], labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count
        guard positives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var tp = 0
        var taken = 0
        var best: (f1: Double, threshold: Double)?
        var k = 0
        while k < order.count {
            let s = scores[order[k]]
            while k < order.count, scores[order[k]] == s {  // ties are one step
                if labels[order[k]] { tp += 1 }
                taken += 1
                k += 1
            }
            let f1 = 2 * Double(tp) / Double(taken + positives)
            if f1 > (best?.f1 ?? -1) { best = (f1, s) }
        }
        return best?.threshold
    }
}
