import CardwatchCore
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// A system-level alert (about the pipeline, not a transaction).
public struct SystemAlert: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// The share of transactions decided as alerts is above its limit.
        case alertRateHigh = "alert_rate_high"
        case alertRateAboveBaseline = "alert_rate_above_baseline"
        case deadLetters = "dead_letters"
        case stageDown = "stage_down"
        case stageRestarting = "stage_restarting"
        /// The health check has not reported for two of its intervals.
        case healthStale = "health_stale"
        case retrainingFailed = "retraining_failed"

        /// A stored kind, also under the names it had before (`fraud_rate_…` meant the alert rate).
        public init?(stored: String) {
            switch stored {
            case "fraud_rate_high": self = .alertRateHigh
            case "fraud_rate_above_baseline": self = .alertRateAboveBaseline
            default: self.init(rawValue: stored)
            }
        }

        public init(from decoder: any Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            guard let kind = Kind(stored: raw) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown kind \(raw)"))
            }
            self = kind
        }

        /// About a stage's status: shown live from the stages, not from a stored report.
        public var isStage: Bool { self == .stageDown || self == .stageRestarting }
    }
    public var kind: Kind
    public var message: String
    /// Microseconds since 1970 (wall clock).
    public var raisedAt: Int64

    public init(kind: Kind, message: String, raisedAt: Int64) {
        self.kind = kind
        self.message = message
        self.raisedAt = raisedAt
    }
}

/// What a health check found.
public struct HealthReport: Sendable, Equatable, Codable {
    public var checkedAt: Int64
    public var intervalSeconds: Double
    public var processed: Int
    public var throughputPerSecond: Double
    public var lag: Int64
    public var deadLettersTotal: Int
    public var deadLettersRecent: Int
    /// Share of the interval's transactions decided as alerts (tier high or critical): the
    /// alert rate, not a fraud rate (fraud is known only from labels, later).
    public var alertRate: Double?
    /// The same share over the last 7 days of event time, from the hourly aggregates.
    public var baselineAlertRate: Double?
    public var healthy: Bool
    public var stages: [String: PipelineState.StageHealth]
    public var alerts: [SystemAlert]

    public init(
        checkedAt: Int64, intervalSeconds: Double, processed: Int, throughputPerSecond: Double, lag: Int64,
        deadLettersTotal: Int, deadLettersRecent: Int, alertRate: Double?, baselineAlertRate: Double?, healthy: Bool,
        stages: [String: PipelineState.StageHealth], alerts: [SystemAlert]
    ) {
        self.checkedAt = checkedAt
        self.intervalSeconds = intervalSeconds
        self.processed = processed
        self.throughputPerSecond = throughputPerSecond
        self.lag = lag
        self.deadLettersTotal = deadLettersTotal
        self.deadLettersRecent = deadLettersRecent
        self.alertRate = alertRate
        self.baselineAlertRate = baselineAlertRate
        self.healthy = healthy
        self.stages = stages
        self.alerts = alerts
    }

    enum CodingKeys: String, CodingKey {
        case checkedAt, intervalSeconds, processed, throughputPerSecond, lag, deadLettersTotal, deadLettersRecent
        case alertRate, baselineAlertRate, healthy, stages, alerts
        case fraudRate, baselineFraudRate  // reports stored before the rename
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        checkedAt = try c.decode(Int64.self, forKey: .checkedAt)
        intervalSeconds = try c.decode(Double.self, forKey: .intervalSeconds)
        processed = try c.decode(Int.self, forKey: .processed)
        throughputPerSecond = try c.decode(Double.self, forKey: .throughputPerSecond)
        lag = try c.decode(Int64.self, forKey: .lag)
        deadLettersTotal = try c.decode(Int.self, forKey: .deadLettersTotal)
        deadLettersRecent = try c.decode(Int.self, forKey: .deadLettersRecent)
        alertRate = try c.decodeIfPresent(Double.self, forKey: .alertRate) ?? c.decodeIfPresent(Double.self, forKey: .fraudRate)
        baselineAlertRate =
            try c.decodeIfPresent(Double.self, forKey: .baselineAlertRate)
            ?? c.decodeIfPresent(Double.self, forKey: .baselineFraudRate)
        healthy = try c.decode(Bool.self, forKey: .healthy)
        stages = try c.decode([String: PipelineState.StageHealth].self, forKey: .stages)
        alerts = try c.decode([SystemAlert].self, forKey: .alerts)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(checkedAt, forKey: .checkedAt)
        try c.encode(intervalSeconds, forKey: .intervalSeconds)
        try c.encode(processed, forKey: .processed)
        try c.encode(throughputPerSecond, forKey: .throughputPerSecond)
        try c.encode(lag, forKey: .lag)
        try c.encode(deadLettersTotal, forKey: .deadLettersTotal)
        try c.encode(deadLettersRecent, forKey: .deadLettersRecent)
        try c.encodeIfPresent(alertRate, forKey: .alertRate)
        try c.encodeIfPresent(baselineAlertRate, forKey: .baselineAlertRate)
        try c.encode(healthy, forKey: .healthy)
        try c.encode(stages, forKey: .stages)
        try c.encode(alerts, forKey: .alerts)
    }
}

