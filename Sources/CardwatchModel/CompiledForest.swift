/// The scoring layout of a tree ensemble, built once per model for the hot path.
///
/// A walk down one tree is a chain of dependent loads, so its latency, not the
/// arithmetic, bounds scoring. Here every leaf points to itself and always goes
/// "left", so each tree takes exactly `depth` steps with no leaf test, and four
/// trees are walked side by side so their loads overlap. Rows are converted to
/// single precision once, as the split rule compares in single precision.
public struct CompiledForest: Sendable {
    struct Node: Sendable {
        var threshold: Float
        var feature: UInt16
        var defaultLeft: Bool
        var left: Int32
        var value: Float
    }

    let nodes: [Node]
    let roots: [Int32]
    let depth: Int
    public let baseMargin: Double
    public let featureCount: Int

    public init(_ e: TreeEnsemble) {
        var nodes: [Node] = []
        nodes.reserveCapacity(e.nodes.count)
        for (i, n) in e.nodes.enumerated() {
            if n.isLeaf {
                nodes.append(Node(threshold: .infinity, feature: 0, defaultLeft: true, left: Int32(i), value: n.value))
            } else {
                nodes.append(
                    Node(threshold: n.threshold, feature: UInt16(n.feature), defaultLeft: n.defaultLeft, left: n.left, value: 0))
            }
        }
        self.nodes = nodes
        roots = e.roots
        depth = e.roots.map { e.depth(Int($0)) }.max() ?? 0
        baseMargin = e.baseMargin
        featureCount = e.featureCount
    }

    /// The raw margin for one row; allocates nothing (the single-precision copy lives on the stack).
    public func margin(_ x: UnsafeBufferPointer<Double>) -> Double {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, featureCount)) { xf in
            for j in 0..<featureCount {
                let v = x[j]
                // ±∞ must still compare below a leaf's +∞ threshold: clamp it to the largest finite value.
                xf[j] =
                    v.isNaN
                    ? .nan : Float(max(-Double(Float.greatestFiniteMagnitude), min(Double(Float.greatestFiniteMagnitude), v)))
            }
            return nodes.withUnsafeBufferPointer { n in
                roots.withUnsafeBufferPointer { r in walk(n, r, UnsafeBufferPointer(xf)) }
            }
        }
    }

    @inline(__always)
    func step(_ n: UnsafeBufferPointer<Node>, _ i: Int32, _ x: UnsafeBufferPointer<Float>) -> Int32 {
        let node = n[Int(i)]
        let v = x[Int(node.feature)]
        // Branch-free: a mispredicted branch per level would cost more than the walk.
        let below = Int32(truncatingIfNeeded: (v < node.threshold) ? 1 : 0)
        let missingLeft = Int32(truncatingIfNeeded: (v.isNaN ? 1 : 0) & (node.defaultLeft ? 1 : 0))
        return node.left &+ (1 &- (below | missingLeft))
    }

    func walk(_ n: UnsafeBufferPointer<Node>, _ r: UnsafeBufferPointer<Int32>, _ x: UnsafeBufferPointer<Float>) -> Double {
        var sum = baseMargin
        var t = 0
        while t + 4 <= r.count {
            var a = r[t]
            var b = r[t + 1]
            var c = r[t + 2]
            var d = r[t + 3]
            for _ in 0..<depth {
                a = step(n, a, x)
                b = step(n, b, x)
                c = step(n, c, x)
                d = step(n, d, x)
            }
            sum += Double(n[Int(a)].value) + Double(n[Int(b)].value) + Double(n[Int(c)].value) + Double(n[Int(d)].value)
            t += 4
        }
        while t < r.count {
            var a = r[t]
            for _ in 0..<depth { a = step(n, a, x) }
            sum += Double(n[Int(a)].value)
            t += 1
        }
        return sum
    }
}

/// Scores rows with a model artifact, through the compiled layout when it has trees.
public struct ModelScorer: Sendable {
    public let artifact: ModelArtifact
    let forest: CompiledForest?

    public init(_ artifact: ModelArtifact) {
        self.artifact = artifact
        forest = artifact.trees.map(CompiledForest.init)
    }

    public func margin(_ x: UnsafeBufferPointer<Double>) -> Double {
        if let forest { return forest.margin(x) }
        return artifact.margin(x)
    }

    public func probability(_ x: UnsafeBufferPointer<Double>) -> Double {
        artifact.calibration.probability(margin: margin(x))
    }
}
