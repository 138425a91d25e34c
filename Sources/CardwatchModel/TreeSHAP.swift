/// Exact path-dependent TreeSHAP (Lundberg, Erion & Lee, 2018, algorithm 2): each
/// feature's contribution to one row's margin, using the training cover of every
/// node as the background distribution. The contributions plus `bias` equal the
/// margin exactly (up to rounding), which the tests check on random models.
public struct Explanation: Sendable {
    /// Contribution of each feature to the margin, in feature order.
    public var contributions: [Double]
    /// The expected margin: base margin plus every tree's cover-weighted mean leaf.
    public var bias: Double

    /// The `count` features that pushed the margin most, largest absolute contribution first.
    public func top(_ count: Int) -> [(feature: Int, contribution: Double)] {
        contributions.enumerated().sorted {
            abs($0.element) > abs($1.element) || (abs($0.element) == abs($1.element) && $0.offset < $1.offset)
        }
        .prefix(count).map { ($0.offset, $0.element) }
    }
}

extension TreeEnsemble {
    /// The reference algorithm, recursive over the tree with the path's weights (the tests
    /// hold `TreeExplainer`'s leaf tables to it).
    public func explain(_ x: UnsafeBufferPointer<Double>) -> Explanation {
        var phi = [Double](repeating: 0, count: featureCount)
        var bias = baseMargin
        var depth = 0
        for r in roots { depth = max(depth, self.depth(Int(r))) }
        // One flat scratch area for the paths of all recursion levels (as the reference C++ does).
        var scratch = [PathElement](repeating: PathElement(), count: (depth + 3) * (depth + 4) / 2 + 2)
        for r in roots {
            let root = Int(r)
            bias += expectedValue(root)
            scratch.withUnsafeMutableBufferPointer { path in
                recurse(node: root, x: x, phi: &phi, path: path, parentOffset: 0, uniqueDepth: 0, zero: 1, one: 1, feature: -1)
            }
        }
        return Explanation(contributions: phi, bias: bias)
    }
    func depth(_ i: Int) -> Int {
        nodes[i].isLeaf ? 0 : 1 + max(depth(Int(nodes[i].left)), depth(Int(nodes[i].left) + 1))
    }

    /// The cover-weighted mean leaf value below node `i`.
    func expectedValue(_ i: Int) -> Double {
        let n = nodes[i]
        if n.isLeaf { return Double(n.value) }
        let l = Int(n.left)
        let total = Double(cover[i])
        guard total > 0 else { return 0.5 * (expectedValue(l) + expectedValue(l + 1)) }
        return (Double(cover[l]) * expectedValue(l) + Double(cover[l + 1]) * expectedValue(l + 1)) / total
    }

    struct PathElement {
        var feature = -1
        var zero = 0.0
        var one = 0.0
        var weight = 0.0
    }

    /// As the reference C++ `tree_shap_recursive`: this level's path lives right after the
    /// parent's (`parentOffset + uniqueDepth + 1`) and starts as a copy of it.
    func recurse(
        node i: Int, x: UnsafeBufferPointer<Double>, phi: inout [Double], path: UnsafeMutableBufferPointer<PathElement>,
        parentOffset: Int, uniqueDepth: Int, zero: Double, one: Double, feature: Int
    ) {
        let o = parentOffset + uniqueDepth + 1
        for k in 0...uniqueDepth { path[o + k] = path[parentOffset + k] }
        Self.extend(path, o, uniqueDepth, zero, one, feature)
        var depth = uniqueDepth
        let node = nodes[i]
        if node.isLeaf {
            var k = 1
            while k <= depth {
                let w = Self.unwoundSum(path, o, depth, k)
                let e = path[o + k]
                phi[e.feature] += w * (e.one - e.zero) * Double(node.value)
                k += 1
            }
            return
        }
        let l = Int(node.left)
        let v = x[Int(node.feature)]
        let goLeft = v.isNaN ? node.defaultLeft : Float(v) < node.threshold
        let hot = goLeft ? l : l + 1
        let cold = goLeft ? l + 1 : l
        let total = Double(cover[i])
        let hotShare = total > 0 ? Double(cover[hot]) / total : 0.5
        let coldShare = total > 0 ? Double(cover[cold]) / total : 0.5
        var incomingZero = 1.0
        var incomingOne = 1.0
        // A feature already on the path: undo its earlier split and merge its fractions.
        if let k = (0...depth).first(where: { path[o + $0].feature == Int(node.feature) }) {
            incomingZero = path[o + k].zero
            incomingOne = path[o + k].one
            Self.unwind(path, o, depth, k)
            depth -= 1
        }
        recurse(
            node: hot, x: x, phi: &phi, path: path, parentOffset: o, uniqueDepth: depth + 1, zero: hotShare * incomingZero,
            one: incomingOne, feature: Int(node.feature))
        recurse(
            node: cold, x: x, phi: &phi, path: path, parentOffset: o, uniqueDepth: depth + 1, zero: coldShare * incomingZero,
            one: 0, feature: Int(node.feature))
    }

