/// One tree under construction, in the flat layout (siblings adjacent), with each
/// split's bin for scoring binned rows.
struct BuiltTree {
    var nodes: [TreeNode] = []
    var cover: [Float] = []
    var splitBin: [UInt8] = []
    var missingBin: [UInt8] = []
    /// Where each leaf's training rows ended up in the partitioned row order, so the rows
    /// that grew the tree get their leaf values without walking it.
    var segments: [LeafSegment] = []

    /// The tree as steps over bin numbers, for adding its leaf values to the rows' margins.
    func binnedWalk() -> BinnedWalk {
        var steps: [BinnedWalk.Step] = []
        steps.reserveCapacity(nodes.count)
        var level = [Int](repeating: 0, count: nodes.count)
        var depth = 0
        for (i, n) in nodes.enumerated() {
            if n.isLeaf {
                steps.append(.init(feature: 0, left: Int32(i), splitBin: 255, missingBin: 0, missingLeft: 1))
            } else {
                steps.append(
                    .init(
                        feature: Int32(n.feature), left: n.left, splitBin: splitBin[i], missingBin: missingBin[i],
                        missingLeft: n.defaultLeft ? 1 : 0))
                level[Int(n.left)] = level[i] + 1
                level[Int(n.left) + 1] = level[i] + 1
                depth = max(depth, level[i] + 1)
            }
        }
        return BinnedWalk(steps: steps, values: nodes.map { Double($0.value) }, depth: depth)
    }
}

/// A tree over binned rows. As in `CompiledForest`: leaves loop to themselves, every row
/// takes exactly `depth` branch-free steps, and four rows walk side by side so their loads overlap.
struct BinnedWalk: Sendable {
    struct Step: Sendable {
        var feature: Int32
        var left: Int32
        var splitBin: UInt8
        var missingBin: UInt8
        var missingLeft: UInt8
    }
    let steps: [Step]
    let values: [Double]
    let depth: Int

    /// Adds to `margin[r]`, for each r in `rows`, the value of the leaf that binned row r reaches.
    func addLeafValues<Rows: RandomAccessCollection>(
        _ binned: UnsafeBufferPointer<UInt8>, features f: Int, to m: UnsafeMutableBufferPointer<Double>, rows: Rows
    ) where Rows.Element == Int, Rows.Index == Int {
        let depth = depth
        steps.withUnsafeBufferPointer { st in
            values.withUnsafeBufferPointer { nd in
                @inline(__always) func next(_ i: Int32, _ row: Int) -> Int32 {
                    let s = st[Int(i)]
                    let b = binned[row + Int(s.feature)]
                    let isMissing: UInt8 = b == s.missingBin ? 1 : 0
                    let below: UInt8 = b <= s.splitBin ? 1 : 0
                    let goLeft = isMissing & s.missingLeft | (1 &- isMissing) & below
                    return s.left &+ Int32(1 &- goLeft)
                }
                var k = rows.startIndex
                while k + 4 <= rows.endIndex {
                    let r0 = rows[k]
                    let r1 = rows[k + 1]
                    let r2 = rows[k + 2]
                    let r3 = rows[k + 3]
                    var a: Int32 = 0
                    var b: Int32 = 0
                    var c: Int32 = 0
                    var d: Int32 = 0
                    for _ in 0..<depth {
                        a = next(a, r0 * f)
                        b = next(b, r1 * f)
                        c = next(c, r2 * f)
                        d = next(d, r3 * f)
                    }
                    m[r0] += nd[Int(a)]
                    m[r1] += nd[Int(b)]
                    m[r2] += nd[Int(c)]
                    m[r3] += nd[Int(d)]
                    k += 4
                }
                while k < rows.endIndex {
                    let r = rows[k]
                    var a: Int32 = 0
                    for _ in 0..<depth { a = next(a, r * f) }
                    m[r] += nd[Int(a)]
                    k += 1
                }
            }
        }
    }
}

