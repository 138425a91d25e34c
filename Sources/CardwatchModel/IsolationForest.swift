/// Isolation Forest settings, named as in scikit-learn (`n_estimators`, `max_samples`).
public struct IsolationForestParameters: Sendable, Equatable, Codable {
    /// Trees (t).
    public var trees = 300
    /// Rows drawn without replacement for each tree (ψ); fewer when the data has fewer.
    public var sampleSize = 256
    public var seed: UInt64 = 1

    public init() {}

    /// Each setting as text, for the artifact's record.
    public var record: [String: String] {
        ["trees": "\(trees)", "sample_size": "\(sampleSize)", "seed": "\(seed)"]
    }
}

/// The Isolation Forest of Liu, Ting & Zhou (2008), unsupervised: each tree isolates a random
/// subsample by splits on a random feature at a uniform random value between the node's
/// minimum and maximum, to a height limit of ⌈log₂ ψ⌉. Anomalies are isolated in few splits,
/// so a short expected path length E[h(x)] means an anomaly.
///
/// The forest is stored as a `TreeEnsemble`, so the scorer, the compiled forest and TreeSHAP
/// serve it unchanged: a leaf at depth e holding n training rows stores −(e + c(n)) / t and the
/// base margin is 0, so the margin is −E[h(x)], and `Calibration.isolation(normaliser: c(ψ))`
/// maps it to the anomaly score s = 2^(−E[h]/c(ψ)) in (0, 1]. The cover of a node is the
/// number of subsample rows that reached it (TreeSHAP's background distribution).
///
/// Splits follow `TreeNode`'s rule, in single precision: `Float(x) < threshold` goes left, and
/// the threshold is drawn in (min, max] so that both children are non-empty. Missing values
/// (NaN) do not take part in choosing the split; they go to the child that received more of
/// the node's present values (`defaultLeft`), so a missing value is never isolated for being
/// missing. A feature whose present values are all equal in a node (or absent) is not split
/// on there; a node where every feature is so becomes a leaf, as in the paper.
///
/// c(n) uses exact harmonic numbers (the paper approximates H(i) by ln i + γ).
public enum IsolationForest {
    /// c(n) = 2H(n−1) − 2(n−1)/n, the average path length of an unsuccessful search in a
    /// binary search tree of n keys: c(1) = 0, c(2) = 1.
    public static func averagePathLength(_ n: Int) -> Double {
        guard n > 1 else { return 0 }
        var harmonic = 0.0
        for i in 1..<n { harmonic += 1 / Double(i) }
        return 2 * harmonic - 2 * Double(n - 1) / Double(n)
    }

    /// The subsample size a fit on `rows` rows uses: ψ, or every row when there are fewer.
    public static func effectiveSampleSize(rows: Int, parameters p: IsolationForestParameters) -> Int {
        max(1, min(p.sampleSize, rows))
    }

    /// The map from the margin (−E[h]) to the anomaly score, for a forest fitted on `rows` rows.
    public static func calibration(rows: Int, parameters p: IsolationForestParameters) -> Calibration {
        // c(1) = 0 would divide by zero; a forest of one-row trees scores every row 2^0 = 1 … or 0.5 with c = 1.
        .isolation(normaliser: max(1, averagePathLength(effectiveSampleSize(rows: rows, parameters: p))))
    }

    /// Fits `p.trees` isolation trees on the rows of `data` (its labels are not read).
    /// Deterministic for a seed: tree k draws from its own generator, seeded by the seed and k.
    public static func fit(_ data: FeatureMatrix, parameters p: IsolationForestParameters = IsolationForestParameters())
        -> TreeEnsemble
    {
        precondition(data.rows > 0, "an isolation forest needs at least one row")
        precondition(p.trees > 0 && p.sampleSize > 0, "an isolation forest needs trees and a sample size")
        let psi = effectiveSampleSize(rows: data.rows, parameters: p)
        var builder = TreeGrower(columns: data.columns, sampleSize: psi, trees: p.trees)
        builder.nodes.reserveCapacity(p.trees * (2 * psi - 1))
        builder.cover.reserveCapacity(p.trees * (2 * psi - 1))
        var roots: [Int32] = []
        roots.reserveCapacity(p.trees)
        var chosen = Set<Int>(minimumCapacity: psi)
        data.values.withUnsafeBufferPointer { values in
            for t in 0..<p.trees {
                var rng = SplitMix(seed: p.seed ^ (UInt64(t) &+ 1) &* 0xD1B5_4A32_D192_ED03)
                _ = rng.next()
                // Floyd's algorithm: ψ distinct rows of n in ψ draws, in a deterministic order.
                chosen.removeAll(keepingCapacity: true)
                var k = 0
                for j in (data.rows - psi)..<data.rows {
                    let r = Int(rng.next() % UInt64(j + 1))
                    let row = chosen.insert(r).inserted ? r : j
                    if row == j { chosen.insert(j) }
                    builder.gather(row: row, into: k, from: values)
                    k += 1
                }
                roots.append(Int32(builder.nodes.count))
                builder.grow(&rng)
            }
        }
        return TreeEnsemble(nodes: builder.nodes, roots: roots, cover: builder.cover, baseMargin: 0, featureCount: data.columns)
    }
}

