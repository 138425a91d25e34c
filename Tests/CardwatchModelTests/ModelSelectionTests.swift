import Testing

@testable import CardwatchModel

/// Rows in time order with a fraud share near 3 %, a signal in two features and noise.
func selectionData(rows: Int, seed: UInt64) -> FeatureMatrix {
    var rng = SplitMix(seed: seed)
    var m = FeatureMatrix(columns: 5)
    for _ in 0..<rows {
        let x = (0..<5).map { _ in rng.unit() * 10 }
        let z = 0.9 * x[0] + 0.6 * x[1] * (x[2] > 5 ? 1 : 0.3) - 11.5 + 2.5 * (rng.unit() - 0.5)
        m.append(x, label: rng.unit() < sigmoid(z))
    }
    return m
}

@Suite struct RankingAPTests {
    @Test func fastAveragePrecisionEqualsTheSortedDefinition() {
        var rng = SplitMix(seed: 4)
        for trial in 0..<200 {
            let n = 1 + Int(rng.next() % 300)
            let distinct = 1 + Int(rng.next() % 40)  // few distinct values: many ties across classes
            let scores = (0..<n).map { _ in rng.unit() < 0.03 ? Double.nan : Double(rng.next() % UInt64(distinct)) }
            let labels = (0..<n).map { _ in rng.unit() < 0.2 }
            let a = RankStopping.averagePrecision(scores, labels)
            let b = Metrics.averagePrecision(scores: scores, labels: labels)
            #expect(a.isNaN == b.isNaN && (a.isNaN || abs(a - b) < 1e-12), "trial \(trial): \(a) vs \(b)")
        }
    }
}

extension RankingAPTests {
    /// Integer weights count as copies of the row: the weighted AP equals the plain AP of the copies.
    @Test func weightedAveragePrecisionEqualsThatOfCopies() {
        var rng = SplitMix(seed: 6)
        for trial in 0..<100 {
            let n = 1 + Int(rng.next() % 80)
            let scores = (0..<n).map { _ in Double(rng.next() % 15) }
            let labels = (0..<n).map { _ in rng.unit() < 0.3 }
            let weights = (0..<n).map { _ in Double(1 + rng.next() % 4) }
            var copies: [Double] = []
            var copyLabels: [Bool] = []
            for i in 0..<n {
                for _ in 0..<Int(weights[i]) {
                    copies.append(scores[i])
                    copyLabels.append(labels[i])
                }
            }
            let a = RankStopping.averagePrecision(scores, labels, weights: weights)
            let b = Metrics.averagePrecision(scores: copies, labels: copyLabels)
            #expect(a.isNaN == b.isNaN && (a.isNaN || abs(a - b) < 1e-12), "trial \(trial): \(a) vs \(b)")
        }
    }
}

@Suite struct CalibrationChoiceTests {
    /// Naive isotonic regression: tie groups, then pool any adjacent violating pair until none is left.
    static func naiveIsotonic(_ margins: [Double], _ labels: [Bool]) -> [(edge: Double, value: Double)] {
        var groups: [(edge: Double, sum: Double, count: Double)] = []
        for v in Set(margins).sorted() {
            let rows = margins.indices.filter { margins[$0] == v }
            groups.append((v, Double(rows.filter { labels[$0] }.count), Double(rows.count)))
        }
        var changed = true
        while changed {
            changed = false
            for i in 0..<(groups.count - 1) where groups[i].sum / groups[i].count > groups[i + 1].sum / groups[i + 1].count {
                groups[i] = (groups[i].edge, groups[i].sum + groups[i + 1].sum, groups[i].count + groups[i + 1].count)
                groups.remove(at: i + 1)
                changed = true
                break
            }
        }
        return groups.map { ($0.edge, $0.sum / $0.count) }
    }