/// Grows one tree depth-wise, a level at a time: the best split of every open node, then
/// one parallel partition of all their rows, then one parallel pass building the smaller
/// child's histogram of each (the larger one is its parent's minus it). Work is cut into
/// equal shares of the level's rows rather than by node, because fraud trees are lopsided:
/// one child often holds nearly all rows. Histograms hold (gradient, hessian) pairs per bin.
struct TreeBuilder {
    /// Below these many rows a level's work runs on one thread: the hand-off would cost more.
    /// (Variables so the tests can send small data through the parallel paths.)
    var parallelHistogramRows = 2048
    var parallelPartitionRows = 16384
    /// With a value, each node looks for its split among this many features drawn from the
    /// tree's, by `nodeRNG`, and among the rest only when those give none (a random forest's
    /// `max_features`, as scikit-learn draws it).
    var featuresPerNode: Int?
    var nodeRNG = SplitMix(seed: 0)

    let bins: FeatureBins
    let binned: [UInt8]
    let features: Int
    let p: GBDTParameters
    let team: WorkerTeam
    /// Doubles per histogram.
    let size: Int
    private var scratch: [Int32]
    /// Histograms of the open nodes (by their index in the level) and of the next level.
    private var parentHist: [Double] = []
    private var childHist: [Double] = []
    /// One histogram per worker for a share that starts inside another worker's node.
    private var spare: [Double] = []

    init(bins: FeatureBins, binned: [UInt8], rows: Int, features: Int, parameters: GBDTParameters, team: WorkerTeam) {
        self.team = team
        self.bins = bins
        self.binned = binned
        self.features = features
        self.p = parameters
        size = bins.slots * 2
        scratch = [Int32](repeating: 0, count: rows)
    }

    struct Open {
        var id: Int
        var start: Int
        var end: Int
        var g: Double
        var h: Double
    }

    struct Split {
        var gain = 0.0
        var feature = -1
        var bin = 0
        var defaultLeft = false
        var gl = 0.0
        var hl = 0.0
    }

    /// Grows a tree on the rows `order[0..<count]` (ascending), reordering them into leaf segments.
    mutating func grow(rows order: inout [Int32], count: Int, pairs: [Double], features use: [Int]) -> BuiltTree {
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
        for k in 0..<count {
            g0 += pairs[2 * Int(order[k])]
            h0 += pairs[2 * Int(order[k]) + 1]
        }
        let root = addNode()
        var open = [Open(id: root, start: 0, end: count, g: g0, h: h0)]
        // (Histograms are moved out of `self` while a mutating method fills them: Swift forbids the overlap.)
        var hist: [Double] = []
        swap(&hist, &parentHist)
        Self.reserve(&hist, histograms: 1, size: size)
        buildHistograms(order, pairs, use, [RowJob(start: 0, end: count, destination: 0)], into: &hist)
        swap(&hist, &parentHist)

        for depth in 0...p.maxDepth {
            var parents: [(index: Int, node: Open, split: Split, left: Int, cut: Int)] = []
            var finals: [(cut: Int, left: Int)] = []
            var cuts: [PartitionJob] = []
            for (k, node) in open.enumerated() {
                tree.cover[node.id] = Float(node.h)
                let split = depth < p.maxDepth ? nodeSplit(node, histogram: k, use) : Split()
                guard split.feature >= 0 else {
                    tree.nodes[node.id] = .leaf(Float(-node.g / (node.h + p.lambda) * p.learningRate))
                    tree.segments.append(LeafSegment(start: node.start, end: node.end, value: Double(tree.nodes[node.id].value)))
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
                    // The children will be leaves: their sums are known and their histograms not needed;
                    // their rows are still partitioned, for the leaf segments.
                    for (id, g, h) in [(l, split.gl, split.hl), (l + 1, node.g - split.gl, node.h - split.hl)] {
                        tree.cover[id] = Float(h)
                        tree.nodes[id] = .leaf(Float(-g / (h + p.lambda) * p.learningRate))
                    }
                    finals.append((cuts.count, l))
                } else {
                    parents.append((k, node, split, l, cuts.count))
                }
                cuts.append(
                    PartitionJob(
                        start: node.start, end: node.end, feature: j, bin: UInt8(split.bin), missing: bins.missing[j],
                        missingLeft: split.defaultLeft))
            }
            if cuts.isEmpty { break }
            let mids = partition(&order, cuts)
            for final in finals {
                let cut = cuts[final.cut]
                let mid = mids[final.cut]
                tree.segments.append(LeafSegment(start: cut.start, end: mid, value: Double(tree.nodes[final.left].value)))
                tree.segments.append(LeafSegment(start: mid, end: cut.end, value: Double(tree.nodes[final.left + 1].value)))
            }
            if parents.isEmpty { break }

            // The smaller child of parent m gets histogram 2m or 2m + 1 (left, right) by rows; the other is the difference.
            var jobs: [RowJob] = []
            var next: [Open] = []
            for (m, parent) in parents.enumerated() {
                let node = parent.node
                let i = mids[parent.cut]
                let leftSmaller = i - node.start <= node.end - i
                jobs.append(
                    leftSmaller
                        ? RowJob(start: node.start, end: i, destination: 2 * m)
                        : RowJob(start: i, end: node.end, destination: 2 * m + 1))
                next.append(Open(id: parent.left, start: node.start, end: i, g: parent.split.gl, h: parent.split.hl))
                next.append(
                    Open(
                        id: parent.left + 1, start: i, end: node.end, g: node.g - parent.split.gl,
                        h: node.h - parent.split.hl))
            }
            swap(&hist, &childHist)
            Self.reserve(&hist, histograms: next.count, size: size)
            buildHistograms(order, pairs, use, jobs, into: &hist)
            Self.subtract(&hist, parentHist, jobs: jobs, parents: parents.map(\.index), size: size)
            childHist = parentHist
            parentHist = hist
            hist = []
            open = next
        }
        tree.segments.sort { $0.start < $1.start }
        return tree
    }

