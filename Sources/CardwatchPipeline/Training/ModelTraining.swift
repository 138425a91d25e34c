public import CardwatchCore
public import CardwatchFeatures
public import CardwatchModel
import Foundation

/// What to train and how to judge it.
public struct TrainingRequest: Sendable {
    public var kind: ModelKind = .gbdt
    public var gbdt = GBDTParameters()
    public var logistic = LogisticParameters()
    public var forest = ForestParameters()
    /// The automatic model selection for the tree families (nil: one fit of `kind` with the
    /// parameters above). Its families replace `kind` when set.
    public var search: SearchSettings?
    /// Window bounds in microseconds; nil means "derive" (see `TimeSplit.resolve`).
    public var trainFrom: Int64?
    public var trainTo: Int64?
    public var testFrom: Int64?
    public var testTo: Int64?
    /// Gap between the training and the test windows.
    public var delay: Int64 = 0
    /// The gap is at most the test window's length (see `TimeSplit.resolve`).
    public var delayAtMostTest = false
    /// Without a test start: the test window is this long (microseconds) before the end.
    public var testLength: Int64 = 7 * TimeSplit.day
    public var testFraction: Double?
    /// Threshold choice on the validation rows: a target precision, a target false-positive rate, or (neither) the best F1.
    public var targetPrecision: Double?
    public var targetFPR: Double?
    /// Share of the training window (its latest rows) held out for early stopping, calibration and thresholds.
    public var validationShare = 0.15
    /// Card precision@100 needs real days and card ids; a bare table may have neither.
    public var cardPrecision = true
    public var isolation = IsolationForestParameters()
    /// An unsupervised model's review threshold: this quantile of its scores on the latest
    /// training rows (`validationShare`), or 1 − `targetFPR` when that is given.
    public var unsupervisedReviewQuantile = 0.99
    /// ... and its decline threshold (never below the review one).
    public var unsupervisedDeclineQuantile = 0.999

    public init() {}
}

/// A trained, evaluated model and what was learnt about it.
public struct TrainingOutcome: Sendable {
    public var artifact: ModelArtifact
    public var metrics: EvaluationMetrics
    public var split: TimeSplit
    public var trainRows: Int
    public var test: TimedDataset
    public var testScores: [Double]
    public var trees: Int?
    public var seconds: Double
    /// The fit alone (binning, boosting with early stopping, or the Newton steps): what a
    /// library's `fit` call measures, for comparing with one.
    public var fitSeconds: Double
    /// Wall time of each searched candidate, in the record's order (empty without a search).
    public var candidateSeconds: [Double] = []
}

/// The training job: features by the engine's replay, a time split, fit, calibrate,
/// choose thresholds, evaluate on the later window. The CLI and the scheduler call it.
public enum ModelTraining {
    /// Replays `transactions` through the feature engine (event-time order, so early
    /// windows are warm) and keeps the labelled rows, or with `keepUnlabelled` every row
    /// (`TimedDataset.labelled` then says which carry a label: an unsupervised model's input).
    public static func dataset(
        history transactions: [Transaction], labels: [LabelEvent]? = nil, config: FeatureConfig = FeatureConfig(),
        keepUnlabelled: Bool = false
    ) throws -> TimedDataset {
        var matrix = FeatureMatrix(columns: Feature.count)
        var times: [Int64] = []
        var cards: [String] = []
        var patterns: [String?] = []
        var ids: [String] = []
        var labelled: [Bool] = []
        var row = [Double](repeating: 0, count: Feature.count)
        try FeatureReplay.run(transactions, labels: labels, config: config) { t, f in
            guard t.isFraud != nil || keepUnlabelled else { return }
            for i in 0..<Feature.count { row[i] = f[i] }
            matrix.append(row, label: t.isFraud ?? false)
            labelled.append(t.isFraud != nil)
            times.append(t.timestamp.microseconds)
            cards.append(t.cardID)
            patterns.append(t.fraudPattern)
            ids.append(t.transactionID)
        }
        return TimedDataset(
            matrix: matrix, times: times, cards: cards, patterns: patterns, transactionIDs: ids,
            labelled: labelled.contains(false) ? labelled : nil)
    }

