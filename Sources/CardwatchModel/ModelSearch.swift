import Foundation

/// What the automatic model selection may vary and how much work it may spend.
public struct SearchSettings: Sendable, Equatable {
    /// Work allowed to the candidates, in seconds of the reference machine (2 cores; see
    /// `ModelSearch.cost`): counted from each fit's rounds, rows and depth, not read off a
    /// clock, so the same data and seed choose the same model on any machine.
    public var budget = 60.0
    /// The families tried, in the candidate list's order.
    public var families: [ModelKind] = [.gbdt, .randomForest]
    /// Values the user gave: every candidate uses them instead of its own.
    public var trees: Int?
    public var maxDepth: Int?
    public var learningRate: Double?
    public var scalePosWeight: Double?
    /// At most about this many fit rows, and validation rows, per candidate: above it fraud rows
    /// (up to half) and legitimate rows are sampled, each standing for 1 / (its class's share)
    /// rows in the loss and in the validation AP. The winner is kept as fitted: a fit on all rows
    /// of a large window would cost more than the whole search.
    public var candidateRows = 30_000
    public var seed: UInt64 = 1
    public var threads = 2

    public init() {}
}

/// One candidate as the search judged it.
public struct CandidateScore: Codable, Sendable, Equatable {
    public var kind: ModelKind
    public var parameters: [String: String]
    /// Average precision on the validation slice (GBDT: the best smoothed value of `RankStopping`).
    public var averagePrecision: Double
    public var trees: Int
    /// Work charged to the budget, reference seconds.
    public var cost: Double
}

/// What the search did, for the registry: every candidate tried, its score, and which won.
public struct SearchRecord: Codable, Sendable, Equatable {
    public var budget: Double
    public var listed: Int
    public var tried: Int
    /// Reference seconds charged (the last candidate may end past the budget: none is cut short).
    public var spent: Double
    /// Rows each candidate was fitted on and scored on (fewer than the window's when sampled).
    public var candidateRows: Int
    public var validationRows: Int
    public var validationFrauds: Int
    public var scores: [CandidateScore]
    public var chosen: Int
}

/// The winner of a search, fitted, with the record.
public struct SearchOutcome: Sendable {
    public var kind: ModelKind
    public var ensemble: TreeEnsemble
    public var parameters: [String: String]
    public var record: SearchRecord
    /// Wall time of each candidate (seconds): machine-dependent, so kept out of the record.
    public var wallSeconds: [Double]
}

/// Time-aware model selection: an ordered list of candidates (boosting settings that matter
/// for rare events, and random forests), each fitted on the earlier part of the training
/// window and scored by average precision on its latest slice, never on anything later.
/// Candidates are evaluated in list order until the budget is spent; the best is kept.
public enum ModelSearch {
    public struct Candidate: Sendable, Equatable {
        public var kind: ModelKind
        public var gbdt = GBDTParameters()
        public var forest = ForestParameters()
    }