    static func extend(
        _ m: UnsafeMutableBufferPointer<PathElement>, _ o: Int, _ l: Int, _ zero: Double, _ one: Double, _ feature: Int
    ) {
        m[o + l] = PathElement(feature: feature, zero: zero, one: one, weight: l == 0 ? 1 : 0)
        var i = l - 1
        while i >= 0 {
            m[o + i + 1].weight += one * m[o + i].weight * Double(i + 1) / Double(l + 1)
            m[o + i].weight = zero * m[o + i].weight * Double(l - i) / Double(l + 1)
            i -= 1
        }
    }

    static func unwind(_ m: UnsafeMutableBufferPointer<PathElement>, _ o: Int, _ l: Int, _ k: Int) {
        let one = m[o + k].one
        let zero = m[o + k].zero
        var next = m[o + l].weight
        var j = l - 1
        while j >= 0 {
            if one != 0 {
                let t = m[o + j].weight
                m[o + j].weight = next * Double(l + 1) / (Double(j + 1) * one)
                next = t - m[o + j].weight * zero * Double(l - j) / Double(l + 1)
            } else {
                m[o + j].weight = m[o + j].weight * Double(l + 1) / (zero * Double(l - j))
            }
            j -= 1
        }
        for j in k..<l {
            m[o + j].feature = m[o + j + 1].feature
            m[o + j].zero = m[o + j + 1].zero
            m[o + j].one = m[o + j + 1].one
        }
    }

    static func unwoundSum(_ m: UnsafeMutableBufferPointer<PathElement>, _ o: Int, _ l: Int, _ k: Int) -> Double {
        let one = m[o + k].one
        let zero = m[o + k].zero
        var next = m[o + l].weight
        var total = 0.0
        var j = l - 1
        if one != 0 {
            while j >= 0 {
                let t = next / (Double(j + 1) * one)
                total += t
                next = m[o + j].weight - t * zero * Double(l - j)
                j -= 1
            }
        } else {
            while j >= 0 {
                total += m[o + j].weight / (Double(l - j) * zero)
                j -= 1
            }
        }
        return total * Double(l + 1)
    }
}

/// The same exact path-dependent TreeSHAP, several times faster per row, from tables
/// built once per model (in the spirit of Yang's Fast TreeSHAP v2). For a leaf with value
/// v whose path holds the distinct features F (n of them), each with its zero fraction
/// z_j (the product of the cover shares of the path's splits on j), and for a row that
/// follows the path's splits on exactly the features P ⊆ F, the contribution is
///
///     φ_i += v · Z(F∖P) · (1 − z_i) · H(P∖{i})   for i ∈ P
///     φ_i −= v · Z(F∖P) · H(P)                   for i ∈ F∖P
///
/// with Z(T) = Π_{j∈T} z_j and H(T) = Σ_{S⊆T} |S|!(n−|S|−1)!/n! · Z(T∖S), which depends
/// on the leaf only, so it is tabulated for every T (2ⁿ values). A row then costs one
/// split test per inner node and O(n) per leaf instead of the recursion's O(D²) per node.
/// Trees with a leaf of more than `maxTabulated` distinct path features use the recursion.
public struct TreeExplainer: Sendable {
    public static let maxTabulated = 10
    public let ensemble: TreeEnsemble
    let bias: Double
    let tabulated: Bool
    /// Per leaf: value, where its path splits, distinct features and H table start.
    let leaves: [Leaf]
    /// Per path split, in leaf order.
    let pathSteps: [PathStep]
    let features: [Int32]
    let zeros: [Double]
    let tables: [Double]
    let treeLeaves: [Range<Int>]
    let scratch: Int