    public static func train(_ data: TimedDataset, featureNames: [String], request r: TrainingRequest) throws -> TrainingOutcome {
        let began = Date()
        if !r.kind.isSupervised { return try trainUnsupervised(data, featureNames: featureNames, request: r, began: began) }
        let replayedRows = data.matrix.rows
        let data = data.labelledRows
        guard featureNames.count == data.matrix.columns else {
            throw ModelError("\(featureNames.count) feature names for \(data.matrix.columns) columns")
        }
        let split = try TimeSplit.resolve(
            times: data.times, trainFrom: r.trainFrom, trainTo: r.trainTo, delay: r.delay, testFrom: r.testFrom, testTo: r.testTo,
            testLength: r.testLength, testFraction: r.testFraction, delayAtMostTest: r.delayAtMostTest)
        let (trainIndices, testIndices) = split.indices(data.times)
        let trainLabels = trainIndices.map { data.matrix.labels[$0] }
        guard trainLabels.contains(true), trainLabels.contains(false) else {
            throw ModelError("the training window has \(trainIndices.count) rows and needs both fraud and legitimate ones")
        }
        guard !testIndices.isEmpty else { throw ModelError("the test window holds no rows") }

        // The latest rows of the training window validate (time order again: no peeking).
        let held = max(1, Int(Double(trainIndices.count) * r.validationShare))
        var fitIndices = Array(trainIndices.dropLast(held))
        var validationIndices = Array(trainIndices.suffix(held))
        if !validationIndices.contains(where: { data.matrix.labels[$0] }) || fitIndices.isEmpty {
            fitIndices = trainIndices  // too few positives to hold some out: fit on all, validate on all
            validationIndices = trainIndices
        }
        let fitData = data.matrix.subset(fitIndices)
        let validation = data.matrix.subset(validationIndices)

        var trees: TreeEnsemble?
        var logistic: LogisticModel?
        var parameters: [String: String]
        var kind = r.kind
        var search: SearchOutcome?
        let fitBegan = Date()
        switch r.kind {
        case .gbdt where r.search != nil, .randomForest where r.search != nil:
            var settings = r.search!
            settings.budget = searchBudget(settings.budget, replayedRows: replayedRows)
            let outcome = ModelSearch.run(fit: fitData, validation: validation, settings: settings, base: r.gbdt)
            kind = outcome.kind
            trees = outcome.ensemble
            parameters = outcome.parameters
            search = outcome
        case .gbdt:
            let fit = GBDTTrainer.fit(fitData, validation: validation, parameters: r.gbdt)
            trees = fit.ensemble
            parameters = r.gbdt.record
            parameters["best_iteration"] = "\(fit.bestIteration)"
        case .logistic:
            logistic = LogisticTrainer.fit(fitData, parameters: r.logistic)
            parameters = r.logistic.record
        case .randomForest:
            trees = ForestTrainer.fit(fitData, parameters: r.forest)
            parameters = r.forest.record
        case .isolationForest:
            preconditionFailure("unsupervised kinds are trained by trainUnsupervised, above")
        }
        let fitSeconds = Date().timeIntervalSince(fitBegan)
        var artifact = ModelArtifact(
            kind: kind, featureNames: featureNames, featureSchemaVersion: Feature.schemaVersion, trees: trees,
            logistic: logistic, parameters: parameters)
        artifact.search = search?.record
        // Probabilities from the validation slice, after any class weight: Platt or isotonic.
        let validationMargins = scores(artifact, validation, probability: false)
        (artifact.calibration, artifact.calibrationChoice) = Calibration.choose(
            margins: validationMargins, labels: validation.labels)
        let validationScores = validationMargins.map { artifact.calibration.probability(margin: $0) }
        artifact.thresholds = thresholds(validationScores, validation.labels, r)

        let test = data.subset(testIndices)
        let (metrics, testScores) = finish(&artifact, test: test, split: split, request: r)
        return TrainingOutcome(
            artifact: artifact, metrics: metrics, split: split, trainRows: trainIndices.count, test: test, testScores: testScores,
            trees: trees?.treeCount, seconds: Date().timeIntervalSince(began), fitSeconds: fitSeconds,
            candidateSeconds: search?.wallSeconds ?? [])
    }

