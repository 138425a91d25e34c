import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Training settings, named as in XGBoost so a data scientist reads them at once.
public struct GBDTParameters: Sendable, Equatable, Codable {
    /// Boosting rounds at most (early stopping may keep fewer).
    public var trees = 300
    public var maxDepth = 6
    public var learningRate = 0.1
    /// L2 penalty on leaf weights.
    public var lambda = 1.0
    /// Minimum loss reduction for a split.
    public var gamma = 0.0
    /// Minimum hessian sum per child: keeps rare positives from producing one-row leaves.
    public var minChildWeight = 1.0
    /// Share of rows drawn for each tree.
    public var subsample = 0.8
    /// Share of features drawn for each tree.
    public var columnSubsample = 0.8
    public var maxBins = 256
    /// Weight of positive rows in the loss (class imbalance).
    public var scalePosWeight = 1.0
    /// Stop when validation log-loss has not improved for this many rounds (0: never).
    public var earlyStoppingRounds = 30
    public var seed: UInt64 = 1
    /// Worker threads for histogram building.
    public var threads = 2

    public init() {}

    /// Each setting as text, for the artifact's record.
    public var record: [String: String] {
        [
            "trees": "\(trees)", "max_depth": "\(maxDepth)", "learning_rate": "\(learningRate)", "lambda": "\(lambda)",
            "gamma": "\(gamma)", "min_child_weight": "\(minChildWeight)", "subsample": "\(subsample)",
            "colsample_bytree": "\(columnSubsample)", "max_bins": "\(maxBins)", "scale_pos_weight": "\(scalePosWeight)",
            "early_stopping_rounds": "\(earlyStoppingRounds)", "seed": "\(seed)",
        ]
    }
}

/// What training produced, with the validation curve that chose the number of trees.
public struct GBDTFit: Sendable {
    public var ensemble: TreeEnsemble
    public var bestIteration: Int
    public var validationLogLoss: [Double]
}

/// Gradient-boosted trees for binary log-loss, grown depth-wise on quantile-bin
/// histograms (as XGBoost's `hist` method): per node, gradient and hessian sums
/// per bin, the best split over bins and both directions for missing values, and
/// the larger child's histogram by subtraction from its parent's.
public enum GBDTTrainer {
    public static func fit(
        _ train: FeatureMatrix, validation: FeatureMatrix? = nil, parameters p: GBDTParameters = GBDTParameters()
    )
        -> GBDTFit
    {
        precondition(train.rows > 0, "no training rows")
        let n = train.rows
        let f = train.columns
        let bins = FeatureBins(train, maxBins: p.maxBins)
        let binned = bins.binned(train, threads: p.threads)
        let validationBinned = validation.map { bins.binned($0) }
        let weights = train.labels.map { $0 ? p.scalePosWeight : 1 }
        let labels = train.labels.map { $0 ? 1.0 : 0.0 }
        let positiveShare = zip(weights, labels).reduce(0) { $0 + $1.0 * $1.1 } / weights.reduce(0, +)
        let base = logit(min(max(positiveShare, 1e-6), 1 - 1e-6))

        var margin = [Double](repeating: base, count: n)
        var validationMargin = [Double](repeating: base, count: validation?.rows ?? 0)
        var pairs = [Double](repeating: 0, count: 2 * n)  // gradient and hessian side by side: one cache line per row
        var rng = SplitMix(seed: p.seed)
        var builder = TreeBuilder(bins: bins, binned: binned, rows: n, features: f, parameters: p)
        var nodes: [TreeNode] = []
        var cover: [Float] = []
        var roots: [Int32] = []
        var losses: [Double] = []
        var best = Double.infinity
        var bestIteration = 0

        for round in 0..<p.trees {
            // Gradient and hessian straight into the interleaved pairs the histograms read.
            margin.withUnsafeBufferPointer { m in
                pairs.withUnsafeMutableBufferPointer { gh in
                    for i in 0..<n {
                        let prob = 1 / (1 + exp(-m[i]))
                        gh[2 * i] = weights[i] * (prob - labels[i])
                        gh[2 * i + 1] = max(weights[i] * prob * (1 - prob), 1e-16)
                    }
                }
            }
            var rows: [Int32] = []
            rows.reserveCapacity(n)
            for i in 0..<n where p.subsample >= 1 || rng.unit() < p.subsample { rows.append(Int32(i)) }
            var features = Array(0..<f)
            if p.columnSubsample < 1 {
                features.shuffle(using: &rng)
                features = Array(features.prefix(max(1, Int((Double(f) * p.columnSubsample).rounded(.up))))).sorted()
            }
            let tree = builder.grow(rows: &rows, pairs: pairs, features: features)

            // Append with absolute child indices; score every row through the new tree.
            let offset = Int32(nodes.count)
            roots.append(offset)
            for node in tree.nodes {
                var node = node
                if !node.isLeaf { node.left += offset }
                nodes.append(node)
            }
            cover.append(contentsOf: tree.cover)
            tree.addLeafValues(binned, features: f, to: &margin)
            if let validation, let vb = validationBinned {
                tree.addLeafValues(vb, features: f, to: &validationMargin)
                var loss = 0.0
                for i in 0..<validation.rows { loss += logLoss(margin: validationMargin[i], label: validation.labels[i]) }
                loss /= Double(max(1, validation.rows))
                losses.append(loss)
                if loss < best - 1e-12 {
                    best = loss
                    bestIteration = round + 1
                } else if p.earlyStoppingRounds > 0 && round + 1 - bestIteration >= p.earlyStoppingRounds {
                    break
                }
            } else {
                bestIteration = round + 1
            }
        }
        let ensemble = TreeEnsemble(nodes: nodes, roots: roots, cover: cover, baseMargin: base, featureCount: f)
        return GBDTFit(ensemble: ensemble.truncated(to: bestIteration), bestIteration: bestIteration, validationLogLoss: losses)
    }

