import CardwatchModel
import CardwatchPostgres
import CardwatchStorage
import Foundation
import Testing

// MARK: Fixtures

private let features = ["amount", "tx_count_5min", "geo_velocity_kmh"]
private let window = TimeWindow(from: "2024-03-22T00:00:00Z", to: "2024-03-31T00:00:00Z")

private func metrics(auc: Double, ap: Double) -> EvaluationMetrics {
    EvaluationMetrics(
        rows: 1000, positives: 20, rocAUC: auc, averagePrecision: ap, threshold: 0.5, precision: 0.8, recall: 0.7,
        f1: 0.746_666_7, truePositives: 14, falsePositives: 4, trueNegatives: 976, falseNegatives: 6, recallAt1PctFPR: 0.75,
        cardPrecisionAt100: 0.12, perPatternRecall: ["geo_jump": 0.9, "card_testing": 0.5])
}

/// A small valid logistic model; `auc`/`ap` nil means "not evaluated".
private func artifact(
    auc: Double? = 0.95, ap: Double? = 0.90, testWindow: TimeWindow? = window, intercept: Double = -3
) -> ModelArtifact {
    ModelArtifact(
        kind: .logistic, featureNames: features, featureSchemaVersion: 1,
        logistic: LogisticModel(means: [50, 1, 10], scales: [100, 2, 300], weights: [0.8, 0.5, 1.2], intercept: intercept),
        calibration: Calibration(a: 1.1, b: -0.2), thresholds: DecisionThresholds(review: 0.4, decline: 0.85),
        trainingWindow: TimeWindow(from: "2024-03-01T00:00:00Z", to: "2024-03-22T00:00:00Z"), testWindow: testWindow,
        metrics: auc.flatMap { auc in ap.map { metrics(auc: auc, ap: $0) } }, parameters: ["l2": "1.0"],
        createdAt: "2024-04-01T12:00:00Z")
}

