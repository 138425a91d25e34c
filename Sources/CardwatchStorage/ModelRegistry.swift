public import CardwatchModel
import Foundation
import GRDB

/// Where a registered model is in its life.
public enum ModelStage: String, Sendable, Codable, CaseIterable {
    case none, staging, production, archived
}

/// One registered model, without its artifact (which can be large): get that with
/// `artifact(from:)` or `ModelRegistry.artifact(version:)`.
public struct ModelRecord: Sendable, Equatable {
    public var version: Int
    /// When the model was registered (RFC 3339, UTC); the artifact keeps its own training time.
    public var createdAt: String
    public var kind: ModelKind
    public var stage: ModelStage
    public var trainingWindow: TimeWindow?
    public var testWindow: TimeWindow?
    public var rocAUC: Double?
    public var averagePrecision: Double?
    public var metrics: EvaluationMetrics?

    public func artifact(from registry: ModelRegistry) throws(RegistryError) -> ModelArtifact {
        try registry.artifact(version: version)
    }
}

/// One row of the stage history. A refused promotion is recorded with
/// `toStage == fromStage` and a reason starting "refused".
public struct Promotion: Sendable, Equatable {
    public var id: Int
    public var version: Int
    public var fromStage: ModelStage
    public var toStage: ModelStage
    /// RFC 3339, UTC.
    public var at: String
    public var reason: String

    public var isRefusal: Bool { fromStage == toStage }
}

/// When a candidate may replace the production model.
public struct PromotionRule: Sendable, Equatable {
    /// The candidate's ROC AUC must be at least this.
    public var minimumAUC: Double
    /// The candidate's average precision may be below production's by at most this.
    public var apTolerance: Double

    public init(minimumAUC: Double = 0.90, apTolerance: Double = 0.01) {
        self.minimumAUC = minimumAUC
        self.apTolerance = apTolerance
    }
}

/// The verdict of the promotion rule on one candidate, and what was done about it.
public struct PromotionDecision: Sendable, Equatable {
    public var version: Int
    /// Whether the rule accepts the candidate.
    public var approved: Bool
    /// Whether the candidate became production (approved, or forced).
    public var promoted: Bool
    /// The numbers the verdict rests on, e.g. "AUC 0.993 ≥ 0.9 and AP 0.912 ≥ production v3's 0.905 − 0.01".
    public var reason: String
    /// The production model the candidate was compared with (and, if promoted, replaced).
    public var previousProduction: Int?

    /// True when the candidate was promoted although the rule refused it.
    public var forced: Bool { promoted && !approved }
}

public enum RegistryError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case unknownVersion(Int)
    case invalidArtifact(version: Int?, reason: String)
    case corruptRecord(version: Int, reason: String)
    case database(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open the model registry at \(path): \(reason)"
        case .unknownVersion(let v): "there is no model version \(v) in the registry"
        case .invalidArtifact(nil, let reason): "cannot register the model artifact: \(reason)"
        case .invalidArtifact(let v?, let reason): "the artifact of model version \(v) cannot be used: \(reason)"
        case .corruptRecord(let v, let reason): "the registry's record of model version \(v) is damaged: \(reason)"
        case .database(let message): "model registry: \(message)"
        }
    }
}

/// The model registry: versions, metrics, stages and the history of promotions, in a
/// `RegistryStore`: one SQLite file (`registry.sqlite`, WAL mode) inside a directory by
/// default, or a PostgreSQL database shared by many instances. Safe to share between
/// threads and between processes (the CLI and a running server).
public final class ModelRegistry: Sendable {
    public static let fileName = "registry.sqlite"
    /// Where the registry is (a file's path, a database's URL), for messages.
    public let path: String
    private let store: any RegistryStore

    /// The registry in `directory`'s SQLite file.
    public init(directory: String) throws(RegistryError) {
        let store = try SQLiteRegistryStore(directory: directory)
        self.store = store
        path = store.location
    }

    /// The registry in `store`.
    public init(store: any RegistryStore) {
        self.store = store
        path = store.location
    }

    // MARK: Registering and reading

    /// Stores the artifact (as its JSON) and returns its new version number. Registering
    /// directly as `.production` archives the current production model, as a forced promotion does.
    @discardableResult
    public func register(_ artifact: ModelArtifact, stage: ModelStage = .none) throws(RegistryError) -> Int {
        let json: String
        do {
            try artifact.check()
            json = String(decoding: try artifact.jsonData(), as: UTF8.self)
        } catch {
            throw .invalidArtifact(version: nil, reason: "\(error)")
        }
        return try perform("registering a model") {
            try store.write { db in
                let now = RegistrySchema.timestamp()
                let version = try db.insert(artifact: artifact, artifactJSON: json, at: now)
                switch stage {
                case .none: break
                case .production:
                    try Self.makeProduction(db, version: version, from: .none, at: now, reason: "registered as production")
                case .staging, .archived:
                    try db.move(
                        version: version, from: .none, to: stage, at: now, reason: "registered as \(stage.rawValue)")
                }
                return version
            }
        }
    }