    /// The best split among all of `use`, or (with `featuresPerNode`) among a random few first.
    mutating func nodeSplit(_ node: Open, histogram k: Int, _ use: [Int]) -> Split {
        guard let m = featuresPerNode, m < use.count else { return bestSplit(node, histogram: k, use) }
        var pool = use
        for i in 0..<m { pool.swapAt(i, i + Int(nodeRNG.next() % UInt64(pool.count - i))) }
        let split = bestSplit(node, histogram: k, Array(pool[..<m]).sorted())
        return split.feature >= 0 ? split : bestSplit(node, histogram: k, Array(pool[m...]).sorted())
    }

    private static func reserve(_ buffer: inout [Double], histograms: Int, size: Int) {
        if buffer.count < histograms * size { buffer = [Double](repeating: 0, count: histograms * size) }
    }

    /// The larger child's histogram of each parent: its parent's minus its smaller sibling's.
    private static func subtract(
        _ child: inout [Double], _ parentHist: [Double], jobs: [RowJob], parents: [Int], size: Int
    ) {
        child.withUnsafeMutableBufferPointer { child in
            parentHist.withUnsafeBufferPointer { parent in
                for (m, job) in jobs.enumerated() {
                    let small = child.baseAddress! + job.destination * size
                    let large = child.baseAddress! + (job.destination ^ 1) * size
                    let whole = parent.baseAddress! + parents[m] * size
                    for x in 0..<size { large[x] = whole[x] - small[x] }
                }
            }
        }
    }

