/// Quantile bins per feature: the histogram trainer works on small bin numbers
/// instead of raw values. Bin `b` of a feature holds values with
/// `cuts[b-1] <= Float(x) < cuts[b]`; NaN goes to `missingBin`.
struct FeatureBins: Sendable {
    static let missingBin: UInt8 = 255
    /// Ascending cut points per feature, at most 254, so real bins are 0…254.
    let cuts: [[Float]]

    init(_ data: FeatureMatrix, maxBins: Int) {
        let limit = min(max(2, maxBins), 255) - 1
        var cuts: [[Float]] = []
        var column: [Float] = []
        column.reserveCapacity(data.rows)
        for j in 0..<data.columns {
            column.removeAll(keepingCapacity: true)
            for r in 0..<data.rows {
                let v = data[r, j]
                if !v.isNaN { column.append(Float(v)) }
            }
            column.sort()
            var distinct: [Float] = []
            for v in column where distinct.last != v { distinct.append(v) }
            var c: [Float] = []
            if distinct.count <= limit + 1 {
                c = Array(distinct.dropFirst())  // every distinct value starts its own bin
            } else {
                // Quantiles of the values (not of the distinct values), so dense regions get more bins.
                for q in 1...limit {
                    let v = column[min(column.count - 1, q * column.count / (limit + 1))]
                    if v > (c.last ?? distinct[0]) { c.append(v) }
                }
            }
            cuts.append(c)
        }
        self.cuts = cuts
    }

    @inline(__always) func bin(_ v: Double, feature j: Int) -> UInt8 {
        if v.isNaN { return Self.missingBin }
        let x = Float(v)
        let c = cuts[j]
        var lo = 0
        var hi = c.count
        while lo < hi {  // number of cuts <= x
            let mid = (lo + hi) / 2
            if c[mid] <= x { lo = mid + 1 } else { hi = mid }
        }
        return UInt8(lo)
    }

    /// Column-major bin numbers: `bins[j * rows + r]`.
    func binned(_ data: FeatureMatrix) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: data.rows * data.columns)
        for j in 0..<data.columns {
            for r in 0..<data.rows { out[j * data.rows + r] = bin(data[r, j], feature: j) }
        }
        return out
    }
}
