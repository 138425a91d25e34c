import Foundation

/// What the automatic model selection may vary and how much work it may spend.
public struct SearchSettings: Sendable, Equatable {
    /// Work allowed to the search, in seconds of the reference machine (2 cores; see
    /// `ModelSearch.boostingCost`): counted from each fit's rounds, rows and depth, not read off
    /// a clock, so the same data and seed choose the same model on any machine.
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
    /// rows in the loss and in the validation AP.
    public var candidateRows = 30_000
    /// When the candidates were sampled, they stop at this share of the budget, and the best
    /// `finalists` are fitted again, one after the other, on as many rows as the rest of the
    /// budget buys (every row when it can) and judged on up to `finalValidationRows` validation
    /// rows: on a 5 % sample of the legitimate rows the candidates' ranking is rough and every
    /// one of them falls well short of the same parameters fitted on every row.
    public var candidateShare = 0.4
    public var finalists = 2
    public var finalValidationRows = 120_000
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
    /// The candidate whose parameters the model has.
    public var chosen: Int
    /// The finalists fitted again on more rows (nil in records from before there were any;
    /// empty: the candidates saw every row).
    public var finals: [FinalFit]?
    /// The average of the two finalists' margins, when they are of one family, with its AP on
    /// the finals' validation rows, and whether it was kept (it scored above each alone, all
    /// three by the plain AP of their kept trees).
    public var blendAveragePrecision: Double?
    public var blended: Bool?
}