    /// Stable partition of each job's rows by its split: left rows first, each side in row
    /// order, so later passes read rows ascending. Returns where each job's right rows begin.
    mutating func partition(_ order: inout [Int32], _ jobs: [PartitionJob]) -> [Int] {
        let ranges = jobs.map { RowJob(start: $0.start, end: $0.end, destination: 0) }
        let total = ranges.reduce(0) { $0 + $1.end - $1.start }
        let workers = total >= parallelPartitionRows ? team.size : 1
        let pieces = Piece.cut(ranges, workers: workers)
        var lefts = [Int](repeating: 0, count: pieces.count)
        order.withUnsafeMutableBufferPointer { o in
            scratch.withUnsafeMutableBufferPointer { sc in
                binned.withUnsafeBufferPointer { bn in
                    jobs.withUnsafeBufferPointer { jb in
                        pieces.withUnsafeBufferPointer { pc in
                            lefts.withUnsafeMutableBufferPointer { lf in
                                let task = PartitionTask(
                                    order: o, scratch: sc, binned: bn, jobs: jb, pieces: pc, lefts: lf, features: features)
                                if workers == 1 { task.run(worker: 0) } else { team.perform { task.run(worker: $0) } }
                            }
                        }
                    }
                }
            }
        }
        // Jobs cut between workers: each piece has its left rows at its start and its right
        // rows in scratch; gather the lefts, then the rights, piece by piece.
        var mids = jobs.map { $0.start }
        var k = 0
        while k < pieces.count {
            let job = pieces[k].job
            var last = k
            while last + 1 < pieces.count && pieces[last + 1].job == job { last += 1 }
            var cursor = pieces[k].start
            if last == k {
                cursor += lefts[k]
            } else {
                for q in k...last {
                    for x in 0..<lefts[q] { order[cursor + x] = order[pieces[q].start + x] }
                    cursor += lefts[q]
                }
                var write = cursor
                for q in k...last {
                    let rights = pieces[q].end - pieces[q].start - lefts[q]
                    for x in 0..<rights { order[write + x] = scratch[pieces[q].start + x] }
                    write += rights
                }
            }
            mids[job] = cursor
            k = last + 1
        }
        return mids
    }

    /// Gradient and hessian sums per bin over the features in use, for each job's rows into
    /// `hist[job.destination * size...]`, the level's rows cut into one equal share per worker.
    mutating func buildHistograms(
        _ order: [Int32], _ pairs: [Double], _ use: [Int], _ jobs: [RowJob], into hist: inout [Double]
    ) {
        let total = jobs.reduce(0) { $0 + $1.end - $1.start }
        let workers = total >= parallelHistogramRows ? team.size : 1
        let pieces = Piece.cut(jobs, workers: workers)
        Self.reserve(&spare, histograms: workers, size: size)
        hist.withUnsafeMutableBufferPointer { h in
            spare.withUnsafeMutableBufferPointer { sp in
                order.withUnsafeBufferPointer { o in
                    binned.withUnsafeBufferPointer { bn in
                        pairs.withUnsafeBufferPointer { gh in
                            use.withUnsafeBufferPointer { u in
                                jobs.withUnsafeBufferPointer { jb in
                                    pieces.withUnsafeBufferPointer { pc in
                                        let task = HistogramTask(
                                            hist: h, spare: sp, order: o, binned: bn, pairs: gh, use: u, jobs: jb, pieces: pc,
                                            offsets: bins.offsets, features: features, size: size)
                                        if workers == 1 { task.run(worker: 0) } else { team.perform { task.run(worker: $0) } }
                                    }
                                }
                            }
                        }
                    }
                }
                // A share that began inside a node was summed apart; add it to that node's histogram.
                for piece in pieces where !piece.first {
                    let into = h.baseAddress! + jobs[piece.job].destination * size
                    let from = sp.baseAddress! + piece.worker * size
                    for x in 0..<size { into[x] += from[x] }
                }
            }
        }
    }

