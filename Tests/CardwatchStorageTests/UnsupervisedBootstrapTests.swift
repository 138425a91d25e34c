import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import Testing

private func withoutLabels(_ txs: [Transaction]) -> [Transaction] {
    txs.map {
        var t = $0
        t.isFraud = nil
        t.fraudPattern = nil
        return t
    }
}

@Suite struct UnsupervisedTrainingTests {
    @Test func anIsolationForestTrainsOnAHistoryWithoutLabelsAndSaysItIsNotEvaluated() throws {
        let history = StoredHistory(transactions: withoutLabels(try history(days: 10, cards: 120, seed: 4)), labels: [])
        #expect(history.labelCounts == (0, 0))
        #expect(history.callsForUnsupervisedModel())
        let outcome = try history.trainUnsupervised()
        let a = outcome.artifact
        #expect(a.kind == .isolationForest && a.calibration.method == "isolation" && outcome.trees == 300)
        try a.check(expectedFeatures: Feature.names, expectedSchemaVersion: Feature.schemaVersion)
        #expect(Double(outcome.trainRows) > 0.75 * Double(history.transactions.count))
        // No labelled test rows: no metric pretends otherwise.
        #expect(outcome.metrics.rows == 0 && outcome.metrics.positives == 0 && outcome.metrics.rocAUC.isNaN)
        #expect(a.thresholds.review > 0 && a.thresholds.review <= a.thresholds.decline && a.thresholds.decline <= 1)
        #expect(a.parameters["review_quantile"] == "0.99")
    }

    @Test func labelsOnlyEvaluateTheIsolationForest() throws {
        let txs = try history(days: 14, cards: 150, seed: 6, fraudRate: 0.03)
        let data = try ModelTraining.dataset(history: txs, keepUnlabelled: true)
        #expect(data.labelled == nil)  // every generated row carries a label
        var request = TrainingRequest()
        request.kind = .isolationForest
        request.testFraction = 0.25
        let trained = try ModelTraining.train(data, featureNames: Feature.names, request: request)
        var flipped = data
        flipped.matrix = FeatureMatrix(
            columns: data.matrix.columns, values: data.matrix.values, labels: data.matrix.labels.map { !$0 })
        let again = try ModelTraining.train(flipped, featureNames: Feature.names, request: request)
        #expect(again.artifact.trees == trained.artifact.trees)
        #expect(again.artifact.thresholds == trained.artifact.thresholds)
        #expect(trained.metrics.positives > 0 && trained.metrics.rocAUC > 0.5, "AUC \(trained.metrics.rocAUC)")
        #expect(abs(again.metrics.rocAUC - (1 - trained.metrics.rocAUC)) < 1e-9)

        // Half the rows unlabelled: all train, only the labelled ones are evaluated.
        var half = data
        half.labelled = (0..<data.rows).map { $0 % 2 == 0 }
        let mixed = try ModelTraining.train(half, featureNames: Feature.names, request: request)
        #expect(mixed.artifact.trees == trained.artifact.trees && mixed.trainRows == trained.trainRows)
        #expect(mixed.metrics.rows == mixed.test.rows && mixed.metrics.rows < trained.metrics.rows * 3 / 4)
        #expect(mixed.test.transactionIDs.allSatisfy { id in data.transactionIDs.firstIndex(of: id)! % 2 == 0 })
        // The replay keeps unlabelled transactions only when asked, and says which they are.
        let stripped = txs.enumerated().map { i, t in i % 2 == 0 ? t : withoutLabels([t])[0] }
        let kept = try ModelTraining.dataset(history: stripped, keepUnlabelled: true)
        #expect(kept.rows == txs.count && kept.labelled?.count { $0 } == (txs.count + 1) / 2)
        #expect(try ModelTraining.dataset(history: stripped).rows == (txs.count + 1) / 2)
        // A supervised model on the same rows reads the labelled ones alone.
        request.kind = .gbdt
        request.gbdt.trees = 20
        #expect(
            try ModelTraining.train(half, featureNames: Feature.names, request: request).trainRows < trained.trainRows * 3 / 4)
    }
}

@Suite struct UnsupervisedBootstrapTests {
    /// A data directory fed a history without labels starts on an isolation forest; once the
    /// labels arrive, retraining trains a supervised model (the search's choice), and the promotion rule (the incumbent's AP on
    /// the candidate's test window) lets it replace the isolation forest.
    @Test func anUnlabelledHistoryStartsOnAnIsolationForestAndLabelsPromoteAGBDT() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let registry = try ModelRegistry(directory: dir)
            let labelled = try history(days: 12, cards: 150, seed: 9, fraudRate: 0.03)
            _ = try Ingestor(store: store).ingest(withoutLabels(labelled).map { IngestRecord(transaction: $0) }, source: "test")

            let stored = try StoredHistory.read(from: store)
            #expect(stored.transactions.count == labelled.count && stored.callsForUnsupervisedModel())
            let first = try stored.trainUnsupervised()
            let v1 = try registry.register(first.artifact)
            try registry.setStage(version: v1, stage: .production, reason: "bootstrap")
            let runtime = try embeddedRuntime(store, try Scorer(artifact: first.artifact, version: v1))
            try drain(runtime)
            let alerts: [Int] = try query(dir, "SELECT COUNT(*) FROM alerts")
            #expect(alerts[0] > 0, "the isolation forest raises alerts on its own")

            var job = RetrainingJob(store: store.monitoring, catalog: registry, models: runtime.models)
            job.request.gbdt.trees = 40
            let early = try job.run()
            #expect(!early.ran && early.gate != nil)

            let labels = labelled.map {
                LabelEvent(transactionID: $0.transactionID, isFraud: $0.isFraud!, reportedAt: $0.timestamp + 86_400)
            }
            try store.ingestLabels(labels, source: "test-labels", resumeAt: Int64(labels.count))
            try drain(runtime)
            let outcome = try job.run()
            #expect(outcome.ran && outcome.promoted, "\(outcome.reason ?? outcome.gate ?? "")")
            #expect(outcome.reason?.contains("production v\(v1)'s") == true && outcome.reason?.contains("re-evaluated") == true)
            // Retraining searches gbdt and random-forest candidates: either is a supervised successor.
            let successor = try registry.production()?.kind
            #expect(successor == .gbdt || successor == .randomForest, "\(String(describing: successor))")
            #expect(try registry.record(version: v1)?.stage == .archived)
        }
    }
}