    struct Leaf {
        var value: Double
        /// Its path's splits in `pathSteps`.
        var stepStart: Int32
        var stepEnd: Int32
        /// Its distinct features in `features` and `zeros`, and where its H table starts.
        var featureStart: Int32
        var featureCount: Int32
        var table: Int32
    }

    /// A split on a leaf's path: the node, 1 if the path goes left there, and which distinct
    /// feature (0..<n) of the leaf it tests.
    struct PathStep {
        var node: Int32
        var left: UInt8
        var slot: UInt8
    }

    public init(_ e: TreeEnsemble) {
        ensemble = e
        var depth = 0
        var bias = e.baseMargin
        for r in e.roots {
            depth = max(depth, e.depth(Int(r)))
            bias += e.expectedValue(Int(r))
        }
        self.bias = bias
        scratch = (depth + 3) * (depth + 4) / 2 + 2
        var leaves: [Leaf] = []
        var pathSteps: [PathStep] = []
        var features: [Int32] = []
        var zeros: [Double] = []
        var tables: [Double] = []
        var treeLeaves: [Range<Int>] = []
        var tabulated = true
        // Shapley weights w(s, n) = s!(n−s−1)!/n!.
        func weight(_ s: Int, _ n: Int) -> Double {
            var w = 1.0 / Double(n)
            for k in 0..<s { w *= Double(k + 1) / Double(n - 1 - k) }
            return w
        }
        outer: for r in e.roots {
            let first = leaves.count
            // Depth-first over the tree, carrying the path.
            var stack: [(node: Int, path: [(node: Int32, left: Bool)])] = [(Int(r), [])]
            while let (i, path) = stack.popLast() {
                let node = e.nodes[i]
                if !node.isLeaf {
                    stack.append((Int(node.left) + 1, path + [(Int32(i), false)]))
                    stack.append((Int(node.left), path + [(Int32(i), true)]))
                    continue
                }
                var distinct: [Int32] = []
                var z: [Double] = []
                let stepStart = pathSteps.count
                for (n, left) in path {
                    let split = e.nodes[Int(n)]
                    let child = Int(split.left) + (left ? 0 : 1)
                    let total = Double(e.cover[Int(n)])
                    let share = total > 0 ? Double(e.cover[child]) / total : 0.5
                    let f = Int32(split.feature)
                    let slot: Int
                    if let k = distinct.firstIndex(of: f) {
                        slot = k
                        z[k] *= share
                    } else {
                        slot = distinct.count
                        distinct.append(f)
                        z.append(share)
                    }
                    pathSteps.append(PathStep(node: n, left: left ? 1 : 0, slot: UInt8(slot)))
                }
                let n = distinct.count
                if n > Self.maxTabulated {
                    tabulated = false
                    break outer
                }
                let featureStart = features.count
                features += distinct
                zeros += z
                let table = tables.count
                if n > 0 {
                    for t in 0..<(1 << n) {
                        var h = 0.0
                        var sub = t
                        while true {  // every S ⊆ T
                            var product = 1.0
                            for j in 0..<n where (t & ~sub) & (1 << j) != 0 { product *= z[j] }
                            h += weight(sub.nonzeroBitCount, n) * product
                            if sub == 0 { break }
                            sub = (sub - 1) & t
                        }
                        tables.append(h)
                    }
                }
                leaves.append(
                    Leaf(
                        value: Double(node.value), stepStart: Int32(stepStart), stepEnd: Int32(pathSteps.count),
                        featureStart: Int32(featureStart), featureCount: Int32(n), table: Int32(table)))
            }
            treeLeaves.append(first..<leaves.count)
        }
        self.tabulated = tabulated
        self.leaves = tabulated ? leaves : []
        self.pathSteps = tabulated ? pathSteps : []
        self.features = tabulated ? features : []
        self.zeros = tabulated ? zeros : []
        self.tables = tabulated ? tables : []
        self.treeLeaves = tabulated ? treeLeaves : []
    }