    /// Every model, newest first.
    public func list() throws(RegistryError) -> [ModelRecord] {
        try perform("listing models") { try store.read { try $0.fetchAll() } }
    }

    /// The model with this version, or nil when there is none.
    public func record(version: Int) throws(RegistryError) -> ModelRecord? {
        try perform("reading model version \(version)") {
            try store.read { try $0.fetchRecord(version: version) }
        }
    }

    /// The production model's version, if any: one indexed row, no metrics or artifact.
    public func productionVersionOnly() throws(RegistryError) -> Int? {
        try perform("reading the production model's version") {
            try store.read { try $0.productionVersion() }
        }
    }

    /// The current production model, if any.
    public func production() throws(RegistryError) -> ModelRecord? {
        try perform("reading the production model") { try store.read { try $0.fetchProduction() } }
    }

    /// The stored artifact of a version, checked as `ModelArtifact.load` checks it: pass the
    /// engine's feature names and schema version to refuse a model that cannot be scored here.
    public func artifact(
        version: Int, expectedFeatures: [String]? = nil, expectedSchemaVersion: Int? = nil
    ) throws(RegistryError) -> ModelArtifact {
        let json = try perform("reading model version \(version)") {
            try store.read { try $0.fetchArtifactJSON(version: version) }
        }
        guard let json else { throw .unknownVersion(version) }
        do {
            return try ModelArtifact.load(
                json: Data(json.utf8), expectedFeatures: expectedFeatures, expectedSchemaVersion: expectedSchemaVersion)
        } catch {
            throw .invalidArtifact(version: version, reason: "\(error)")
        }
    }

    /// The stage history, oldest first; of one version, or of all.
    public func promotions(version: Int? = nil) throws(RegistryError) -> [Promotion] {
        try perform("reading the promotion history") {
            try store.read { try $0.fetchPromotions(version: version) }
        }
    }

    // MARK: Promotion

    /// Applies the promotion rule to a candidate without changing anything.
    ///
    /// "On the same test window": the registry compares the candidate's stored average
    /// precision with the production model's stored one. When the two were evaluated on
    /// different test windows, that comparison is only indicative (the reason says so);
    /// a caller that has re-evaluated the production model on the candidate's window
    /// passes that figure as `productionAP`, which then replaces the stored one.
    public func evaluateCandidate(
        version: Int, rule: PromotionRule = PromotionRule(), productionAP: Double? = nil
    ) throws(RegistryError) -> PromotionDecision {
        try perform("evaluating model version \(version)") {
            try store.read { db in
                guard let candidate = try db.fetchRecord(version: version) else {
                    throw RegistryError.unknownVersion(version)
                }
                return Self.decide(
                    candidate: candidate, production: try db.fetchProduction(), rule: rule, productionAP: productionAP)
            }
        }
    }

    /// Promotes a candidate when the rule approves it (or when `force` is set): in one
    /// transaction the previous production model is archived, the candidate becomes
    /// production, and both moves are recorded with the reason. A refusal changes no
    /// stage; it is recorded (`toStage == fromStage`) with its reason.
    @discardableResult
    public func promote(
        version: Int, rule: PromotionRule = PromotionRule(), force: Bool = false, productionAP: Double? = nil
    ) throws(RegistryError) -> PromotionDecision {
        try perform("promoting model version \(version)") {
            try store.write { db in
                guard let candidate = try db.fetchRecord(version: version) else {
                    throw RegistryError.unknownVersion(version)
                }
                var decision = Self.decide(
                    candidate: candidate, production: try db.fetchProduction(), rule: rule, productionAP: productionAP)
                let now = RegistrySchema.timestamp()
                if candidate.stage != .production && (decision.approved || force) {
                    if !decision.approved { decision.reason = "forced despite the rule: " + decision.reason }
                    try Self.makeProduction(db, version: version, from: candidate.stage, at: now, reason: decision.reason)
                    decision.promoted = true
                } else {
                    try db.move(version: version, from: candidate.stage, to: candidate.stage, at: now, reason: decision.reason)
                }
                return decision
            }
        }
    }

    /// Moves a model to a stage by hand (staging, archiving), recording the move. Setting
    /// `.production` this way is a forced promotion: the current production model is archived.
    /// Setting the stage a model already has changes and records nothing.
    public func setStage(version: Int, stage: ModelStage, reason: String? = nil) throws(RegistryError) {
        try perform("setting the stage of model version \(version)") {
            try store.write { db in
                guard let record = try db.fetchRecord(version: version) else {
                    throw RegistryError.unknownVersion(version)
                }
                guard record.stage != stage else { return }
                let now = RegistrySchema.timestamp()
                let why = reason ?? "set to \(stage.rawValue) by hand"
                if stage == .production {
                    try Self.makeProduction(db, version: version, from: record.stage, at: now, reason: why)
                } else {
                    try db.move(version: version, from: record.stage, to: stage, at: now, reason: why)
                }
            }
        }
    }

