import Dispatch

/// Random-forest settings, named as in scikit-learn's `RandomForestClassifier` where one exists.
public struct ForestParameters: Sendable, Equatable, Codable {
    public var trees = 100
    public var maxDepth = 12
    /// Minimum bootstrap weight per leaf (`min_samples_leaf` when rows weigh 1).
    public var minChildWeight = 1.0
    /// Features each node chooses its split among (`max_features`); nil: √features, rounded.
    public var featuresPerNode: Int?
    /// Bootstrap draws per tree as a share of the rows (`max_samples`).
    public var sampleShare = 1.0
    /// Weight of fraud rows, so leaves hold weighted fraud shares (`class_weight`).
    public var scalePosWeight = 1.0
    public var maxBins = 256
    public var seed: UInt64 = 1
    /// Trees grown at once, one per thread.
    public var threads = 2

    public init() {}

    /// Each setting as text, for the artifact's record.
    public var record: [String: String] {
        [
            "trees": "\(trees)", "max_depth": "\(maxDepth)", "min_child_weight": "\(minChildWeight)",
            "features_per_node": featuresPerNode.map { "\($0)" } ?? "sqrt", "sample_share": "\(sampleShare)",
            "scale_pos_weight": "\(scalePosWeight)", "max_bins": "\(maxBins)", "seed": "\(seed)",
        ]
    }
}

/// Bagged trees with random features per node: each tree is grown by the GBDT's histogram
/// builder on a bootstrap sample, with gradient −(weight · label) and hessian weight per
/// row (a row drawn k times counts k times), no L2 penalty and a learning rate of 1. A leaf's
/// value −G/H is then the weighted fraud share of the bootstrap rows reaching it, and a
/// split's gain GL²/HL + GR²/HR − G²/H is the drop in squared error, which for 0/1 labels
/// is the drop in Gini impurity (scikit-learn's criterion). The ensemble stores each leaf
/// divided by the number of trees with base 0, so its margin is the forest's average fraud
/// share and the cover (bootstrap weight per node) serves TreeSHAP.
public enum ForestTrainer {
    public static func fit(_ train: FeatureMatrix, parameters p: ForestParameters = ForestParameters(), weights: [Double]? = nil)
        -> TreeEnsemble
    {
        precondition(train.rows > 0, "no training rows")
        precondition(weights == nil || weights!.count == train.rows, "one weight per row")
        let n = train.rows
        let f = train.columns
        let bins = FeatureBins(train, maxBins: p.maxBins, threads: p.threads)
        let binned = bins.binned(train, threads: p.threads)
        let rowWeights = (0..<n).map { i in (weights?[i] ?? 1) * (train.labels[i] ? p.scalePosWeight : 1) }
        let grower = TreeGrowth(
            bins: bins, binned: binned, labels: train.labels, weights: rowWeights, features: f,
            parameters: p, builder: builderParameters(p))
        var built = [BuiltTree?](repeating: nil, count: p.trees)
        let workers = max(1, min(p.threads, p.trees))
        built.withUnsafeMutableBufferPointer { out in
            let task = ForestTask(out: out, grower: grower, workers: workers)
            DispatchQueue.concurrentPerform(iterations: workers) { task.run(worker: $0) }
        }
        var nodes: [TreeNode] = []
        var cover: [Float] = []
        var roots: [Int32] = []
        let share = Float(1) / Float(p.trees)
        for tree in built {
            let offset = Int32(nodes.count)
            roots.append(offset)
            for var node in tree!.nodes {
                if node.isLeaf { node.value *= share } else { node.left += offset }
                nodes.append(node)
            }
            cover.append(contentsOf: tree!.cover)
        }
        return TreeEnsemble(nodes: nodes, roots: roots, cover: cover, baseMargin: 0, featureCount: f)
    }

    /// The tree builder's settings that make its leaves fraud shares and its gains impurity drops.
    static func builderParameters(_ p: ForestParameters) -> GBDTParameters {
        var b = GBDTParameters()
        b.maxDepth = p.maxDepth
        b.learningRate = 1
        b.lambda = 0
        b.gamma = 0
        b.minChildWeight = max(p.minChildWeight, 1e-9)  // also keeps GL²/HL defined with no penalty
        b.maxBins = p.maxBins
        return b
    }

    /// How many times each row is drawn into tree `t`'s bootstrap sample; a function of the
    /// seed and `t` only, so the forest does not depend on the number of threads.
    static func bootstrap(tree t: Int, rows n: Int, parameters p: ForestParameters) -> (counts: [UInt32], rng: SplitMix) {
        var rng = SplitMix(seed: p.seed ^ (UInt64(t + 1) &* 0xD1B5_4A32_D192_ED03))
        var counts = [UInt32](repeating: 0, count: n)
        let draws = max(1, Int((Double(n) * p.sampleShare).rounded()))
        for _ in 0..<draws { counts[Int(UInt64(n).multipliedFullWidth(by: rng.next()).high)] += 1 }
        return (counts, rng)
    }
}

/// What every tree of one forest shares: the binned rows, labels and weights (read only).
struct TreeGrowth: Sendable {
    let bins: FeatureBins
    let binned: [UInt8]
    let labels: [Bool]
    let weights: [Double]
    let features: Int
    let parameters: ForestParameters
    let builder: GBDTParameters

    /// Grows tree `t` on its bootstrap sample with `builder` (one per thread).
    func grow(tree t: Int, with builder: inout TreeBuilder) -> BuiltTree {
        let n = labels.count
        var (counts, rng) = ForestTrainer.bootstrap(tree: t, rows: n, parameters: parameters)
        var pairs = [Double](repeating: 0, count: 2 * n)
        var rows = [Int32](repeating: 0, count: n)
        var count = 0
        for i in 0..<n where counts[i] > 0 {
            let w = weights[i] * Double(counts[i])
            pairs[2 * i] = labels[i] ? -w : 0
            pairs[2 * i + 1] = w
            rows[count] = Int32(i)
            count += 1
        }
        counts = []
        builder.nodeRNG = SplitMix(seed: rng.next())
        return builder.grow(rows: &rows, count: count, pairs: pairs, features: Array(0..<features))
    }
}

/// Trees `w`, `w + workers`, … per worker, each worker with its own builder (and a team of
/// one). `@unchecked Sendable` is sound: `out` outlives `concurrentPerform`, `grower` is
/// only read, and each worker writes only the elements of `out` for its own trees.
struct ForestTask: @unchecked Sendable {
    let out: UnsafeMutableBufferPointer<BuiltTree?>
    let grower: TreeGrowth
    let workers: Int

    func run(worker w: Int) {
        let team = WorkerTeam(size: 1)
        defer { team.shutdown() }
        let p = grower.parameters
        var builder = TreeBuilder(
            bins: grower.bins, binned: grower.binned, rows: grower.labels.count, features: grower.features,
            parameters: grower.builder, team: team)
        builder.featuresPerNode =
            p.featuresPerNode ?? max(1, Int(Double(grower.features).squareRoot().rounded()))
        for t in Swift.stride(from: w, to: out.count, by: workers) { out[t] = grower.grow(tree: t, with: &builder) }
    }
}