    /// The candidate list for a fit part with `negatives` / `positives` legitimate per fraud row.
    /// Class weights come from that ratio (1 and its square root), the rest are fixed, in the
    /// order of how often they won on the worlds tried (today's default first).
    public static func candidates(_ s: SearchSettings, base: GBDTParameters, ratio: Double) -> [Candidate] {
        let root = significant(max(1, ratio).squareRoot())
        // depth, learning rate, min child weight, class weight
        let boosting: [(Int, Double, Double, Double)] = [
            (6, 0.1, 1, 1), (6, 0.1, 1, root), (4, 0.05, 1, 1), (4, 0.05, 1, root), (8, 0.05, 4, 1), (3, 0.1, 1, 1),
            (6, 0.05, 4, root), (10, 0.05, 8, 1),
        ]
        // depth, min child weight, class weight
        let forests: [(Int, Double, Double)] = [(12, 1, 1), (18, 2, 1), (12, 1, root)]
        var list: [Candidate] = []
        func add(_ c: Candidate) {
            if s.families.contains(c.kind) && !list.contains(c) { list.append(c) }
        }
        func gbdt(_ t: (Int, Double, Double, Double)) -> Candidate {
            var p = base
            p.maxDepth = s.maxDepth ?? t.0
            p.learningRate = s.learningRate ?? t.1
            p.minChildWeight = t.2
            p.scalePosWeight = s.scalePosWeight ?? t.3
            p.trees = s.trees ?? (p.learningRate >= 0.1 ? 500 : 1000)
            p.seed = s.seed
            p.threads = s.threads
            return Candidate(kind: .gbdt, gbdt: p)
        }
        func forest(_ t: (Int, Double, Double)) -> Candidate {
            var p = ForestParameters()
            p.trees = s.trees ?? 100
            p.maxDepth = s.maxDepth ?? t.0
            p.minChildWeight = t.1
            p.scalePosWeight = s.scalePosWeight ?? t.2
            p.seed = s.seed
            p.threads = s.threads
            return Candidate(kind: .randomForest, forest: p)
        }
        // Interleaved so a short budget still sees both families.
        add(gbdt(boosting[0]))
        add(gbdt(boosting[1]))
        add(forest(forests[0]))
        for t in boosting[2...5] { add(gbdt(t)) }
        add(forest(forests[1]))
        for t in boosting[6...] { add(gbdt(t)) }
        add(forest(forests[2]))
        return list
    }

    /// Runs the search on `fit` (the earlier rows of the training window) and `validation`
    /// (its latest slice). Reads nothing else.
    public static func run(fit: FeatureMatrix, validation: FeatureMatrix, settings s: SearchSettings, base: GBDTParameters)
        -> SearchOutcome
    {
        let positives = fit.positives
        let ratio = Double(fit.rows - positives) / Double(max(1, positives))
        let list = candidates(s, base: base, ratio: ratio)
        precondition(!list.isEmpty, "no candidate model family")
        let (sample, weights) = sampled(fit, limit: s.candidateRows, seed: s.seed)
        let (held, heldWeights) = sampled(validation, limit: s.candidateRows, seed: s.seed &+ 1)
        var scores: [CandidateScore] = []
        var fitted: [TreeEnsemble] = []
        var wall: [Double] = []
        var spent = 0.0
        for candidate in list {
            if spent >= s.budget && !scores.isEmpty { break }
            let began = Date()
            let (ensemble, score) = fitOne(candidate, sample, weights, held, heldWeights)
            wall.append(Date().timeIntervalSince(began))
            spent += score.cost
            scores.append(score)
            fitted.append(ensemble)
        }
        // The best average precision; on a tie the earlier (simpler, more usual) candidate.
        var chosen = 0
        func key(_ c: CandidateScore) -> Double { c.averagePrecision.isNaN ? -.infinity : c.averagePrecision }
        for (i, c) in scores.enumerated() where key(c) > key(scores[chosen]) { chosen = i }
        let record = SearchRecord(
            budget: s.budget, listed: list.count, tried: scores.count, spent: spent, candidateRows: sample.rows,
            validationRows: held.rows, validationFrauds: held.positives, scores: scores, chosen: chosen)
        return SearchOutcome(
            kind: list[chosen].kind, ensemble: fitted[chosen], parameters: scores[chosen].parameters, record: record,
            wallSeconds: wall)
    }

