import Dispatch

/// Quantile bins per feature: the histogram trainer works on small bin numbers
/// instead of raw values. Bin `b` of a feature holds values with
/// `cuts[b-1] <= Float(x) < cuts[b]`; NaN goes to the feature's own last bin,
/// `missing[j] = cuts[j].count + 1`, so each feature needs only as many histogram slots as it has bins.
struct FeatureBins: Sendable {
    static let sampleLimit = 200_000
    /// Ascending cut points per feature, at most 254, so real bins are 0…254.
    let cuts: [[Float]]

    init(_ data: FeatureMatrix, maxBins: Int) {
        let limit = min(max(2, maxBins), 255) - 1
        var cuts: [[Float]] = []
        var column: [Float] = []
        column.reserveCapacity(data.rows)
        // Quantiles from at most `sampleLimit` evenly spaced rows: sorting every value of
        // a million-row column per feature would cost more than the boosting.
        let stride = max(1, data.rows / Self.sampleLimit)
        for j in 0..<data.columns {
            column.removeAll(keepingCapacity: true)
            for r in Swift.stride(from: 0, to: data.rows, by: stride) {
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
        missing = cuts.map { UInt8($0.count + 1) }
        var offsets: [Int] = []
        var total = 0
        for c in cuts {
            offsets.append(total)
            total += c.count + 2
        }
        self.offsets = offsets
        slots = total
    }

    /// The bin that holds NaN, per feature.
    let missing: [UInt8]
    /// Where each feature's bins start in a histogram, and how many slots a histogram has in all.
    let offsets: [Int]
    let slots: Int

    @inline(__always) func bin(_ v: Double, feature j: Int) -> UInt8 {
        if v.isNaN { return missing[j] }
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

    /// Row-major bin numbers, `bins[r * columns + j]`: a row's bins share one cache line,
    /// so building a histogram touches each row once instead of once per feature.
    func binned(_ data: FeatureMatrix, threads: Int = 2) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: data.rows * data.columns)
        let columns = data.columns
        out.withUnsafeMutableBufferPointer { o in
            data.values.withUnsafeBufferPointer { v in
                let task = BinningTask(out: o, values: v, columns: columns, bins: self, workers: max(1, threads))
                DispatchQueue.concurrentPerform(iterations: task.workers) { task.fill(worker: $0) }
            }
        }
        return out
    }
}

/// Bins rows in chunks, one per worker. `@unchecked Sendable` is sound: the buffers
/// outlive `concurrentPerform`, `values` is only read, and worker `w` writes only its
/// own chunk of whole rows of `out`.
struct BinningTask: @unchecked Sendable {
    let out: UnsafeMutableBufferPointer<UInt8>
    let values: UnsafeBufferPointer<Double>
    let columns: Int
    let bins: FeatureBins
    let workers: Int

    func fill(worker w: Int) {
        let rows = values.count / max(1, columns)
        let chunk = (rows + workers - 1) / workers
        let from = min(rows, w * chunk) * columns
        let to = min(rows, (w + 1) * chunk) * columns
        for i in from..<to { out[i] = bins.bin(values[i], feature: i % columns) }
    }
}
