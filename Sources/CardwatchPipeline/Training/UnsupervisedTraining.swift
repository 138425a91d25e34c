import CardwatchFeatures
import CardwatchModel
import Foundation

extension ModelTraining {
    /// An unsupervised model (the isolation forest): the same time split, but the fit reads
    /// every row of the training window, labelled or not, and never a label; the thresholds
    /// are quantiles of its scores on the latest training rows (no labels needed); the test
    /// window's labelled rows, if any, evaluate it as any model. Without labelled test rows
    /// the metrics hold no rows (AUC and AP NaN: "not evaluated").
    static func trainUnsupervised(_ data: TimedDataset, featureNames: [String], request r: TrainingRequest, began: Date)
        throws -> TrainingOutcome
    {
        guard featureNames.count == data.matrix.columns else {
            throw ModelError("\(featureNames.count) feature names for \(data.matrix.columns) columns")
        }
        guard r.kind == .isolationForest else { throw ModelError("\(r.kind.rawValue) is not an unsupervised model") }
        let p = r.isolation
        guard p.trees >= 1, p.sampleSize >= 2 else {
            throw ModelError("an isolation forest needs at least 1 tree and a sample size of at least 2")
        }
        let split = try TimeSplit.resolve(
            times: data.times, trainFrom: r.trainFrom, trainTo: r.trainTo, delay: r.delay, testFrom: r.testFrom, testTo: r.testTo,
            testLength: r.testLength, testFraction: r.testFraction, delayAtMostTest: r.delayAtMostTest)
        let (trainIndices, testIndices) = split.indices(data.times)
        guard trainIndices.count >= 2 else {
            throw ModelError("the training window has \(trainIndices.count) rows; an isolation forest needs at least 2")
        }
        guard !testIndices.isEmpty else { throw ModelError("the test window holds no rows") }
        let fitData = data.matrix.subset(trainIndices)

        let fitBegan = Date()
        let forest = IsolationForest.fit(fitData, parameters: p)
        let fitSeconds = Date().timeIntervalSince(fitBegan)
        var parameters = p.record
        parameters["sample_size_used"] = "\(IsolationForest.effectiveSampleSize(rows: fitData.rows, parameters: p))"
        var artifact = ModelArtifact(
            kind: .isolationForest, featureNames: featureNames, featureSchemaVersion: Feature.schemaVersion, trees: forest,
            calibration: IsolationForest.calibration(rows: fitData.rows, parameters: p), parameters: parameters)

        // Thresholds from the latest training rows' scores: about 1 % reviewed, 0.1 % declined.
        let held = max(1, Int(Double(trainIndices.count) * r.validationShare))
        let recent = scores(artifact, data.matrix.subset(trainIndices.suffix(held)), probability: true)
        let reviewQuantile = r.targetFPR.map { 1 - $0 } ?? r.unsupervisedReviewQuantile
        let review = quantile(recent, reviewQuantile)
        artifact.thresholds = DecisionThresholds(
            review: review, decline: max(review, quantile(recent, r.unsupervisedDeclineQuantile)))
        parameters["review_quantile"] = "\(reviewQuantile)"
        parameters["decline_quantile"] = "\(r.unsupervisedDeclineQuantile)"
        artifact.parameters = parameters

        let test = data.subset(testIndices.filter { data.isLabelled($0) })
        let (metrics, testScores) = finish(&artifact, test: test, split: split, request: r)
        return TrainingOutcome(
            artifact: artifact, metrics: metrics, split: split, trainRows: trainIndices.count, test: test, testScores: testScores,
            trees: forest.treeCount, seconds: Date().timeIntervalSince(began), fitSeconds: fitSeconds)
    }

    /// The value below which a share `q` of `values` lies (nearest rank, q in [0, 1]).
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 1 }
        let sorted = values.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(sorted.count - 1, max(0, rank))]
    }
}