/// What the health check reads from, and where it writes its reports and alerts.
public protocol MonitoringStore: Sendable {
    /// Records in the dead-letter log, all and those appended at or after `since` (µs, wall clock).
    func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int)
    /// Transactions and alerts over the 7 days of event time before the newest processed one.
    func baseline() throws -> (transactions: Int, alerts: Int)
    /// Records waiting for the processor.
    func processorLag() throws -> Int64
    func record(_ report: HealthReport) throws
    func record(_ alert: SystemAlert) throws
    func latestHealth() throws -> HealthReport?
    func systemAlerts(limit: Int) throws -> [SystemAlert]
}

/// The health check: throughput, lag, dead letters and alert rate since the last check,
/// with system alerts when the alert rate exceeds `maxAlertRate`, when it exceeds
/// `baselineFactor` times its 7-day baseline, when dead letters arrived in the last
/// `deadLetterWindow`, and when a stage is restarting or down. The first check covers the
/// time since the pipeline started.
public struct HealthCheck: Sendable {
    public let store: any MonitoringStore
    public let state: PipelineState
    public var maxAlertRate = 0.05
    public var baselineFactor = 2.0
    public var deadLetterWindow: TimeInterval = 300
    /// Below this many transactions in an interval the alert rate is not judged (too noisy).
    public var minimumTransactions = 50
    private var last: (at: Int64, processed: Int, alerts: Int)?

    public init(store: any MonitoringStore, state: PipelineState) {
        self.store = store
        self.state = state
    }

    /// Runs one check at `now` (µs since 1970), records the report and any alerts.
    public mutating func run(now: Int64) throws -> HealthReport {
        let processed = state.processed.load(ordering: .relaxed)
        let alertCount = state.alerts.load(ordering: .relaxed)
        let previous = last ?? (min(state.startedAt, now), 0, 0)
        let seconds = Double(now - previous.at) / 1e6
        let interval = processed - previous.processed
        let intervalAlerts = alertCount - previous.alerts
        let deadLetters = try store.deadLetterCounts(since: now - Int64(deadLetterWindow * 1e6))
        let base = try store.baseline()
        let rate = interval >= minimumTransactions ? Double(intervalAlerts) / Double(interval) : nil
        let baseline = base.transactions >= minimumTransactions ? Double(base.alerts) / Double(base.transactions) : nil
        var alerts: [SystemAlert] = []
        func pct(_ x: Double) -> String { String(format: "%.2f %%", x * 100) }
        if let rate, rate > maxAlertRate {
            alerts.append(
                SystemAlert(
                    kind: .alertRateHigh,
                    message: "alert rate \(pct(rate)) over the last \(Int(seconds)) s exceeds \(pct(maxAlertRate)) "
                        + "(\(intervalAlerts) alerts in \(interval) transactions)", raisedAt: now))
        }
        if let rate, let baseline, baseline > 0, rate > baselineFactor * baseline {
            alerts.append(
                SystemAlert(
                    kind: .alertRateAboveBaseline,
                    message: "alert rate \(pct(rate)) is more than \(baselineFactor)× its 7-day baseline \(pct(baseline))",
                    raisedAt: now))
        }
        if deadLetters.recent > 0 {
            alerts.append(
                SystemAlert(
                    kind: .deadLetters,
                    message: "\(deadLetters.recent) records went to the dead-letter log in the last \(Int(deadLetterWindow)) s",
                    raisedAt: now))
        }
        let stages = state.stages(at: now)
        alerts += PipelineHealth.stageAlerts(stages, at: now)
        let report = HealthReport(
            checkedAt: now, intervalSeconds: seconds, processed: interval,
            throughputPerSecond: seconds > 0 ? Double(interval) / seconds : 0, lag: try store.processorLag(),
            deadLettersTotal: deadLetters.total, deadLettersRecent: deadLetters.recent, alertRate: rate,
            baselineAlertRate: baseline, healthy: !stages.values.contains { $0.isDown }, stages: stages, alerts: alerts)
        try store.record(report)
        for a in alerts { try store.record(a) }
        last = (now, processed, alertCount)
        return report
    }
}