    @Test func isotonicEqualsNaivePooling() {
        var rng = SplitMix(seed: 9)
        for trial in 0..<150 {
            let n = 1 + Int(rng.next() % 120)
            let margins = (0..<n).map { _ in Double(rng.next() % 30) / 3 }
            let labels = margins.map { rng.unit() < $0 / 12 }
            let fitted = Calibration.isotonic(margins: margins, labels: labels)
            let naive = Self.naiveIsotonic(margins, labels)
            #expect(fitted.isotonicMargins! == naive.map(\.edge), "trial \(trial)")
            for (a, b) in zip(fitted.isotonicProbabilities!, naive.map(\.value)) { #expect(abs(a - b) < 1e-12) }
            // Every row's fitted value is its own step's.
            for (m, _) in zip(margins, labels) {
                let step = naive.last { $0.edge <= m }!
                #expect(abs(fitted.probability(margin: m) - step.value) < 1e-12)
            }
        }
    }

    /// After a class weight of 10 the raw probabilities overstate fraud several times; the
    /// map chosen on a validation slice brings held-out probabilities back to the fraud share.
    @Test func classWeightedProbabilitiesAreCalibratedOnHeldOutRows() {
        let data = selectionData(rows: 24_000, seed: 3)
        let fit = data.subset(0..<12_000)
        let validation = data.subset(12_000..<18_000)
        let held = data.subset(18_000..<24_000)
        var p = GBDTParameters()
        p.scalePosWeight = 10
        p.trees = 120
        let model = GBDTTrainer.fit(fit, validation: validation, parameters: p).ensemble
        func margins(_ m: FeatureMatrix) -> [Double] { (0..<m.rows).map { r in m.withRow(r) { model.margin($0) } } }
        let (map, choice) = Calibration.choose(margins: margins(validation), labels: validation.labels)
        let share = Double(held.positives) / Double(held.rows)
        let raw = margins(held).map(sigmoid).reduce(0, +) / Double(held.rows)
        let calibrated = margins(held).map { map.probability(margin: $0) }
        let mean = calibrated.reduce(0, +) / Double(held.rows)
        #expect(raw > 2 * share, "the class weight should inflate raw probabilities: \(raw) vs \(share)")
        #expect(abs(mean - share) < 0.2 * share, "calibrated mean \(mean), fraud share \(share), \(choice.method)")
        // Per reliability bin with enough rows, the mean probability is near the observed share.
        for bin in Metrics.reliability(scores: calibrated, labels: held.labels) where bin.rows >= 300 {
            #expect(abs(bin.meanProbability - bin.fraudShare) < 0.05, "\(bin)")
        }
        #expect(choice.plattBrier.isFinite && choice.isotonicBrier!.isFinite)
    }
}

@Suite struct ModelSearchTests {
    static func settings(budget: Double) -> SearchSettings {
        var s = SearchSettings()
        s.budget = budget
        return s
    }

    @Test func deterministicForASeedAndCutByTheBudgetInListOrder() {
        let data = selectionData(rows: 4_000, seed: 11)
        let fit = data.subset(0..<3_200)
        let validation = data.subset(3_200..<4_000)
        let s = Self.settings(budget: 2)
        let a = ModelSearch.run(fit: fit, validation: validation, settings: s, base: GBDTParameters())
        let b = ModelSearch.run(fit: fit, validation: validation, settings: s, base: GBDTParameters())
        #expect(a.record == b.record && a.ensemble == b.ensemble && a.kind == b.kind)
        #expect(a.record.tried >= 2 && a.record.tried < a.record.listed, "\(a.record.tried) of \(a.record.listed)")
        // The budget stops the list after the first candidate that reaches it, never earlier.
        let costs = a.record.scores.map(\.cost)
        #expect(costs.dropLast().reduce(0, +) < s.budget)
        #expect(a.record.spent >= s.budget || a.record.tried == a.record.listed)
        // The tried candidates are the list's first ones, in order.
        let list = ModelSearch.candidates(
            s, base: GBDTParameters(), ratio: Double(fit.rows - fit.positives) / Double(fit.positives))
        #expect(zip(list, a.record.scores).allSatisfy { $0.kind == $1.kind })
        // The winner has the best validation score.
        #expect(a.record.scores.allSatisfy { $0.averagePrecision <= a.record.scores[a.record.chosen].averagePrecision })
        var other = s
        other.seed = 2
        #expect(ModelSearch.run(fit: fit, validation: validation, settings: other, base: GBDTParameters()).ensemble != a.ensemble)
    }