    func bestSplit(_ node: Open, histogram k: Int, _ use: [Int]) -> Split {
        var best = Split()
        guard node.h >= 2 * p.minChildWeight, node.end - node.start >= 2 else { return best }
        let parentScore = node.g * node.g / (node.h + p.lambda)
        parentHist.withUnsafeBufferPointer { all in
            let hist = all.baseAddress! + k * size
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

/// The rows `order[start..<end]` reach a leaf of this value.
struct LeafSegment {
    var start: Int
    var end: Int
    var value: Double
}

/// The rows `order[start..<end]` of one node, and where its result goes.
struct RowJob {
    var start: Int
    var end: Int
    var destination: Int
}

/// A node's rows and the split that divides them.
struct PartitionJob {
    var start: Int
    var end: Int
    var feature: Int
    var bin: UInt8
    var missing: UInt8
    var missingLeft: Bool
}

/// One worker's part of one job. The level's rows, job after job, are cut into equal
/// shares; only a share's first piece can begin inside a job (`first == false`).
struct Piece {
    var job: Int
    var start: Int
    var end: Int
    var worker: Int
    var first: Bool

    static func cut(_ jobs: [RowJob], workers: Int) -> [Piece] {
        let total = jobs.reduce(0) { $0 + $1.end - $1.start }
        let share = max(1, (total + workers - 1) / workers)
        var pieces: [Piece] = []
        var worker = 0
        var used = 0
        for (j, job) in jobs.enumerated() {
            var s = job.start
            if s == job.end { pieces.append(Piece(job: j, start: s, end: s, worker: worker, first: true)) }
            while s < job.end {
                let take = worker == workers - 1 ? job.end - s : min(job.end - s, share - used)
                pieces.append(Piece(job: j, start: s, end: s + take, worker: worker, first: s == job.start))
                s += take
                used += take
                if used >= share && worker < workers - 1 {
                    worker += 1
                    used = 0
                }
            }
        }
        return pieces
    }
}

/// The buffers of one level's partition, shared by the workers. `@unchecked Sendable` is
/// sound: the buffers outlive `concurrentPerform` (it returns only when every worker has),
/// `binned`, `jobs` and `pieces` are only read, and a worker writes only `order`, `scratch`
/// and `lefts` at its own pieces' positions, which are disjoint from every other worker's.
struct PartitionTask: @unchecked Sendable {
    let order: UnsafeMutableBufferPointer<Int32>
    let scratch: UnsafeMutableBufferPointer<Int32>
    let binned: UnsafeBufferPointer<UInt8>
    let jobs: UnsafeBufferPointer<PartitionJob>
    let pieces: UnsafeBufferPointer<Piece>
    let lefts: UnsafeMutableBufferPointer<Int>
    let features: Int

    func run(worker w: Int) {
        for (k, piece) in pieces.enumerated() where piece.worker == w {
            let job = jobs[piece.job]
            let j = job.feature
            var left = piece.start
            var right = piece.start
            for x in piece.start..<piece.end {
                let r = order[x]
                let b = binned[Int(r) * features + j]
                if b == job.missing ? job.missingLeft : b <= job.bin {
                    order[left] = r
                    left += 1
                } else {
                    scratch[right] = r
                    right += 1
                }
            }
            lefts[k] = left - piece.start
            if piece.first && piece.end == job.end {
                // The whole job is this worker's: its right rows go straight after its left ones.
                for x in 0..<(right - piece.start) { order[left + x] = scratch[piece.start + x] }
            }
        }
    }
}

/// The buffers of one level's histograms, shared by the workers. `@unchecked Sendable` is
/// sound: the buffers outlive `concurrentPerform`, the inputs are only read, each job's
/// histogram is written only by the worker holding the job's first piece, and a piece that
/// begins inside a job is summed into its worker's own `spare` histogram.
struct HistogramTask: @unchecked Sendable {
    let hist: UnsafeMutableBufferPointer<Double>
    let spare: UnsafeMutableBufferPointer<Double>
    let order: UnsafeBufferPointer<Int32>
    let binned: UnsafeBufferPointer<UInt8>
    let pairs: UnsafeBufferPointer<Double>
    let use: UnsafeBufferPointer<Int>
    let jobs: UnsafeBufferPointer<RowJob>
    let pieces: UnsafeBufferPointer<Piece>
    let offsets: [Int]
    let features: Int
    let size: Int

    func run(worker w: Int) {
        offsets.withUnsafeBufferPointer { offsets in
            for piece in pieces where piece.worker == w {
                let out =
                    piece.first
                    ? hist.baseAddress! + jobs[piece.job].destination * size : spare.baseAddress! + w * size
                out.update(repeating: 0, count: size)
                for k in piece.start..<piece.end {
                    let r = Int(order[k])
                    let g = pairs[2 * r]
                    let h = pairs[2 * r + 1]
                    let row = r * features
                    for j in use {
                        let slot = (offsets[j] + Int(binned[row + j])) * 2
                        out[slot] += g
                        out[slot + 1] += h
                    }
                }
            }
        }
    }
}
