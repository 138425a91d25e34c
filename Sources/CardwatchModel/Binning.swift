import Dispatch

/// Quantile bins per feature: the histogram trainer works on small bin numbers
/// instead of raw values. Bin `b` of a feature holds values with
/// `cuts[b-1] <= Float(x) < cuts[b]`; NaN goes to the feature's own last bin,
/// `missing[j] = cuts[j].count + 1`, so each feature needs only as many histogram slots as it has bins.
struct FeatureBins: Sendable {
    static let sampleLimit = 200_000
    /// Ascending cut points per feature, at most 254, so real bins are 0…254.
    let cuts: [[Float]]

    init(_ data: FeatureMatrix, maxBins: Int, threads: Int = 2) {
        let limit = min(max(2, maxBins), 255) - 1
        var cuts = [[Float]](repeating: [], count: data.columns)
        // Quantiles from at most `sampleLimit` evenly spaced rows: sorting every value of
        // a million-row column per feature would cost more than the boosting.
        let stride = max(1, data.rows / Self.sampleLimit)
        let workers = max(1, min(threads, data.columns))
        cuts.withUnsafeMutableBufferPointer { out in
            let task = CutTask(out: out, data: data, stride: stride, limit: limit, workers: workers)
            DispatchQueue.concurrentPerform(iterations: workers) { task.run(worker: $0) }
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

/// Cut points of features `w`, `w + workers`, … per worker. `@unchecked Sendable` is sound:
/// `out` outlives `concurrentPerform`, `data` is only read, and each worker writes only
/// the elements of `out` for its own features.
struct CutTask: @unchecked Sendable {
    let out: UnsafeMutableBufferPointer<[Float]>
    let data: FeatureMatrix
    let stride: Int
    let limit: Int
    let workers: Int

    func run(worker w: Int) {
        var column: [Float] = []
        column.reserveCapacity(data.rows / stride + 1)
        for j in Swift.stride(from: w, to: data.columns, by: workers) {
            column.removeAll(keepingCapacity: true)
            for r in Swift.stride(from: 0, to: data.rows, by: stride) {
                let v = data[r, j]
                if !v.isNaN { column.append(Float(v)) }
            }
            column.sort()
            out[j] = Self.cuts(sorted: column, limit: limit)
        }
    }

    /// At most `limit` cut points for sorted values, as XGBoost's `hist` sketch places them:
    /// with few distinct values (counts, flags), one bin per value; otherwise quantile
    /// ranks evenly spaced between the last row of the smallest value and the first row
    /// of the largest, so a heavy point mass (many zeros, say) takes one bin and leaves
    /// the others to the values around it.
    static func cuts(sorted column: [Float], limit: Int) -> [Float] {
        guard let smallest = column.first, let largest = column.last, smallest < largest else { return [] }
        var distinct: [Float] = []
        for v in column where v != distinct.last {
            distinct.append(v)
            if distinct.count > limit + 1 { break }
        }
        if distinct.count <= limit + 1 { return Array(distinct.dropFirst()) }
        let low = column.firstIndex { $0 != smallest }!
        let high = column.count - 1 - column.lastIndex { $0 != largest }!
        let span = column.count - low - high
        var c: [Float] = []
        for q in 1..<limit {
            let v = column[low + q * span / limit]
            if v > (c.last ?? smallest) { c.append(v) }
        }
        return c
    }
}