    static func logit(_ p: Double) -> Double { log(p / (1 - p)) }

    /// Log-loss of one row from its margin, computed stably for large margins.
    static func logLoss(margin z: Double, label: Bool) -> Double {
        let s = label ? -z : z
        return s > 0 ? s + log1p(exp(-s)) : log1p(exp(s))
    }
}

/// One tree under construction, in the flat layout (siblings adjacent), with each
/// split's bin for scoring binned rows.
struct BuiltTree {
    var nodes: [TreeNode] = []
    var cover: [Float] = []
    var splitBin: [UInt8] = []
    var missingBin: [UInt8] = []

    /// Adds to each row's margin the value of the leaf its binned row reaches. As in
    /// `CompiledForest`: leaves loop to themselves, every row takes exactly `depth`
    /// branch-free steps, and four rows walk side by side so their loads overlap.
    func addLeafValues(_ binned: [UInt8], features f: Int, to margin: inout [Double]) {
        struct Step {
            var feature: Int32
            var left: Int32
            var splitBin: UInt8
            var missingBin: UInt8
            var missingLeft: UInt8
        }
        var depth = 0
        var steps: [Step] = []
        steps.reserveCapacity(nodes.count)
        var level = [Int](repeating: 0, count: nodes.count)
        for (i, n) in nodes.enumerated() {
            if n.isLeaf {
                steps.append(Step(feature: 0, left: Int32(i), splitBin: 255, missingBin: 0, missingLeft: 1))
            } else {
                steps.append(
                    Step(
                        feature: Int32(n.feature), left: n.left, splitBin: splitBin[i], missingBin: missingBin[i],
                        missingLeft: n.defaultLeft ? 1 : 0))
                level[Int(n.left)] = level[i] + 1
                level[Int(n.left) + 1] = level[i] + 1
                depth = max(depth, level[i] + 1)
            }
        }
        steps.withUnsafeBufferPointer { st in
            nodes.withUnsafeBufferPointer { nd in
                binned.withUnsafeBufferPointer { bn in
                    margin.withUnsafeMutableBufferPointer { m in
                        @inline(__always) func next(_ i: Int32, _ row: Int) -> Int32 {
                            let s = st[Int(i)]
                            let b = bn[row + Int(s.feature)]
                            let isMissing: UInt8 = b == s.missingBin ? 1 : 0
                            let below: UInt8 = b <= s.splitBin ? 1 : 0
                            let goLeft = isMissing & s.missingLeft | (1 &- isMissing) & below
                            return s.left &+ Int32(1 &- goLeft)
                        }
                        var r = 0
                        while r + 4 <= m.count {
                            var a: Int32 = 0
                            var b: Int32 = 0
                            var c: Int32 = 0
                            var d: Int32 = 0
                            for _ in 0..<depth {
                                a = next(a, r * f)
                                b = next(b, (r + 1) * f)
                                c = next(c, (r + 2) * f)
                                d = next(d, (r + 3) * f)
                            }
                            m[r] += Double(nd[Int(a)].value)
                            m[r + 1] += Double(nd[Int(b)].value)
                            m[r + 2] += Double(nd[Int(c)].value)
                            m[r + 3] += Double(nd[Int(d)].value)
                            r += 4
                        }
                        while r < m.count {
                            var a: Int32 = 0
                            for _ in 0..<depth { a = next(a, r * f) }
                            m[r] += Double(nd[Int(a)].value)
                            r += 1
                        }
                    }
                }
            }
        }
    }
}

