import CardwatchCore
import CardwatchFeatures
public import CardwatchModel
public import Foundation
public import Logging
public import ServiceLifecycle

/// The model registry as the retraining job sees it (the embedded one is
/// `CardwatchStorage.ModelRegistry`).
public protocol ModelCatalog: Sendable {
    func register(_ artifact: ModelArtifact) throws -> Int
    /// The production model, if any: its version and artifact.
    func productionModel() throws -> (version: Int, artifact: ModelArtifact)?
    /// Applies the promotion rule (`productionAP`: the production model's average precision
    /// on the candidate's test window); returns whether it was promoted and why.
    func promote(version: Int, productionAP: Double?) throws -> (promoted: Bool, reason: String)
    /// Makes `version` production whatever the rule says (an operator's decision).
    func promoteForced(version: Int) throws -> (promoted: Bool, reason: String)
}

/// Where the training rows come from: the warehouse's silver rows with their labels.
public protocol TrainingStore: Sendable {
    /// Labelled silver rows whose event time is within `days` days before a robust
    /// event-time watermark (never one record's maximum, which a single bad date would move).
    func trainingRows(days: Double) throws -> TimedDataset
    /// The feature columns the silver table holds, in order.
    func featureColumns() throws -> [String]
}

/// A cron schedule (`minute hour day-of-month month day-of-week`, UTC), each field `*`,
/// a number, a range `a-b`, a list `a,b` or a step `*/n`. Default: daily at 02:00.
public struct CronSchedule: Sendable, Equatable {
    public let text: String
    let fields: [Set<Int>]
    static let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]

    public init(_ text: String = "0 2 * * *") throws(PipelineError) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 5 else {
            throw PipelineError("cron schedule '\(text)' needs 5 fields (minute hour day-of-month month day-of-week)")
        }
        var fields: [Set<Int>] = []
        for (i, part) in parts.enumerated() {
            let (lo, hi) = Self.limits[i]
            var set = Set<Int>()
            for item in part.split(separator: ",") {
                var range = lo...hi
                var step = 1
                var body = Substring(item)
                if let slash = item.firstIndex(of: "/") {
                    guard let s = Int(item[item.index(after: slash)...]), s > 0 else {
                        throw PipelineError("cron schedule '\(text)': bad step in '\(item)'")
                    }
                    step = s
                    body = item[..<slash]
                }
                if body != "*" {
                    let ends = body.split(separator: "-").map { Int($0) }
                    guard (1...2).contains(ends.count), let a = ends.first!, let b = ends.last!, lo <= a, a <= b, b <= hi else {
                        throw PipelineError("cron schedule '\(text)': '\(item)' is not within \(lo)-\(hi)")
                    }
                    range = a...b
                }
                for v in stride(from: range.lowerBound, through: range.upperBound, by: step) { set.insert(v) }
            }
            fields.append(set)
        }
        self.text = text
        self.fields = fields
    }

    /// The first matching minute strictly after `date`.
    public func next(after date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var t = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        for _ in 0..<(60 * 24 * 366 * 4) {
            let c = calendar.dateComponents([.minute, .hour, .day, .month, .weekday], from: t)
            if fields[0].contains(c.minute!) && fields[1].contains(c.hour!) && fields[2].contains(c.day!)
                && fields[3].contains(c.month!) && fields[4].contains(c.weekday! - 1)
            {
                return t
            }
            t = t.addingTimeInterval(60)
        }
        return .distantFuture
    }
}

/// What one retraining did.
public struct RetrainingOutcome: Sendable, Equatable {
    public var ran: Bool
    /// Why the data-quality gate stopped it, if it did.
    public var gate: String?
    public var version: Int?
    public var promoted = false
    public var reason: String?
    public var rows = 0
    public var averagePrecision: Double?
}

/// Retraining on a recent window of the warehouse: a data-quality gate (enough rows,
/// enough labels of each class, no schema drift), training with a time split, registration,
/// the registry's promotion rule, and a hot swap of a promoted model into the processor.
public struct RetrainingJob: Sendable {
    public let store: any TrainingStore
    public let catalog: any ModelCatalog
    public let models: (any ModelTarget)?
    /// The operator's thresholds, applied to a promoted model as to every other.
    public var scoring = ScoringPolicy()
    public var windowDays = 30.0
    public var minimumRows = 1_000
    public var minimumPerClass = 10
    public var request = TrainingRequest()

    public init(store: any TrainingStore, catalog: any ModelCatalog, models: (any ModelTarget)?) {
        self.store = store
        self.catalog = catalog
        self.models = models
        request.testFraction = 0.2
        request.delay = 0
        request.search = SearchSettings()  // the model selection, as `cardwatch train` does by default
    }