    /// Sampled candidates: the two best are fitted again on more rows within what the budget
    /// leaves, judged on more validation rows, and the model is the better of them (or their
    /// average when that ranks better still) — deterministically.
    @Test func sampledCandidatesAreFollowedByFinalistsOnMoreRows() {
        let data = selectionData(rows: 8_000, seed: 21)
        let fit = data.subset(0..<6_400)
        let validation = data.subset(6_400..<8_000)
        var s = Self.settings(budget: 4)
        s.candidateRows = 1_000
        s.families = [.gbdt]
        let a = ModelSearch.run(fit: fit, validation: validation, settings: s, base: GBDTParameters())
        let b = ModelSearch.run(fit: fit, validation: validation, settings: s, base: GBDTParameters())
        #expect(a.record == b.record && a.ensemble == b.ensemble)
        let r = a.record
        let finals = try! #require(r.finals)
        #expect(r.candidateRows < 1_100 && finals.count == 2, "\(r.candidateRows) rows, \(finals.count) finals")
        // The finalists are the two best candidates, each fitted on more rows than it had.
        let ranked = r.scores.indices.sorted { r.scores[$0].averagePrecision > r.scores[$1].averagePrecision }
        #expect(finals.map(\.candidate) == Array(ranked.prefix(2)))
        #expect(finals.allSatisfy { $0.rows > r.candidateRows && $0.validationRows == validation.rows })
        // The candidates stopped at their share of the budget; the finals stayed within the rest.
        let candidateCost = r.scores.map(\.cost).reduce(0, +)
        #expect(candidateCost - r.scores.last!.cost < s.budget * s.candidateShare)
        #expect(r.spent <= max(s.budget, candidateCost) * 1.02, "spent \(r.spent) of \(s.budget)")
        // The chosen one is the finalist with the better AP, unless the average was kept.
        let best = finals.max { $0.averagePrecision < $1.averagePrecision }!
        #expect(r.chosen == best.candidate)
        if r.blended == true {
            // The average of both, scored as recorded on the (whole) validation slice.
            #expect(a.ensemble.treeCount == finals[0].trees + finals[1].trees)
            let margins = (0..<validation.rows).map { i in validation.withRow(i) { a.ensemble.margin($0) } }
            #expect(abs(RankStopping.averagePrecision(margins, validation.labels) - r.blendAveragePrecision!) < 1e-12)
        } else {
            #expect(a.ensemble.treeCount == best.trees)
        }
    }

    @Test func candidatesDeriveClassWeightsFromTheRatioAndKeepPinnedValues() {
        var s = SearchSettings()
        let free = ModelSearch.candidates(s, base: GBDTParameters(), ratio: 400)
        #expect(Set(free.map(\.kind)) == [.gbdt, .randomForest])
        #expect(Set(free.filter { $0.kind == .gbdt }.map(\.gbdt.scalePosWeight)) == [1, 20])
        s.maxDepth = 5
        s.scalePosWeight = 7
        s.families = [.gbdt]
        let pinned = ModelSearch.candidates(s, base: GBDTParameters(), ratio: 400)
        #expect(pinned.allSatisfy { $0.kind == .gbdt && $0.gbdt.maxDepth == 5 && $0.gbdt.scalePosWeight == 7 })
        #expect(Set(pinned.map { "\($0.gbdt)" }).count == pinned.count, "duplicates after pinning are dropped")
    }

    /// The averaged ensemble against its definition: half of each one's margin, on random rows
    /// (NaN included, so the default directions are followed too).
    @Test func averagedEnsembleScoresTheMeanMargin() {
        let data = selectionData(rows: 3_000, seed: 8)
        var p = GBDTParameters()
        p.trees = 25
        let a = GBDTTrainer.fit(data, parameters: p).ensemble
        p.maxDepth = 3
        p.seed = 9
        let b = GBDTTrainer.fit(data.subset(0..<1_500), parameters: p).ensemble
        let blend = a.averaged(with: b)
        #expect(blend.treeCount == a.treeCount + b.treeCount)
        var rng = SplitMix(seed: 3)
        for _ in 0..<500 {
            let x = (0..<5).map { _ in rng.unit() < 0.1 ? Double.nan : rng.unit() * 12 - 1 }
            x.withUnsafeBufferPointer { row in
                #expect(abs(blend.margin(row) - (a.margin(row) + b.margin(row)) / 2) < 1e-9)
            }
        }
    }

    @Test func largeFitPartsAreSampledKeepingEveryFraud() {
        let data = selectionData(rows: 20_000, seed: 5)
        let (sample, weights) = ModelSearch.sampled(data, limit: 5_000, seed: 1)
        #expect(sample.positives == data.positives)
        #expect(abs(sample.rows - 5_000) < 300)
        // More frauds than half the limit: half the limit of them, weighted up alike.
        let (fraudSample, fraudWeights) = ModelSearch.sampled(data, limit: 2 * data.positives / 3, seed: 1)
        #expect(abs(fraudSample.positives - data.positives / 3) < data.positives / 10)
        let fraudWeight = zip(fraudSample.labels, fraudWeights!).filter { $0.0 }.reduce(0) { $0 + $1.1 }
        #expect(abs(fraudWeight - Double(data.positives)) < 0.1 * Double(data.positives))  // a binomial draw of ~580
        let w = weights!
        // The legitimate rows' weights add up to about their number in the whole.
        let legit = zip(sample.labels, w).filter { !$0.0 }.reduce(0) { $0 + $1.1 }
        #expect(abs(legit - Double(data.rows - data.positives)) < 0.05 * Double(data.rows))
    }
}