    // MARK: Internals

    /// Archives the current production model (if another) and makes `version` production,
    /// recording both; in the caller's transaction. The archive comes first, so the
    /// single-production index never sees two.
    private static func makeProduction(
        _ db: any RegistryTransaction, version: Int, from: ModelStage, at: String, reason: String
    ) throws {
        if let current = try db.fetchProduction(), current.version != version {
            try db.move(
                version: current.version, from: .production, to: .archived, at: at,
                reason: "replaced by version \(version): \(reason)")
        }
        try db.move(version: version, from: from, to: .production, at: at, reason: reason)
    }

    /// The promotion rule, as a pure function of the two records.
    static func decide(
        candidate: ModelRecord, production: ModelRecord?, rule: PromotionRule, productionAP override: Double?
    ) -> PromotionDecision {
        var decision = PromotionDecision(
            version: candidate.version, approved: false, promoted: false, reason: "", previousProduction: production?.version)
        if candidate.stage == .production {
            decision.reason = "refused: version \(candidate.version) is already the production model"
            return decision
        }
        guard let auc = candidate.rocAUC, let ap = candidate.averagePrecision else {
            decision.reason = "refused: version \(candidate.version) has no evaluation metrics (ROC AUC and average precision)"
            return decision
        }
        let aucOK = auc >= rule.minimumAUC  // false for NaN
        var conditions = ["AUC \(fmt(auc)) \(aucOK ? "≥" : "<") \(rule.minimumAUC)"]
        var note: String?
        var approved = aucOK
        if let production {
            let name = "production v\(production.version)"
            if let productionAP = override ?? production.averagePrecision {
                // A tiny slack so that "worse by exactly the tolerance" passes despite rounding.
                let apOK = ap >= productionAP - rule.apTolerance - 1e-12
                approved = approved && apOK
                conditions.append("AP \(fmt(ap)) \(apOK ? "≥" : "<") \(name)'s \(fmt(productionAP)) − \(rule.apTolerance)")
                if override != nil {
                    note = "\(name)'s AP re-evaluated on the candidate's test window"
                } else if production.testWindow != candidate.testWindow {
                    note =
                        "the stored APs come from different test windows (production \(describe(production.testWindow)), "
                        + "candidate \(describe(candidate.testWindow)))"
                }
            } else {
                note = "\(name) has no stored AP, so only the AUC condition applies"
            }
        } else {
            note = "no production model to compare with"
        }
        decision.approved = approved
        decision.reason = (approved ? "" : "refused: ") + conditions.joined(separator: " and ") + (note.map { "; " + $0 } ?? "")
        return decision
    }

    private static func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.3f", x) : "\(x)" }

    private static func describe(_ w: TimeWindow?) -> String { w.map { "\($0.from)…\($0.to)" } ?? "unknown" }

    /// Runs a database operation, turning any error that is not already a `RegistryError` into one.
    private func perform<T>(_ what: String, _ body: () throws -> T) throws(RegistryError) -> T {
        do { return try body() } catch let error as RegistryError { throw error } catch {
            throw .database("\(what) failed: \(error)")
        }
    }
}

/// One transaction on the registry's rows: what `ModelRegistry` reads and writes, whatever
/// holds them. The promotion rule and the single-production invariant live in `ModelRegistry`.
public protocol RegistryTransaction {
    func fetchRecord(version: Int) throws -> ModelRecord?
    func fetchProduction() throws -> ModelRecord?
    /// Every model, newest first.
    func fetchAll() throws -> [ModelRecord]
    func fetchArtifactJSON(version: Int) throws -> String?
    /// The stage history, oldest first; of one version, or of all.
    func fetchPromotions(version: Int?) throws -> [Promotion]
    func productionVersion() throws -> Int?
    /// Stores a model at stage `none`; its new version.
    func insert(artifact: ModelArtifact, artifactJSON: String, at: String) throws -> Int
    /// Moves one model to `to` (when not there) and records the move.
    func move(version: Int, from: ModelStage, to: ModelStage, at: String, reason: String) throws
}

/// Where the registry's rows live. `write` runs its body in one transaction, serialized
/// with every other writer's (another process's too).
public protocol RegistryStore: Sendable {
    /// A file's path or a database's URL, for messages.
    var location: String { get }
    func read<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T
    func write<T>(_ body: (any RegistryTransaction) throws -> T) throws -> T
}