    public func run() throws -> RetrainingOutcome {
        var outcome = RetrainingOutcome(ran: false)
        let columns = try store.featureColumns()
        guard columns == Feature.names else {
            outcome.gate =
                "schema drift: the warehouse holds features \(columns.joined(separator: ",")), "
                + "the engine computes \(Feature.names.joined(separator: ","))"
            return outcome
        }
        let data = try store.trainingRows(days: windowDays)
        outcome.rows = data.rows
        let positives = data.matrix.positives
        guard data.rows >= minimumRows else {
            outcome.gate = "\(data.rows) labelled rows in the last \(windowDays) days, fewer than \(minimumRows)"
            return outcome
        }
        guard positives >= minimumPerClass, data.rows - positives >= minimumPerClass else {
            outcome.gate = "\(positives) fraud and \(data.rows - positives) legitimate labels; each needs \(minimumPerClass)"
            return outcome
        }
        let trained = try ModelTraining.train(data, featureNames: Feature.names, request: request)
        outcome.ran = true
        outcome.averagePrecision = trained.metrics.averagePrecision
        let version = try catalog.register(trained.artifact)
        outcome.version = version
        let productionAP = try catalog.productionModel().map {
            ModelTraining.evaluate($0.artifact, on: trained.test).metrics.averagePrecision
        }
        let decision = try catalog.promote(version: version, productionAP: productionAP)
        outcome.promoted = decision.promoted
        outcome.reason = decision.reason
        if decision.promoted, let models {
            models.swap(to: try scoring.scorer(trained.artifact, version: version))
        }
        return outcome
    }
}

/// A clock the scheduler sleeps on; tests pass one they advance by hand.
public protocol SchedulerClock: Sendable {
    func now() -> Date
    func sleep(until date: Date) async throws
}

public struct WallClock: SchedulerClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until date: Date) async throws {
        let seconds = date.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) }
    }
}

/// Runs the retraining job on its cron schedule until shutdown.
public struct RetrainingService: Service {
    public let job: RetrainingJob
    public let schedule: CronSchedule
    public let clock: any SchedulerClock
    public let state: PipelineState
    public let monitoring: (any MonitoringStore)?
    public let logger: Logger
    /// Called after each run (tests, logs).
    public var onRun: (@Sendable (RetrainingOutcome) -> Void)?
    /// Held while a run trains, when instances share a registry: one retrains at a time, the
    /// others skip that run.
    public var lease: (any RetrainingLease)?

    public init(
        job: RetrainingJob, schedule: CronSchedule, clock: any SchedulerClock = WallClock(), state: PipelineState,
        monitoring: (any MonitoringStore)?, logger: Logger
    ) {
        self.job = job
        self.schedule = schedule
        self.clock = clock
        self.state = state
        self.monitoring = monitoring
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let due = schedule.next(after: clock.now())
            try await cancelWhenGracefulShutdown { try await clock.sleep(until: due) }
            let outcome: RetrainingOutcome
            do {
                let job = job
                let lease = lease
                outcome = try await withCheckedThrowingContinuation { c in
                    startThread(named: "retraining") {
                        c.resume(
                            with: Result {
                                guard let lease else { return try job.run() }
                                return try lease.whileHeld { try job.run() }
                                    ?? RetrainingOutcome(ran: false, gate: "another instance holds the retraining lease")
                            })
                    }
                }
            } catch {
                logger.error("retraining failed: \(error)")
                try? monitoring?.record(
                    SystemAlert(kind: .retrainingFailed, message: "retraining failed: \(error)", raisedAt: wallMicros()))
                continue
            }
            if let gate = outcome.gate {
                logger.info("retraining skipped by the data-quality gate: \(gate)")
            } else {
                logger.info(
                    "retrained: model v\(outcome.version ?? 0), \(outcome.promoted ? "promoted" : "not promoted"): \(outcome.reason ?? "")"
                )
            }
            onRun?(outcome)
        }
    }
}

/// A lease on retraining among instances that share a registry (PostgreSQL's advisory lock).
public protocol RetrainingLease: Sendable {
    /// Runs `body` holding the lease; nil, without running it, when another instance holds it.
    func whileHeld<T>(_ body: () throws -> T) throws -> T?
}

/// A registered model as listed to people and programs.
public struct ModelSummary: Sendable, Equatable, Codable {
    public var version: Int
    public var kind: String
    public var stage: String
    public var createdAt: String
    public var rocAUC: Double?
    public var averagePrecision: Double?
    public var trainingWindow: TimeWindow?
    public var testWindow: TimeWindow?

    public init(
        version: Int, kind: String, stage: String, createdAt: String, rocAUC: Double?, averagePrecision: Double?,
        trainingWindow: TimeWindow?, testWindow: TimeWindow?
    ) {
        self.version = version
        self.kind = kind
        self.stage = stage
        self.createdAt = createdAt
        self.rocAUC = rocAUC
        self.averagePrecision = averagePrecision
        self.trainingWindow = trainingWindow
        self.testWindow = testWindow
    }
}

/// The catalog with its listing, for the HTTP API.
public protocol ModelDirectory: ModelCatalog {
    /// Every registered model, newest first.
    func models() throws -> [ModelSummary]
    /// The artifact of a version, checked against the engine's features.
    func artifact(of version: Int) throws -> ModelArtifact
    /// The production model's version alone (a cheap query, asked often), nil when there is none.
    func productionVersion() throws -> Int?
}