    public func explain(_ x: UnsafeBufferPointer<Double>) -> Explanation {
        var phi = [Double](repeating: 0, count: ensemble.featureCount)
        phi.withUnsafeMutableBufferPointer { accumulate(x, trees: 0..<ensemble.treeCount, into: $0) }
        return Explanation(contributions: phi, bias: bias)
    }

    /// Adds the contributions of `trees` alone to `phi`: the trees' contributions add up,
    /// so parts of one row's explanation can be computed apart (on several threads) and summed.
    public func accumulate(_ x: UnsafeBufferPointer<Double>, trees: Range<Int>, into phi: UnsafeMutableBufferPointer<Double>) {
        precondition(phi.count == ensemble.featureCount && trees.clamped(to: 0..<ensemble.treeCount) == trees)
        guard !trees.isEmpty else { return }
        guard tabulated else {
            var path = [TreeEnsemble.PathElement](repeating: TreeEnsemble.PathElement(), count: scratch)
            var sum = [Double](repeating: 0, count: phi.count)
            path.withUnsafeMutableBufferPointer { path in
                for r in ensemble.roots[trees] {
                    ensemble.recurse(
                        node: Int(r), x: x, phi: &sum, path: path, parentOffset: 0, uniqueDepth: 0, zero: 1, one: 1,
                        feature: -1)
                }
            }
            for j in phi.indices { phi[j] += sum[j] }
            return
        }
        // The trees' nodes and leaves are contiguous, in tree order.
        let firstNode = Int(ensemble.roots[trees.lowerBound])
        let endNode = trees.upperBound < ensemble.treeCount ? Int(ensemble.roots[trees.upperBound]) : ensemble.nodes.count
        let leafRange = treeLeaves[trees.lowerBound].lowerBound..<treeLeaves[trees.upperBound - 1].upperBound
        // Raw pointers, and no branches on which way the row goes (data, so unpredictable):
        // 125 → 104 µs a row of a 174-tree model (`cardwatch bench model`, BENCHMARKS.md).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: endNode - firstNode) { goes in
            // Which way the row goes at every inner node, once: 1 left, 0 right.
            ensemble.nodes.withUnsafeBufferPointer { nodes in
                for i in firstNode..<endNode {
                    let node = nodes[i]
                    guard !node.isLeaf else { continue }
                    let v = x[Int(node.feature)]
                    goes[i - firstNode] = (v.isNaN ? node.defaultLeft : Float(v) < node.threshold) ? 1 : 0
                }
            }
            leaves.withUnsafeBufferPointer { leaves in
                pathSteps.withUnsafeBufferPointer { steps in
                    features.withUnsafeBufferPointer { features in
                        zeros.withUnsafeBufferPointer { zeros in
                            tables.withUnsafeBufferPointer { tables in
                                for l in leafRange {
                                    let leaf = leaves[l]
                                    let n = Int(leaf.featureCount)
                                    guard n > 0 else { continue }
                                    let f0 = Int(leaf.featureStart)
                                    // P: the features whose splits the row follows.
                                    var p = (1 &<< n) - 1
                                    for s in Int(leaf.stepStart)..<Int(leaf.stepEnd) {
                                        let step = steps[s]
                                        let differs = Int(goes[Int(step.node) - firstNode] ^ step.left)
                                        p &= ~(differs &<< Int(step.slot))
                                    }
                                    var a = leaf.value  // v · Z(F∖P)
                                    for j in 0..<n { a *= (p &>> j) & 1 != 0 ? 1 : zeros[f0 + j] }
                                    let table = Int(leaf.table)
                                    let hp = a * tables[table + p]
                                    for j in 0..<n {
                                        let z = zeros[f0 + j]
                                        let h = tables[table + (p & ~(1 &<< j))]
                                        phi[Int(features[f0 + j])] += (p &>> j) & 1 != 0 ? a * (1 - z) * h : -hp
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
