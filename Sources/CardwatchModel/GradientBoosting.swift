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
    /// With `RankStopping`: the validation average precision at each checkpoint (round, AP),
    /// and the best smoothed value, the one that chose `bestIteration`.
    public var checkpoints: [(round: Int, averagePrecision: Double)] = []
    public var smoothedAveragePrecision: Double?
}

/// Gradient-boosted trees for binary log-loss, grown depth-wise on quantile-bin
/// histograms (as XGBoost's `hist` method): per node, gradient and hessian sums
/// per bin, the best split over bins and both directions for missing values, and
/// the larger child's histogram by subtraction from its parent's.
public enum GBDTTrainer {
    public static func fit(
        _ train: FeatureMatrix, validation: FeatureMatrix? = nil, parameters p: GBDTParameters = GBDTParameters(),
        weights rowWeights: [Double]? = nil, stopping: RankStopping? = nil, validationWeights: [Double]? = nil
    )
        -> GBDTFit
    {
        precondition(rowWeights == nil || rowWeights!.count == train.rows, "one weight per row")
        precondition(train.rows > 0, "no training rows")
        let n = train.rows
        let f = train.columns
        let bins = FeatureBins(train, maxBins: p.maxBins, threads: p.threads)
        let binned = bins.binned(train, threads: p.threads)
        let validationBinned = validation.map { bins.binned($0) }
        let weights = train.labels.indices.map { (rowWeights?[$0] ?? 1) * (train.labels[$0] ? p.scalePosWeight : 1) }
        let labels = train.labels.map { $0 ? 1.0 : 0.0 }
        let positiveShare = zip(weights, labels).reduce(0) { $0 + $1.0 * $1.1 } / weights.reduce(0, +)
        let base = logit(min(max(positiveShare, 1e-6), 1 - 1e-6))

        var margin = [Double](repeating: base, count: n)
        let validationRows = validation?.rows ?? 0
        var validationMargin = [Double](repeating: base, count: validationRows)
        let validationLabels = validation?.labels ?? []
        var pairs = [Double](repeating: 0, count: 2 * n)  // gradient and hessian side by side: one cache line per row
        var partialLoss = [Double](repeating: 0, count: max(1, p.threads))
        var rng = SplitMix(seed: p.seed)
        let team = WorkerTeam(size: p.threads)
        defer { team.shutdown() }
        var builder = TreeBuilder(bins: bins, binned: binned, rows: n, features: f, parameters: p, team: team)
        var nodes: [TreeNode] = []
        var cover: [Float] = []
        var roots: [Int32] = []
        var losses: [Double] = []
        var best = Double.infinity
        var bestIteration = 0
        var ranking = stopping.flatMap { s in
            validation.map { RankStopping.Tracker(s, labels: $0.labels, weights: validationWeights) }
        }

        /// Adds `walk`'s leaf values to the margins (when given), then computes the next
        /// round's gradients and the validation loss, the rows cut into one share per thread.
        func advance(_ tree: BuiltTree?, sampled: ArraySlice<Int32>, others: ArraySlice<Int32>) -> Double {
            let walk = tree?.binnedWalk()
            let segments = tree?.segments ?? []
            let workers = team.size
            margin.withUnsafeMutableBufferPointer { m in
                validationMargin.withUnsafeMutableBufferPointer { vm in
                    pairs.withUnsafeMutableBufferPointer { gh in
                        partialLoss.withUnsafeMutableBufferPointer { loss in
                            binned.withUnsafeBufferPointer { bn in
                                (validationBinned ?? []).withUnsafeBufferPointer { vb in
                                    weights.withUnsafeBufferPointer { w in
                                        labels.withUnsafeBufferPointer { y in
                                            validationLabels.withUnsafeBufferPointer { vy in
                                                sampled.withUnsafeBufferPointer { sampled in
                                                    others.withUnsafeBufferPointer { others in
                                                        segments.withUnsafeBufferPointer { segments in
                                                            let task = RoundTask(
                                                                walk: walk, sampled: sampled, segments: segments, others: others,
                                                                margin: m, pairs: gh, binned: bn, weights: w, labels: y,
                                                                validationMargin: vm, validationBinned: vb,
                                                                validationLabels: vy, loss: loss, features: f, workers: workers)
                                                            team.perform { task.run(worker: $0) }
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
                }
            }
            return partialLoss.reduce(0, +) / Double(max(1, validationRows))
        }

        var rows = (0..<Int32(n)).map { $0 }
        var others = rows
        _ = advance(nil, sampled: [], others: others[...])
        // A row is kept when its draw, as in `SplitMix.unit() < subsample`, falls below the share.
        let keepBelow = p.subsample >= 1 ? UInt64.max : UInt64(max(0, p.subsample) * 0x1.0p53)
        for round in 0..<p.trees {
            var kept = 0
            var left = 0
            rows.withUnsafeMutableBufferPointer { rows in
                others.withUnsafeMutableBufferPointer { others in
                    for i in 0..<n {  // branch-free: write both, advance one
                        let keep = p.subsample >= 1 || rng.next() >> 11 < keepBelow ? 1 : 0
                        rows[kept] = Int32(i)
                        others[left] = Int32(i)
                        kept += keep
                        left += 1 - keep
                    }
                }
            }
            var features = Array(0..<f)
            if p.columnSubsample < 1 {
                features.shuffle(using: &rng)
                features = Array(features.prefix(max(1, Int((Double(f) * p.columnSubsample).rounded(.up))))).sorted()
            }
            let tree = builder.grow(rows: &rows, count: kept, pairs: pairs, features: features)

            // Append with absolute child indices; score every row through the new tree.
            let offset = Int32(nodes.count)
            roots.append(offset)
            for node in tree.nodes {
                var node = node
                if !node.isLeaf { node.left += offset }
                nodes.append(node)
            }
            cover.append(contentsOf: tree.cover)
            let loss = advance(tree, sampled: rows[..<kept], others: others[..<left])
            if ranking != nil {
                losses.append(loss)
                if ranking!.observe(round: round + 1, margins: validationMargin) { break }
                bestIteration = ranking!.bestRound
            } else if validation != nil {
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
        if let r = ranking { bestIteration = r.bestRound }
        return GBDTFit(
            ensemble: ensemble.truncated(to: bestIteration), bestIteration: bestIteration, validationLogLoss: losses,
            checkpoints: ranking?.checkpoints ?? [], smoothedAveragePrecision: ranking?.best)
    }

    static func logit(_ p: Double) -> Double { log(p / (1 - p)) }

    /// Log-loss of one row from its margin, computed stably for large margins.
    static func logLoss(margin z: Double, label: Bool) -> Double {
        let s = label ? -z : z
        return s > 0 ? s + log1p(exp(-s)) : log1p(exp(s))
    }
}

/// One round's per-row work over shared buffers: each training row gets the new tree's
/// leaf value (the rows that grew it from their leaf segments, the others by walking the
/// tree) and then its next gradient; the validation rows get their leaf values and loss.
/// `@unchecked Sendable` is sound: the buffers outlive `perform` (it returns only when
/// every worker has), the inputs are only read, each training row appears once in
/// `sampled` or `others` and so is written by one worker only, worker `w` writes only
/// its own share of `validationMargin`, and `loss[w]`.
struct RoundTask: @unchecked Sendable {
    let walk: BinnedWalk?
    let sampled: UnsafeBufferPointer<Int32>
    let segments: UnsafeBufferPointer<LeafSegment>
    let others: UnsafeBufferPointer<Int32>
    let margin: UnsafeMutableBufferPointer<Double>
    let pairs: UnsafeMutableBufferPointer<Double>
    let binned: UnsafeBufferPointer<UInt8>
    let weights: UnsafeBufferPointer<Double>
    let labels: UnsafeBufferPointer<Double>
    let validationMargin: UnsafeMutableBufferPointer<Double>
    let validationBinned: UnsafeBufferPointer<UInt8>
    let validationLabels: UnsafeBufferPointer<Bool>
    let loss: UnsafeMutableBufferPointer<Double>
    let features: Int
    let workers: Int

    static func share(_ count: Int, _ w: Int, of workers: Int) -> Range<Int> {
        let chunk = (count + workers - 1) / workers
        return min(count, w * chunk)..<min(count, (w + 1) * chunk)
    }

    @inline(__always) func gradient(_ i: Int) {
        let prob = 1 / (1 + exp(-margin[i]))
        pairs[2 * i] = weights[i] * (prob - labels[i])
        pairs[2 * i + 1] = max(weights[i] * prob * (1 - prob), 1e-16)
    }

    func run(worker w: Int) {
        let mine = Self.share(sampled.count, w, of: workers)
        var s = 0
        for k in mine {
            while segments[s].end <= k { s += 1 }
            let r = Int(sampled[k])
            margin[r] += segments[s].value
            gradient(r)
        }
        let rest = Self.share(others.count, w, of: workers)
        walk?.addLeafValues(binned, features: features, to: margin, rows: others[rest].lazy.map { Int($0) })
        for k in rest { gradient(Int(others[k])) }

        let held = Self.share(validationMargin.count, w, of: workers)
        walk?.addLeafValues(validationBinned, features: features, to: validationMargin, rows: held)
        var sum = 0.0
        for i in held { sum += GBDTTrainer.logLoss(margin: validationMargin[i], label: validationLabels[i]) }
        loss[w] = sum
    }
}
