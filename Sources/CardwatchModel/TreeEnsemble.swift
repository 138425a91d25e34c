#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One node of a flattened tree. Siblings are adjacent (`right == left + 1`), so a
/// node is 16 bytes and a walk touches one array.
public struct TreeNode: Sendable, Equatable, Codable {
    /// Go left when `Float(x[feature]) < threshold` (XGBoost's rule, in single precision).
    public var threshold: Float
    /// The feature tested; -1 marks a leaf.
    public var feature: Int16
    /// Where a missing value (NaN) goes.
    public var defaultLeft: Bool
    /// Index of the left child (the right child follows it); unused in leaves.
    public var left: Int32
    /// The leaf's contribution to the margin; unused in inner nodes.
    public var value: Float

    public init(threshold: Float, feature: Int16, defaultLeft: Bool, left: Int32, value: Float) {
        self.threshold = threshold
        self.feature = feature
        self.defaultLeft = defaultLeft
        self.left = left
        self.value = value
    }

    public static func leaf(_ value: Float) -> TreeNode {
        TreeNode(threshold: 0, feature: -1, defaultLeft: false, left: -1, value: value)
    }

    @inline(__always) public var isLeaf: Bool { feature < 0 }
}

/// A gradient-boosted ensemble: every tree's nodes in one array, scored by summing
/// the leaves each transaction reaches onto a base margin.
public struct TreeEnsemble: Sendable, Equatable, Codable {
    public var nodes: [TreeNode]
    /// First node of each tree.
    public var roots: [Int32]
    /// Sum of the hessians that reached each node in training: TreeSHAP's weights.
    public var cover: [Float]
    public var baseMargin: Double
    public var featureCount: Int

    public init(nodes: [TreeNode], roots: [Int32], cover: [Float], baseMargin: Double, featureCount: Int) {
        self.nodes = nodes
        self.roots = roots
        self.cover = cover
        self.baseMargin = baseMargin
        self.featureCount = featureCount
    }

    public var treeCount: Int { roots.count }

    /// The raw margin (log-odds) for one row; allocates nothing.
    @inlinable
    public func margin(_ x: UnsafeBufferPointer<Double>) -> Double {
        var sum = baseMargin
        nodes.withUnsafeBufferPointer { n in
            for root in roots {
                var i = Int(root)
                while true {
                    let node = n[i]
                    if node.isLeaf {
                        sum += Double(node.value)
                        break
                    }
                    let v = x[Int(node.feature)]
                    let goLeft = v.isNaN ? node.defaultLeft : Float(v) < node.threshold
                    i = Int(node.left) + (goLeft ? 0 : 1)
                }
            }
        }
        return sum
    }

    /// Index of the leaf a row reaches in tree `t`.
    public func leaf(_ x: UnsafeBufferPointer<Double>, tree t: Int) -> Int {
        var i = Int(roots[t])
        while !nodes[i].isLeaf {
            let node = nodes[i]
            let v = x[Int(node.feature)]
            let goLeft = v.isNaN ? node.defaultLeft : Float(v) < node.threshold
            i = Int(node.left) + (goLeft ? 0 : 1)
        }
        return i
    }

    /// The average of two ensembles' margins as one ensemble: both sets of trees with their
    /// leaves halved (the cover, TreeSHAP's weights within a tree, unchanged).
    public func averaged(with other: TreeEnsemble) -> TreeEnsemble {
        precondition(featureCount == other.featureCount, "ensembles over different features")
        let offset = Int32(nodes.count)
        var merged =
            nodes
            + other.nodes.map { n in
                var n = n
                if !n.isLeaf { n.left += offset }
                return n
            }
        for i in merged.indices where merged[i].isLeaf { merged[i].value /= 2 }
        return TreeEnsemble(
            nodes: merged, roots: roots + other.roots.map { $0 + offset }, cover: cover + other.cover,
            baseMargin: (baseMargin + other.baseMargin) / 2, featureCount: featureCount)
    }

    /// The first `count` trees only (early stopping keeps the best iteration).
    public func truncated(to count: Int) -> TreeEnsemble {
        guard count < roots.count else { return self }
        let end = Int(roots[count])
        return TreeEnsemble(
            nodes: Array(nodes[..<end]), roots: Array(roots[..<count]), cover: Array(cover[..<end]), baseMargin: baseMargin,
            featureCount: featureCount)
    }
}

/// The logistic function, from a margin (log-odds) to a probability.
public func sigmoid(_ z: Double) -> Double { 1 / (1 + exp(-z)) }