/// Grows one tree depth-wise. Histograms hold (gradient, hessian) pairs per bin per feature.
struct TreeBuilder {
    let bins: FeatureBins
    let binned: [UInt8]
    let rows: Int
    let features: Int
    let p: GBDTParameters

    init(bins: FeatureBins, binned: [UInt8], rows: Int, features: Int, parameters: GBDTParameters) {
        self.bins = bins
        self.binned = binned
        self.rows = rows
        self.features = features
        self.p = parameters
    }

    struct Open {
        var id: Int
        var start: Int
        var end: Int
        var g: Double
        var h: Double
        var histogram: [Double]
    }

    struct Split {
        var gain = 0.0
        var feature = -1
        var bin = 0
        var defaultLeft = false
        var gl = 0.0
        var hl = 0.0
    }

    mutating func grow(rows order: inout [Int32], pairs: [Double], features use: [Int]) -> BuiltTree {
        var tree = BuiltTree()
        func addNode() -> Int {
            tree.nodes.append(.leaf(0))
            tree.cover.append(0)
            tree.splitBin.append(0)
            tree.missingBin.append(0)
            return tree.nodes.count - 1
        }
        var g0 = 0.0
        var h0 = 0.0
        for r in order {
            g0 += pairs[2 * Int(r)]
            h0 += pairs[2 * Int(r) + 1]
        }
        let root = addNode()
        var scratch = [Int32](repeating: 0, count: order.count)
        var open = [
            Open(id: root, start: 0, end: order.count, g: g0, h: h0, histogram: histogram(order, 0, order.count, pairs, use))
        ]
        for depth in 0...p.maxDepth {
            var next: [Open] = []
            for node in open {
                tree.cover[node.id] = Float(node.h)
                let split = depth < p.maxDepth ? bestSplit(node, use) : Split()
                guard split.feature >= 0 else {
                    tree.nodes[node.id] = .leaf(Float(-node.g / (node.h + p.lambda) * p.learningRate))
                    continue
                }
                let j = split.feature
                let l = addNode()
                _ = addNode()
                tree.nodes[node.id] = TreeNode(
                    threshold: bins.cuts[j][split.bin], feature: Int16(j), defaultLeft: split.defaultLeft, left: Int32(l),
                    value: 0)
                tree.splitBin[node.id] = UInt8(split.bin)
                tree.missingBin[node.id] = bins.missing[j]
                if depth + 1 == p.maxDepth {
                    // The children will be leaves: their sums are known, their rows and histograms are not needed.
                    for (id, g, h) in [(l, split.gl, split.hl), (l + 1, node.g - split.gl, node.h - split.hl)] {
                        tree.cover[id] = Float(h)
                        tree.nodes[id] = .leaf(Float(-g / (h + p.lambda) * p.learningRate))
                    }
                    continue
                }
                let i = partition(&order, &scratch, node.start, node.end, split)
                // Build the smaller child's histogram; the larger one is the parent's minus it.
                let leftSmaller = i - node.start <= node.end - i
                let small = leftSmaller ? (node.start, i) : (i, node.end)
                let smallHist = histogram(order, small.0, small.1, pairs, use)
                var largeHist = node.histogram
                for x in 0..<largeHist.count { largeHist[x] -= smallHist[x] }
                next.append(
                    Open(
                        id: l, start: node.start, end: i, g: split.gl, h: split.hl, histogram: leftSmaller ? smallHist : largeHist
                    ))
                next.append(
                    Open(
                        id: l + 1, start: i, end: node.end, g: node.g - split.gl, h: node.h - split.hl,
                        histogram: leftSmaller ? largeHist : smallHist))
            }
            open = next
            if open.isEmpty { break }
        }
        return tree
    }

    /// Stable partition of order[start..<end] by `split`: left rows first, each side in row
    /// order, so later passes read rows ascending. Returns where the right rows begin.
    func partition(_ order: inout [Int32], _ scratch: inout [Int32], _ start: Int, _ end: Int, _ split: Split) -> Int {
        let j = split.feature
        let bin = UInt8(split.bin)
        let missingLeft = split.defaultLeft
        let missing = bins.missing[j]
        let f = features
        var left = start
        var right = 0
        order.withUnsafeMutableBufferPointer { o in
            scratch.withUnsafeMutableBufferPointer { sc in
                binned.withUnsafeBufferPointer { bn in
                    for k in start..<end {
                        let r = o[k]
                        let b = bn[Int(r) * f + j]
                        if b == missing ? missingLeft : b <= bin {
                            o[left] = r
                            left += 1
                        } else {
                            sc[right] = r
                            right += 1
                        }
                    }
                    for k in 0..<right { o[left + k] = sc[k] }
                }
            }
        }
        return left
    }