    /// The search's share of a tuning budget, which is the whole training's: reading and the
    /// feature replay cost about 9 µs a transaction on the reference machine (1.75 M in ~15 s),
    /// and the search never gets less than half of it.
    static func searchBudget(_ budget: Double, replayedRows: Int) -> Double {
        max(budget / 2, budget - Double(replayedRows) * 9e-6)
    }

    /// Evaluates a fitted, calibrated artifact on the test rows and stamps it with its metrics,
    /// windows and creation time: the last step of every training path.
    static func finish(_ artifact: inout ModelArtifact, test: TimedDataset, split: TimeSplit, request r: TrainingRequest)
        -> (metrics: EvaluationMetrics, testScores: [Double])
    {
        let testScores = scores(artifact, test.matrix, probability: true)
        let metrics = Metrics.evaluate(
            scores: testScores, labels: test.matrix.labels, patterns: test.patterns,
            days: r.cardPrecision ? test.times.map { Int(floorDiv($0, TimeSplit.day)) } : nil,
            cards: r.cardPrecision ? test.cards : nil, threshold: artifact.thresholds.review)
        artifact.metrics = metrics
        artifact.trainingWindow = TimeWindow(from: rfc3339(split.trainFrom), to: rfc3339(split.trainTo))
        artifact.testWindow = TimeWindow(from: rfc3339(split.testFrom), to: rfc3339(split.testTo))
        artifact.createdAt = rfc3339(Int64(Date().timeIntervalSince1970 * 1e6))
        return (metrics, testScores)
    }

    /// Scores every row of `data` with `artifact` (probabilities, or raw margins).
    public static func scores(_ artifact: ModelArtifact, _ data: FeatureMatrix, probability: Bool) -> [Double] {
        let scorer = ModelScorer(artifact)
        return (0..<data.rows).map { i in data.withRow(i) { probability ? scorer.probability($0) : scorer.margin($0) } }
    }

    /// Evaluates a stored model on labelled rows (all of them, or those in [from, to)).
    public static func evaluate(_ artifact: ModelArtifact, on data: TimedDataset, from: Int64? = nil, to: Int64? = nil)
        -> (metrics: EvaluationMetrics, rows: TimedDataset, scores: [Double])
    {
        let keep = data.times.indices.filter { data.times[$0] >= (from ?? .min) && data.times[$0] < (to ?? .max) }
        let rows = data.subset(keep)
        let scores = scores(artifact, rows.matrix, probability: true)
        let metrics = Metrics.evaluate(
            scores: scores, labels: rows.matrix.labels, patterns: rows.patterns,
            days: rows.times.map { Int(floorDiv($0, TimeSplit.day)) }, cards: rows.cards, threshold: artifact.thresholds.review)
        return (metrics, rows, scores)
    }

    /// Review at the requested target (or best F1); decline where validation precision reaches 90 %.
    static func thresholds(_ scores: [Double], _ labels: [Bool], _ r: TrainingRequest) -> DecisionThresholds {
        var review: Double
        if let p = r.targetPrecision {
            review = Metrics.threshold(forPrecision: p, scores: scores, labels: labels) ?? 0.5
        } else if let fpr = r.targetFPR {
            review = Metrics.threshold(forFPR: fpr, scores: scores, labels: labels) ?? 0.5
        } else {
            review = Metrics.bestF1Threshold(scores: scores, labels: labels) ?? 0.5
        }
        let decline = max(review, Metrics.threshold(forPrecision: 0.9, scores: scores, labels: labels) ?? max(review, 0.9))
        return DecisionThresholds(review: review, decline: decline)
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }

    public static func rfc3339(_ micros: Int64) -> String { Timestamp(microseconds: micros).rfc3339 }
}
