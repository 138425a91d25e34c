import CardwatchCore
public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// A system-level alert (about the pipeline, not a transaction).
public struct SystemAlert: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case fraudRateHigh = "fraud_rate_high"
        case fraudRateAboveBaseline = "fraud_rate_above_baseline"
        case deadLetters = "dead_letters"
        case stageDown = "stage_down"
        case retrainingFailed = "retraining_failed"
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
    /// Share of the interval's transactions decided as alerts (tier high or critical).
    public var fraudRate: Double?
    /// The same share over the last 7 days of event time, from the hourly aggregates.
    public var baselineFraudRate: Double?
    public var healthy: Bool
    public var stages: [String: PipelineState.StageHealth]
    public var alerts: [SystemAlert]
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

/// The health check: throughput, lag, dead letters and fraud rate since the last check,
/// with system alerts when the fraud rate exceeds `maxFraudRate`, when it exceeds
/// `baselineFactor` times its 7-day baseline, when dead letters arrived in the last
/// `deadLetterWindow`, and when a stage is down.
public struct HealthCheck: Sendable {
    public let store: any MonitoringStore
    public let state: PipelineState
    public var maxFraudRate = 0.05
    public var baselineFactor = 2.0
    public var deadLetterWindow: TimeInterval = 300
    /// Below this many transactions in an interval the fraud rate is not judged (too noisy).
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
        let previous = last ?? (now, processed, alertCount)
        last = (now, processed, alertCount)
        let seconds = max(1e-6, Double(now - previous.at) / 1e6)
        let interval = processed - previous.processed
        let intervalAlerts = alertCount - previous.alerts
        let deadLetters = try store.deadLetterCounts(since: now - Int64(deadLetterWindow * 1e6))
        let base = try store.baseline()
        let rate = interval >= minimumTransactions ? Double(intervalAlerts) / Double(interval) : nil
        let baseline = base.transactions >= minimumTransactions ? Double(base.alerts) / Double(base.transactions) : nil
        var alerts: [SystemAlert] = []
        func pct(_ x: Double) -> String { String(format: "%.2f %%", x * 100) }
        if let rate, rate > maxFraudRate {
            alerts.append(
                SystemAlert(
                    kind: .fraudRateHigh,
                    message: "fraud rate \(pct(rate)) over the last \(Int(seconds)) s exceeds \(pct(maxFraudRate)) "
                        + "(\(intervalAlerts) alerts in \(interval) transactions)", raisedAt: now))
        }
        if let rate, let baseline, baseline > 0, rate > baselineFactor * baseline {
            alerts.append(
                SystemAlert(
                    kind: .fraudRateAboveBaseline,
                    message: "fraud rate \(pct(rate)) is more than \(baselineFactor)× its 7-day baseline \(pct(baseline))",
                    raisedAt: now))
        }
        if deadLetters.recent > 0 {
            alerts.append(
                SystemAlert(
                    kind: .deadLetters,
                    message: "\(deadLetters.recent) records went to the dead-letter log in the last \(Int(deadLetterWindow)) s",
                    raisedAt: now))
        }
        let stages = state.stageHealth
        for (name, s) in stages.sorted(by: { $0.key < $1.key }) where s.down {
            alerts.append(
                SystemAlert(
                    kind: .stageDown, message: "stage \(name) failed \(s.failures) times and is down: \(s.lastError ?? "")",
                    raisedAt: now))
        }
        let report = HealthReport(
            checkedAt: now, intervalSeconds: seconds, processed: interval, throughputPerSecond: Double(interval) / seconds,
            lag: try store.processorLag(), deadLettersTotal: deadLetters.total, deadLettersRecent: deadLetters.recent,
            fraudRate: rate, baselineFraudRate: baseline, healthy: state.isHealthy, stages: stages, alerts: alerts)
        try store.record(report)
        for a in alerts { try store.record(a) }
        return report
    }
}

/// Runs the health check every `interval` until shutdown.
public struct HealthService: Service {
    public var check: HealthCheck
    public let interval: Duration
    public let logger: Logger

    public init(check: HealthCheck, interval: Duration, logger: Logger) {
        self.check = check
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var check = check
        _ = try check.run(now: wallMicros())  // the baseline for the first interval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            let report = try check.run(now: wallMicros())
            for a in report.alerts { logger.warning("system alert: \(a.message)", metadata: ["kind": "\(a.kind.rawValue)"]) }
        }
    }
}

func wallMicros() -> Int64 { Timestamp.now.microseconds }