/// Grows one isolation tree at a time over a subsample held column by column in single precision.
struct TreeGrower {
    let columns: Int
    let sampleSize: Int
    let trees: Int
    let heightLimit: Int
    /// The subsample, column-major: `sample[f * sampleSize + k]`.
    var sample: [Float]
    /// Subsample positions, partitioned in place as the tree grows (a node owns a range).
    var order: [Int32]
    /// Features not yet found constant in the current node; the first `remaining` are candidates.
    var features: [Int16]
    /// c(n) for n in 0...sampleSize.
    let pathLength: [Double]
    var nodes: [TreeNode] = []
    var cover: [Float] = []

    init(columns: Int, sampleSize: Int, trees: Int) {
        self.columns = columns
        self.sampleSize = sampleSize
        self.trees = trees
        var limit = 0
        while (1 << limit) < max(2, sampleSize) { limit += 1 }
        heightLimit = limit
        sample = [Float](repeating: 0, count: columns * sampleSize)
        order = [Int32](repeating: 0, count: sampleSize)
        features = (0..<columns).map { Int16($0) }
        pathLength = (0...sampleSize).map(IsolationForest.averagePathLength)
    }

    /// Copies data row `row` into subsample position `k`, in single precision, clamped to the
    /// finite range as the compiled forest clamps what it scores.
    mutating func gather(row: Int, into k: Int, from values: UnsafeBufferPointer<Double>) {
        let base = row * columns
        for f in 0..<columns {
            let v = values[base + f]
            sample[f * sampleSize + k] =
                v.isNaN ? .nan : Float(max(-Double(Float.greatestFiniteMagnitude), min(Double(Float.greatestFiniteMagnitude), v)))
        }
    }

    /// Appends the tree over the current subsample: nodes in pairs of siblings, each child after its parent.
    mutating func grow(_ rng: inout SplitMix) {
        for k in 0..<sampleSize { order[k] = Int32(k) }
        nodes.append(.leaf(0))
        cover.append(0)
        // Pending nodes: index, subsample range, depth.
        var stack: [(node: Int, lo: Int, hi: Int, depth: Int)] = [(nodes.count - 1, 0, sampleSize, 0)]
        while let (i, lo, hi, depth) = stack.popLast() {
            cover[i] = Float(hi - lo)
            guard depth < heightLimit, hi - lo > 1, let split = chooseSplit(lo, hi, &rng) else {
                nodes[i] = .leaf(Float(-(Double(depth) + pathLength[hi - lo]) / Double(trees)))
                continue
            }
            let mid = partition(lo, hi, split)
            let left = nodes.count
            nodes[i] = TreeNode(
                threshold: split.threshold, feature: split.feature, defaultLeft: split.missingLeft, left: Int32(left), value: 0)
            nodes.append(.leaf(0))
            nodes.append(.leaf(0))
            cover.append(0)
            cover.append(0)
            stack.append((left + 1, mid, hi, depth + 1))
            stack.append((left, lo, mid, depth + 1))
        }
    }

    /// A random feature among those with two distinct present values in the node, and a
    /// uniform random threshold in (min, max]; nil when every feature is constant here.
    mutating func chooseSplit(_ lo: Int, _ hi: Int, _ rng: inout SplitMix) -> (
        feature: Int16, threshold: Float, missingLeft: Bool
    )? {
        var remaining = columns
        while remaining > 0 {
            let pick = Int(rng.next() % UInt64(remaining))
            let f = Int(features[pick])
            let column = f * sampleSize
            var low = Float.infinity
            var high = -Float.infinity
            for k in lo..<hi {
                let v = sample[column + Int(order[k])]
                if v < low { low = v }
                if v > high { high = v }  // NaN fails both comparisons
            }
            guard high > low else {
                remaining -= 1
                features.swapAt(pick, remaining)
                continue
            }
            var threshold = Float(Double(low) + rng.unit() * (Double(high) - Double(low)))
            if !(threshold > low) { threshold = low.nextUp }
            if threshold > high { threshold = high }
            var below = 0
            var present = 0
            for k in lo..<hi {
                let v = sample[column + Int(order[k])]
                if !v.isNaN {
                    present += 1
                    if v < threshold { below += 1 }
                }
            }
            return (Int16(f), threshold, below >= present - below)
        }
        return nil
    }

    /// Puts the rows that go left first; returns where the right child's rows start.
    mutating func partition(_ lo: Int, _ hi: Int, _ split: (feature: Int16, threshold: Float, missingLeft: Bool)) -> Int {
        let column = Int(split.feature) * sampleSize
        var a = lo
        var b = hi - 1
        while a <= b {
            let v = sample[column + Int(order[a])]
            if v.isNaN ? split.missingLeft : v < split.threshold {
                a += 1
            } else {
                order.swapAt(a, b)
                b -= 1
            }
        }
        return a
    }
}