/// Runs the health check every `interval` until shutdown; the first one an interval after
/// the start. A restart after a failure goes on from the last check that completed.
public final class HealthService: Service, Sendable {
    private let check: Mutex<HealthCheck>
    public let interval: Duration
    public let logger: Logger

    public init(check: HealthCheck, interval: Duration, logger: Logger) {
        self.check = Mutex(check)
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            let report = try check.withLock { try $0.run(now: wallMicros()) }
            for a in report.alerts { logger.warning("system alert: \(a.message)", metadata: ["kind": "\(a.kind.rawValue)"]) }
        }
    }
}

/// Health as `/pipeline/health` tells it at the moment it is asked: the stages' statuses from
/// the running pipeline, and the last health check's report with its alerts while that
/// report is fresh (younger than two intervals). A stale report (the health stage is not
/// running) makes the pipeline unhealthy instead of keeping its last verdict.
public struct PipelineHealth: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Every stage running, a fresh report without alerts.
        case healthy
        /// Serving, with system alerts active (alert rate, dead letters, a stage restarting).
        case degraded
        /// A stage is down, or the health check has stopped reporting.
        case unhealthy
    }
    public var status: Status
    /// When this view was taken (µs since 1970, wall clock).
    public var at: Int64
    /// When the pipeline started, when known.
    public var startedAt: Int64?
    public var stages: [String: PipelineState.StageHealth]
    /// Transactions processed and alerts raised since the start.
    public var processed: Int?
    public var alertsRaised: Int?
    public var lastReport: HealthReport?
    public var reportIsStale: Bool
    /// The system alerts active now.
    public var alerts: [SystemAlert]

    public var healthy: Bool { status != .unhealthy }

    /// The view at `now`, of a pipeline checked every `interval` (nil `state`: a server without
    /// a running pipeline, judged by its last report alone).
    public static func at(
        _ now: Int64, state: PipelineState?, lastReport report: HealthReport?, interval: Duration
    ) -> PipelineHealth {
        let limit = 2 * interval.microseconds
        let stages = state?.stages(at: now) ?? report?.stages ?? [:]
        var alerts: [SystemAlert] = []
        var stale = false
        if let report {
            stale = now - report.checkedAt > limit
            if stale {
                alerts.append(
                    SystemAlert(
                        kind: .healthStale,
                        message: "the last health check ran \((now - report.checkedAt) / 1_000_000) s ago; it runs every "
                            + "\(interval.components.seconds) s: the health stage is not reporting", raisedAt: now))
            } else {
                alerts += report.alerts.filter { state == nil || !$0.kind.isStage }
            }
        } else if let state, now - state.startedAt > limit {
            stale = true
            alerts.append(
                SystemAlert(
                    kind: .healthStale,
                    message: "no health check has completed in the \((now - state.startedAt) / 1_000_000) s since the start; "
                        + "it runs every \(interval.components.seconds) s", raisedAt: now))
        }
        if state != nil { alerts = stageAlerts(stages, at: now) + alerts }
        let down = stages.values.contains { $0.isDown }
        let status: Status = down || stale ? .unhealthy : alerts.isEmpty ? .healthy : .degraded
        return PipelineHealth(
            status: status, at: now, startedAt: state?.startedAt, stages: stages,
            processed: state?.processed.load(ordering: .relaxed), alertsRaised: state?.alerts.load(ordering: .relaxed),
            lastReport: report, reportIsStale: stale, alerts: alerts)
    }

    /// An alert per stage that is down or restarting, in the stages' name order.
    static func stageAlerts(_ stages: [String: PipelineState.StageHealth], at now: Int64) -> [SystemAlert] {
        stages.sorted { $0.key < $1.key }.compactMap { name, s in
            let error = s.lastError.map { ": \($0)" } ?? ""
            switch s.status {
            case .down:
                return SystemAlert(
                    kind: .stageDown,
                    message:
                        "stage \(name) has been failing for \((now - (s.failingSince ?? s.since)) / 1_000_000) s without recovering "
                        + "(\(s.consecutiveFailures) failures in a row, still retried)\(error)", raisedAt: s.since)
            case .restarting:
                return SystemAlert(
                    kind: .stageRestarting,
                    message: "stage \(name) is restarting after \(s.consecutiveFailures) failure(s) in a row\(error)",
                    raisedAt: s.since)
            case .starting, .running, .stopped:
                return nil
            }
        }
    }
}

/// The wall clock, µs since 1970.
@usableFromInline func wallMicros() -> Int64 { Timestamp.now.microseconds }