    /// Fits one candidate and scores it on the validation rows.
    static func fitOne(
        _ c: Candidate, _ fit: FeatureMatrix, _ weights: [Double]?, _ validation: FeatureMatrix, _ validationWeights: [Double]?
    ) -> (TreeEnsemble, CandidateScore) {
        switch c.kind {
        case .randomForest:
            let e = ForestTrainer.fit(fit, parameters: c.forest, weights: weights)
            let margins = (0..<validation.rows).map { i in validation.withRow(i) { e.margin($0) } }
            let ap = RankStopping.averagePrecision(margins, validation.labels, weights: validationWeights)
            let cost = forestCost(e, rows: fit.rows, validationRows: validation.rows)
            return (
                e,
                CandidateScore(
                    kind: .randomForest, parameters: c.forest.record, averagePrecision: ap, trees: e.treeCount, cost: cost)
            )
        default:
            let f = GBDTTrainer.fit(
                fit, validation: validation, parameters: c.gbdt, weights: weights, stopping: RankStopping(),
                validationWeights: validationWeights)
            // Too few rounds to judge (a small pinned --trees): the kept trees' plain AP.
            let ap =
                f.smoothedAveragePrecision
                ?? RankStopping.averagePrecision(
                    (0..<validation.rows).map { i in validation.withRow(i) { f.ensemble.margin($0) } }, validation.labels,
                    weights: validationWeights)
            var parameters = c.gbdt.record
            parameters["best_iteration"] = "\(f.bestIteration)"
            parameters["early_stopping"] = "average_precision"
            parameters.removeValue(forKey: "early_stopping_rounds")
            let rounds = f.validationLogLoss.count
            let cost = boostingCost(rounds: rounds, depth: c.gbdt.maxDepth, rows: fit.rows, validationRows: validation.rows)
            return (
                f.ensemble,
                CandidateScore(
                    kind: .gbdt, parameters: parameters, averagePrecision: ap,
                    trees: f.bestIteration, cost: cost)
            )
        }
    }

    // MARK: Cost model

    /// Reference seconds of a boosting fit: per round, the histogram and partition passes grow
    /// with rows × depth and the validation walk with its rows (constants measured on the
    /// reference machine, release build, 2 threads).
    static func boostingCost(rounds: Int, depth: Int, rows: Int, validationRows: Int) -> Double {
        Double(rounds) * (Double(rows) * (1 + 0.4 * Double(depth)) + Double(validationRows) * 0.6) * 9.0e-8
    }

    /// Reference seconds of a forest: each tree's bootstrap draws plus the rows each of its
    /// inner nodes partitions (their cover), and the validation walk.
    static func forestCost(_ e: TreeEnsemble, rows: Int, validationRows: Int) -> Double {
        var visits = 0.0
        for (i, node) in e.nodes.enumerated() where !node.isLeaf { visits += Double(e.cover[i]) }
        return (Double(e.treeCount) * Double(rows) * 2 + visits * 3 + Double(e.treeCount * validationRows)) * 4.5e-10
    }

    // MARK: Helpers

    /// A seeded sample of about `limit` rows in their original (time) order, each weighted by
    /// the inverse of its class's share: every fraud row while they are at most half the limit
    /// (else half the limit of them), legitimate rows for the rest.
    static func sampled(_ fit: FeatureMatrix, limit: Int, seed: UInt64) -> (FeatureMatrix, [Double]?) {
        guard fit.rows > limit else { return (fit, nil) }
        let positives = fit.positives
        let fraudShare = min(1, Double(limit / 2) / Double(max(1, positives)))
        let keptFrauds = Int((Double(positives) * fraudShare).rounded())
        let legitShare = min(1, Double(limit - keptFrauds) / Double(max(1, fit.rows - positives)))
        var rng = SplitMix(seed: seed ^ 0x5EA2_C4ED)
        var keep: [Int] = []
        var weights: [Double] = []
        for i in 0..<fit.rows {
            let share = fit.labels[i] ? fraudShare : legitShare
            if share >= 1 || rng.unit() < share {
                keep.append(i)
                weights.append(1 / share)
            }
        }
        return (fit.subset(keep), weights)
    }

    /// Two significant digits, so recorded class weights read as chosen, not computed.
    static func significant(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return x }
        return Double(String(format: "%.2g", x)) ?? x
    }
}