    /// Gradient and hessian sums per bin for the rows order[start..<end], over the features in use.
    /// Large nodes are split into row chunks, one per worker, each with its own histogram, summed at the end.
    func histogram(_ order: [Int32], _ start: Int, _ end: Int, _ pairs: [Double], _ use: [Int]) -> [Double] {
        let size = bins.slots * 2
        let workers = max(1, min(p.threads, (end - start) / 20_000 + 1))
        var partial = [Double](repeating: 0, count: size * workers)
        partial.withUnsafeMutableBufferPointer { h in
            order.withUnsafeBufferPointer { o in
                binned.withUnsafeBufferPointer { bn in
                    pairs.withUnsafeBufferPointer { gh in
                        use.withUnsafeBufferPointer { u in
                            let task = HistogramTask(
                                partial: h, order: o, binned: bn, pairs: gh, use: u, offsets: bins.offsets, features: features,
                                size: size, start: start, end: end, workers: workers)
                            if workers == 1 {
                                task.fill(worker: 0)
                            } else {
                                DispatchQueue.concurrentPerform(iterations: workers) { task.fill(worker: $0) }
                            }
                        }
                    }
                }
            }
        }
        guard workers > 1 else { return partial }
        var hist = Array(partial[0..<size])
        for w in 1..<workers {
            for x in 0..<size { hist[x] += partial[w * size + x] }
        }
        return hist
    }

    func bestSplit(_ node: Open, _ use: [Int]) -> Split {
        var best = Split()
        guard node.h >= 2 * p.minChildWeight, node.end - node.start >= 2 else { return best }
        let parentScore = node.g * node.g / (node.h + p.lambda)
        node.histogram.withUnsafeBufferPointer { hist in
            for j in use {
                let m = bins.cuts[j].count
                guard m > 0 else { continue }
                let base = bins.offsets[j] * 2
                let gm = hist[base + Int(bins.missing[j]) * 2]
                let hm = hist[base + Int(bins.missing[j]) * 2 + 1]
                var gl = 0.0
                var hl = 0.0
                for b in 0..<m {
                    gl += hist[base + b * 2]
                    hl += hist[base + b * 2 + 1]
                    // Missing values right, then (when there are any) left.
                    for side in 0..<(hm > 0 ? 2 : 1) {
                        let missingLeft = side == 1
                        let GL = missingLeft ? gl + gm : gl
                        let HL = missingLeft ? hl + hm : hl
                        let GR = node.g - GL
                        let HR = node.h - HL
                        guard HL >= p.minChildWeight, HR >= p.minChildWeight else { continue }
                        let gain = 0.5 * (GL * GL / (HL + p.lambda) + GR * GR / (HR + p.lambda) - parentScore) - p.gamma
                        if gain > best.gain + 1e-12 {
                            // With no missing values seen, unseen ones follow the heavier side.
                            let defaultLeft = hm > 0 ? missingLeft : HL >= HR
                            best = Split(gain: gain, feature: j, bin: b, defaultLeft: defaultLeft, gl: GL, hl: HL)
                        }
                    }
                }
            }
        }
        return best
    }
}

/// The buffers one histogram is built from, shared by the worker threads.
/// `@unchecked Sendable` is sound here: the buffers outlive `concurrentPerform`
/// (it returns only when every worker has), the inputs are only read, and worker
/// `w` writes only `partial[w * size ..< (w + 1) * size]`, which no other worker touches.
struct HistogramTask: @unchecked Sendable {
    let partial: UnsafeMutableBufferPointer<Double>
    let order: UnsafeBufferPointer<Int32>
    let binned: UnsafeBufferPointer<UInt8>
    let pairs: UnsafeBufferPointer<Double>
    let use: UnsafeBufferPointer<Int>
    let offsets: [Int]
    let features: Int
    let size: Int
    let start: Int
    let end: Int
    let workers: Int

    func fill(worker w: Int) {
        let chunk = (end - start + workers - 1) / workers
        let from = start + w * chunk
        let to = min(end, from + chunk)
        guard from < to else { return }
        let hist = partial.baseAddress! + w * size
        for k in from..<to {
            let r = Int(order[k])
            let g = pairs[2 * r]
            let h = pairs[2 * r + 1]
            let row = r * features
            for j in use {
                let slot = (offsets[j] + Int(binned[row + j])) * 2
                hist[slot] += g
                hist[slot + 1] += h
            }
        }
    }
}