/// A fresh registry in its own temporary directory, removed afterwards.
private func withRegistry<T>(_ body: (ModelRegistry, String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-registry-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(try ModelRegistry(directory: dir + "/nested"), dir + "/nested")
}

/// The registry's stores under test: SQLite's file, and PostgreSQL when the test server is there.
enum RegistryBackend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
    static var allCases: [RegistryBackend] { testPostgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
}

/// A fresh registry of `backend`.
private func withRegistry<T>(_ backend: RegistryBackend, _ body: (ModelRegistry) throws -> T) throws -> T {
    switch backend {
    case .sqlite: try withRegistry { registry, _ in try body(registry) }
    case .postgres: try withPostgresDatabase { try body(ModelRegistry(store: try PostgresRegistryStore(pool: $0))) }
    }
}

private func productionCount(_ registry: ModelRegistry) throws -> Int {
    try registry.list().filter { $0.stage == .production }.count
}

// MARK: Tests

@Suite struct ModelRegistryTests {
    @Test func registerListAndReadBack() throws {
        try withRegistry { registry, dir in
            #expect(FileManager.default.fileExists(atPath: dir + "/registry.sqlite"))
            #expect(try registry.list().isEmpty)
            #expect(try registry.production() == nil)
            let a = artifact(auc: 0.95, ap: 0.91)
            let b = artifact(auc: 0.97, ap: 0.93, testWindow: nil, intercept: -2)
            let va = try registry.register(a)
            let vb = try registry.register(b, stage: .staging)
            #expect(FileManager.default.fileExists(atPath: dir + "/registry.sqlite-wal"))  // WAL mode

            let list = try registry.list()
            #expect(list.map(\.version) == [vb, va])  // newest first
            let ra = try #require(try registry.record(version: va))
            #expect(ra.kind == .logistic && ra.stage == .none)
            #expect(ra.metrics == a.metrics && ra.rocAUC == 0.95 && ra.averagePrecision == 0.91)
            #expect(ra.trainingWindow == a.trainingWindow && ra.testWindow == window)
            #expect(!ra.createdAt.isEmpty)
            #expect(try registry.artifact(version: va) == a)
            #expect(try ra.artifact(from: registry) == a)
            #expect(try registry.artifact(version: vb) == b)
            let rb = try #require(list.first)
            #expect(rb.stage == .staging && rb.testWindow == nil && rb.metrics == b.metrics)
            #expect(try registry.promotions(version: vb).map(\.toStage) == [.staging])
            #expect(try registry.promotions(version: va).isEmpty)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func modelsWithoutMetricsAreStored(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v = try registry.register(artifact(auc: nil, ap: nil))
            let record = try #require(try registry.record(version: v))
            #expect(record.metrics == nil && record.rocAUC == nil && record.averagePrecision == nil)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func artifactCheckedOnRegisterAndLoad(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            var bad = artifact()
            bad.logistic?.weights = [1]
            #expect(throws: RegistryError.self) { try registry.register(bad) }
            #expect(try registry.list().isEmpty)
            let v = try registry.register(artifact())
            #expect(try registry.artifact(version: v, expectedFeatures: features, expectedSchemaVersion: 1) == artifact())
            let error = #expect(throws: RegistryError.self) {
                try registry.artifact(version: v, expectedFeatures: ["amount"])
            }
            if case .invalidArtifact(let version, let reason)? = error {
                #expect(version == v && reason.contains("do not match"))
            } else {
                Issue.record("expected invalidArtifact, got \(String(describing: error))")
            }
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func versionsIncrease(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let versions = try (0..<6).map { _ in try registry.register(artifact()) }
            #expect(zip(versions, versions.dropFirst()).allSatisfy { $0 < $1 })
            #expect(try registry.list().map(\.version) == versions.reversed())
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func approvedWithoutProduction(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v = try registry.register(artifact(auc: 0.95, ap: 0.5))
            let evaluation = try registry.evaluateCandidate(version: v)
            #expect(evaluation.approved && !evaluation.promoted && evaluation.previousProduction == nil)
            #expect(evaluation.reason == "AUC 0.950 ≥ 0.9; no production model to compare with")
            #expect(try registry.production() == nil)  // evaluating changes nothing
            #expect(try registry.promotions().isEmpty)

            let decision = try registry.promote(version: v)
            #expect(decision.approved && decision.promoted && !decision.forced)
            #expect(try registry.production()?.version == v)
            let history = try registry.promotions()
            #expect(history.count == 1)
            #expect(history.first?.fromStage == ModelStage.none && history.first?.toStage == .production)
            #expect(history.first?.reason == decision.reason)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func refusedBelowMinimumAUC(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v = try registry.register(artifact(auc: 0.89, ap: 0.99), stage: .staging)
            let decision = try registry.promote(version: v)
            #expect(!decision.approved && !decision.promoted)
            #expect(decision.reason == "refused: AUC 0.890 < 0.9; no production model to compare with")
            #expect(try registry.production() == nil)
            #expect(try registry.record(version: v)?.stage == .staging)
            let last = try #require(try registry.promotions(version: v).last)
            #expect(last.isRefusal && last.fromStage == .staging && last.toStage == .staging)
            #expect(last.reason.hasPrefix("refused"))
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func refusedWithoutMetrics(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v = try registry.register(artifact(auc: nil, ap: nil))
            let decision = try registry.promote(version: v)
            #expect(!decision.promoted && decision.reason.contains("no evaluation metrics"))
            #expect(try registry.production() == nil)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func refusedWhenAPWorseThanProductionBeyondTolerance(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let old = try registry.register(artifact(auc: 0.96, ap: 0.905))
            try registry.promote(version: old)
            let candidate = try registry.register(artifact(auc: 0.99, ap: 0.880))
            let decision = try registry.promote(version: candidate)
            #expect(!decision.approved && !decision.promoted && decision.previousProduction == old)
            #expect(decision.reason == "refused: AUC 0.990 ≥ 0.9 and AP 0.880 < production v\(old)'s 0.905 − 0.01")
            #expect(try registry.production()?.version == old)
            #expect(try registry.record(version: candidate)?.stage == ModelStage.none)
            // A wider tolerance lets the same candidate through.
            #expect(try registry.evaluateCandidate(version: candidate, rule: PromotionRule(apTolerance: 0.03)).approved)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func approvedWhenAPWorseByLessThanTolerance(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let old = try registry.register(artifact(auc: 0.96, ap: 0.905))
            try registry.promote(version: old)
            let candidate = try registry.register(artifact(auc: 0.993, ap: 0.899))
            let decision = try registry.promote(version: candidate)
            #expect(decision.approved && decision.promoted && decision.previousProduction == old)
            #expect(decision.reason == "AUC 0.993 ≥ 0.9 and AP 0.899 ≥ production v\(old)'s 0.905 − 0.01")
            #expect(try registry.production()?.version == candidate)
            #expect(try registry.record(version: old)?.stage == .archived)
            // Worse by exactly the tolerance is still "not worse by more than" it.
            let boundary = try registry.register(artifact(auc: 0.95, ap: 0.889))
            #expect(try registry.evaluateCandidate(version: boundary).approved)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func differentTestWindowsAndProductionAPOverride(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let old = try registry.register(artifact(auc: 0.97, ap: 0.95))
            try registry.promote(version: old)
            let later = TimeWindow(from: "2024-04-01T00:00:00Z", to: "2024-04-10T00:00:00Z")
            let candidate = try registry.register(artifact(auc: 0.96, ap: 0.90, testWindow: later))
            let stored = try registry.evaluateCandidate(version: candidate)
            #expect(!stored.approved && stored.reason.contains("different test windows"))
            // The caller re-evaluated production on the candidate's window: AP 0.905 there.
            let decision = try registry.promote(version: candidate, productionAP: 0.905)
            #expect(decision.promoted && decision.reason.contains("0.905") && decision.reason.contains("re-evaluated"))
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func productionWithoutMetricsOnlyAUCApplies(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let imported = try registry.register(artifact(auc: nil, ap: nil), stage: .production)
            let candidate = try registry.register(artifact(auc: 0.91, ap: 0.2))
            let decision = try registry.promote(version: candidate)
            #expect(decision.promoted && decision.reason.contains("only the AUC condition"))
            #expect(try registry.record(version: imported)?.stage == .archived)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func forcedPromotion(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let old = try registry.register(artifact(auc: 0.96, ap: 0.95))
            try registry.promote(version: old)
            let weak = try registry.register(artifact(auc: 0.70, ap: 0.40))
            let decision = try registry.promote(version: weak, force: true)
            #expect(!decision.approved && decision.promoted && decision.forced)
            #expect(decision.reason.hasPrefix("forced despite the rule: refused: AUC 0.700 < 0.9"))
            #expect(try registry.production()?.version == weak)
            #expect(try registry.record(version: old)?.stage == .archived)
            let history = try registry.promotions()
            #expect(history.suffix(2).map(\.version) == [old, weak])
            #expect(history.last?.reason == decision.reason)
            // Promoting the production model again does nothing but record the refusal.
            let again = try registry.promote(version: weak, force: true)
            #expect(!again.promoted && again.reason.contains("already the production model"))
            #expect(try registry.production()?.version == weak)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func historyRecordedInOrderWithReasons(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v1 = try registry.register(artifact(auc: 0.95, ap: 0.90))
            let v2 = try registry.register(artifact(auc: 0.96, ap: 0.80))
            let v3 = try registry.register(artifact(auc: 0.97, ap: 0.92))
            try registry.promote(version: v1)
            try registry.promote(version: v2)  // refused: AP
            try registry.setStage(version: v3, stage: .staging)
            try registry.promote(version: v3)
            try registry.setStage(version: v2, stage: .archived, reason: "superseded")
            try registry.setStage(version: v2, stage: .archived)  // no change, not recorded

            let history = try registry.promotions()
            let summary = history.map { "\($0.version):\($0.fromStage.rawValue)>\($0.toStage.rawValue)" }
            #expect(
                summary == [
                    "\(v1):none>production", "\(v2):none>none", "\(v3):none>staging", "\(v1):production>archived",
                    "\(v3):staging>production", "\(v2):none>archived",
                ])
            #expect(zip(history, history.dropFirst()).allSatisfy { $0.id < $1.id && $0.at <= $1.at })
            #expect(history[1].reason.hasPrefix("refused: ") && history[1].reason.contains("AP 0.800 <"))
            #expect(history[2].reason == "set to staging by hand")
            #expect(history[3].reason.hasPrefix("replaced by version \(v3): AUC 0.970"))
            #expect(history[4].reason == "AUC 0.970 ≥ 0.9 and AP 0.920 ≥ production v\(v1)'s 0.900 − 0.01")
            #expect(history[5].reason == "superseded")
            #expect(try registry.promotions(version: v2).map(\.id) == [history[1].id, history[5].id])
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func settingProductionByHandKeepsOneProduction(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            let v1 = try registry.register(artifact(), stage: .production)
            let v2 = try registry.register(artifact(auc: 0.5, ap: 0.1))
            try registry.setStage(version: v2, stage: .production)
            #expect(try registry.production()?.version == v2)
            #expect(try registry.record(version: v1)?.stage == .archived)
            let v3 = try registry.register(artifact(), stage: .production)
            #expect(try registry.production()?.version == v3)
            #expect(try productionCount(registry) == 1)
        }
    }

    @Test(arguments: RegistryBackend.allCases)
    func unknownVersionErrors(_ backend: RegistryBackend) throws {
        try withRegistry(backend) { registry in
            _ = try registry.register(artifact())
            #expect(try registry.record(version: 99) == nil)
            #expect(throws: RegistryError.unknownVersion(99)) { try registry.promote(version: 99) }
            #expect(throws: RegistryError.unknownVersion(99)) { try registry.promote(version: 99, force: true) }
            #expect(throws: RegistryError.unknownVersion(99)) { try registry.evaluateCandidate(version: 99) }
            #expect(throws: RegistryError.unknownVersion(99)) { try registry.artifact(version: 99) }
            #expect(throws: RegistryError.unknownVersion(99)) { try registry.setStage(version: 99, stage: .archived) }
            #expect(RegistryError.unknownVersion(99).description == "there is no model version 99 in the registry")
            #expect(try registry.promotions().isEmpty)
        }
    }

    @Test func cannotOpenWhereADirectoryCannotBe() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-file-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let error = #expect(throws: RegistryError.self) { try ModelRegistry(directory: file) }
        if case .cannotOpen? = error {
            #expect(error?.description.contains(file) == true)
        } else {
            Issue.record("expected cannotOpen, got \(String(describing: error))")
        }
    }

    @Test func reopeningKeepsEverything() throws {
        try withRegistry { registry, dir in
            let v1 = try registry.register(artifact(auc: 0.95, ap: 0.90))
            let v2 = try registry.register(artifact(auc: 0.97, ap: 0.93, intercept: -1))
            try registry.promote(version: v1)
            try registry.promote(version: v2)
            let list = try registry.list()
            let history = try registry.promotions()

            let reopened = try ModelRegistry(directory: dir)
            #expect(try reopened.list() == list)
            #expect(try reopened.promotions() == history)
            #expect(try reopened.production()?.version == v2)
            #expect(try reopened.artifact(version: v2) == artifact(auc: 0.97, ap: 0.93, intercept: -1))
            let v3 = try reopened.register(artifact())
            #expect(v3 > v2)
        }
    }

    /// Random sequences of registrations, promotions (some forced) and hand stage
    /// changes: never two production models, exactly one once any promotion succeeded
    /// (hand changes here never demote production), the rule agrees with an independent
    /// oracle, and every model's stage is the last stage its history moved it to.
    @Test(arguments: RegistryBackend.allCases, 1...12)
    func randomSequencesKeepOneProduction(_ backend: RegistryBackend, seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        try withRegistry(backend) { registry in
            var models: [Int: (auc: Double, ap: Double)] = [:]
            var production: Int?
            for _ in 0..<24 {
                let op = models.isEmpty ? 0 : Int.random(in: 0..<6, using: &rng)
                if op <= 1 {
                    let auc = Double.random(in: 0.85...1, using: &rng)
                    let ap = Double.random(in: 0.7...1, using: &rng)
                    models[try registry.register(artifact(auc: auc, ap: ap))] = (auc, ap)
                } else if op == 5 {
                    let v = try #require(models.keys.randomElement(using: &rng))
                    if v != production { try registry.setStage(version: v, stage: .staging) }
                } else {
                    let v = try #require(models.keys.randomElement(using: &rng))
                    let force = Int.random(in: 0..<4, using: &rng) == 0
                    let candidate = try #require(models[v])
                    let expected =
                        v != production && candidate.auc >= 0.9
                        && production.map { candidate.ap >= models[$0]!.ap - 0.01 - 1e-12 } ?? true
                    let decision = try registry.promote(version: v, force: force)
                    #expect(decision.approved == expected, "seed \(seed): \(decision.reason)")
                    #expect(decision.promoted == (v != production && (expected || force)))
                    if decision.promoted { production = v }
                }
                #expect(try productionCount(registry) == (production == nil ? 0 : 1), "seed \(seed)")
                #expect(try registry.production()?.version == production)
            }
            let history = try registry.promotions()
            for record in try registry.list() {
                let last = history.last { $0.version == record.version }
                #expect(record.stage == last?.toStage ?? ModelStage.none, "seed \(seed), version \(record.version)")
            }
        }
    }

    @Test func concurrentPromotionsKeepOneProduction() async throws {
        try await withRegistryAsync { registry in
            let versions = try (0..<8).map { i in try registry.register(artifact(auc: 0.95, ap: 0.90 + Double(i) * 0.001)) }
            await withTaskGroup(of: Void.self) { group in
                for v in versions { group.addTask { _ = try? registry.promote(version: v, force: true) } }
            }
            #expect(try productionCount(registry) == 1)
            #expect(try registry.promotions().filter { $0.toStage == .production }.count == versions.count)
        }
    }

    /// Eight processes' worth of registries on one PostgreSQL database, each promoting on a
    /// thread of its own: one production model, every promotion recorded.
    @Test(.enabled(if: testPostgresURL != nil)) func promotionsFromManyConnectionsKeepOneProduction() throws {
        try withPostgresDatabase { pool in
            let registry = ModelRegistry(store: try PostgresRegistryStore(pool: pool))
            let versions = try (0..<8).map { i in try registry.register(artifact(auc: 0.95, ap: 0.90 + Double(i) * 0.001)) }
            let done = DispatchGroup()
            for v in versions {
                done.enter()
                Thread {
                    defer { done.leave() }
                    let own = PostgresPool(pool.endpoint, size: 1)
                    defer { own.close() }
                    _ = try? ModelRegistry(store: try PostgresRegistryStore(pool: own)).promote(version: v, force: true)
                }.start()
            }
            done.wait()
            #expect(try productionCount(registry) == 1)
            #expect(try registry.promotions().filter { $0.toStage == .production }.count == versions.count)
        }
    }
}

private func withRegistryAsync(_ body: (ModelRegistry) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-registry-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try await body(try ModelRegistry(directory: dir))
}
