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