/// A finalist's parameters fitted again on more rows than its candidate had.
public struct FinalFit: Codable, Sendable, Equatable {
    /// Its index in `SearchRecord.scores`.
    public var candidate: Int
    public var rows: Int
    public var validationRows: Int
    public var trees: Int
    public var averagePrecision: Double
    /// Reference seconds charged (counted in `SearchRecord.spent`).
    public var cost: Double
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
        let reduced = sample.rows < fit.rows || held.rows < validation.rows
        let candidateBudget = reduced ? s.budget * s.candidateShare : s.budget
        var scores: [CandidateScore] = []
        var fitted: [TreeEnsemble] = []
        var wall: [Double] = []
        var spent = 0.0
        for candidate in list {
            if spent >= candidateBudget && !scores.isEmpty { break }
            let began = Date()
            let (ensemble, score) = fitOne(candidate, sample, weights, held, heldWeights)
            wall.append(Date().timeIntervalSince(began))
            spent += score.cost
            scores.append(score)
            fitted.append(ensemble)
        }
        // The best average precision first; on a tie the earlier (simpler, more usual) candidate.
        func key(_ ap: Double) -> Double { ap.isNaN ? -.infinity : ap }
        let ranked = scores.indices.sorted {
            (key(scores[$0].averagePrecision), -$0) > (key(scores[$1].averagePrecision), -$1)
        }
        var chosen = ranked[0]
        var ensemble = fitted[chosen]
        var parameters = scores[chosen].parameters
        var finals: [FinalFit] = []
        var blendAP: Double?
        var blended: Bool?
        if reduced {
            let (final, finalWeights) = sampled(validation, limit: max(s.candidateRows, s.finalValidationRows), seed: s.seed &+ 2)
            let finalists = Array(ranked.prefix(max(1, s.finalists)))
            var best = -Double.infinity
            var refits: [(index: Int, ensemble: TreeEnsemble)] = []
            for (j, i) in finalists.enumerated() {
                let began = Date()
                let share = (s.budget - spent) / Double(finalists.count - j)
                guard let f = refit(list[i], scores[i], fit, final, finalWeights, budget: share, s) else { continue }
                wall.append(Date().timeIntervalSince(began))
                spent += f.record.cost
                var record = f.record
                record.candidate = i
                finals.append(record)
                refits.append((i, f.ensemble))
                if key(record.averagePrecision) > best {
                    best = key(record.averagePrecision)
                    (chosen, ensemble, parameters) = (i, f.ensemble, f.parameters)
                }
            }
            // Two finalists of one family averaged: kept only when it ranks the validation
            // rows better than either alone (all three by the plain AP of the trees kept: a
            // finalist's own score is smoothed over rounds, which an average has not).
            if refits.count == 2 && list[refits[0].index].kind == list[refits[1].index].kind {
                func plain(_ e: TreeEnsemble) -> Double {
                    let margins = (0..<final.rows).map { r in final.withRow(r) { e.margin($0) } }
                    return key(RankStopping.averagePrecision(margins, final.labels, weights: finalWeights))
                }
                let blend = refits[0].ensemble.averaged(with: refits[1].ensemble)
                let ap = plain(blend)
                blendAP = ap
                if ap > max(plain(refits[0].ensemble), plain(refits[1].ensemble)) {
                    let other = refits[0].index == chosen ? refits[1].index : refits[0].index
                    ensemble = blend
                    parameters["averaged_with_candidate"] = "\(other + 1)"
                    blended = true
                } else {
                    blended = false
                }
            }
        }
        var record = SearchRecord(
            budget: s.budget, listed: list.count, tried: scores.count, spent: spent, candidateRows: sample.rows,
            validationRows: held.rows, validationFrauds: held.positives, scores: scores, chosen: chosen, finals: finals)
        record.blendAveragePrecision = blendAP
        record.blended = blended
        return SearchOutcome(
            kind: list[chosen].kind, ensemble: ensemble, parameters: parameters, record: record, wallSeconds: wall)
    }

    /// Fits a finalist's parameters again on the most fit rows `budget` pays for (every row
    /// when it can; frauds first, as `sampled`), early-stopped on `validation` (GBDT, with room
    /// for twice the candidate's rounds). Nil when that is no more rows than the candidate had.
    static func refit(
        _ c: Candidate, _ score: CandidateScore, _ fit: FeatureMatrix, _ validation: FeatureMatrix,
        _ validationWeights: [Double]?, budget: Double, _ s: SearchSettings
    ) -> (ensemble: TreeEnsemble, parameters: [String: String], record: FinalFit)? {
        var c = c
        let rows: Int
        switch c.kind {
        case .randomForest:
            let (trees, depth) = (c.forest.trees, c.forest.maxDepth)
            let fixed = forestCost(trees: trees, depth: depth, rows: 0, validationRows: validation.rows)
            let perRow = forestCost(trees: trees, depth: depth, rows: 1, validationRows: validation.rows) - fixed
            rows = Int(max(0, budget - fixed) / perRow)
        default:
            c.gbdt.trees = min(c.gbdt.trees, 2 * score.trees + RankStopping().patience)
            let (rounds, depth) = (c.gbdt.trees, c.gbdt.maxDepth)
            let fixed = boostingCost(rounds: rounds, depth: depth, rows: 0, validationRows: validation.rows)
            let perRow = boostingCost(rounds: rounds, depth: depth, rows: 1, validationRows: validation.rows) - fixed
            rows = Int(max(0, budget - fixed) / perRow)
        }
        guard rows > min(fit.rows, s.candidateRows) else { return nil }
        let (more, weights) = sampled(fit, limit: rows, seed: s.seed &+ 3)
        let (ensemble, score) = fitOne(c, more, weights, validation, validationWeights)
        let record = FinalFit(
            candidate: 0, rows: more.rows, validationRows: validation.rows, trees: ensemble.treeCount,
            averagePrecision: score.averagePrecision, cost: score.cost)
        return (ensemble, score.parameters, record)
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
            let cost = forestCost(trees: e.treeCount, depth: c.forest.maxDepth, rows: fit.rows, validationRows: validation.rows)
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

    /// Reference seconds of a boosting fit (rounds run, not trees kept): per round a fixed
    /// part (split finding over every node's bins, the threads' hand-offs), the histogram and
    /// partition passes over the rows, which grow with depth until the minimum hessian per leaf
    /// stops the trees (about 7 levels here), and the validation walk. Constants fitted to the
    /// wall times of every candidate on 30,000 and 560,000 rows on the reference machine
    /// (release build, 2 threads; within about ±30 %).
    static func boostingCost(rounds: Int, depth: Int, rows: Int, validationRows: Int) -> Double {
        Double(rounds) * (4.0e-3 + Double(rows) * Double(2 + min(depth, 7)) * 1.0e-8 + Double(validationRows) * 0.5e-8)
    }

    /// Reference seconds of a forest: per tree a fixed part, each level's partition of its
    /// bootstrap rows, and the validation walk (fitted as `boostingCost`).
    static func forestCost(trees: Int, depth: Int, rows: Int, validationRows: Int) -> Double {
        Double(trees) * (5.0e-3 + Double(rows) * Double(min(depth, 20)) * 7.0e-9 + Double(validationRows) * 1.0e-8)
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
