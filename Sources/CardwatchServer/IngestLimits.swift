import CardwatchCore
import Foundation

/// What one write request may cost: records per request, listed errors per answer, and the
/// dead letters a source may write. All decided before anything is written.
public struct IngestLimits: Sendable {
    /// Records in one `POST /v1/transactions` body at most (413 beyond).
    public var maxRecords = 10_000
    /// Invalid records whose errors an answer lists; the rest are counted.
    public var listedInvalid = 100
    public var deadLetters = DeadLetterBudget(DeadLetterAllowance())

    public init() {}
}

/// How many dead letters one source (a client address) may write: `burst` at once, refilled
/// at `perSecond`. A flood of invalid records costs its sender 429s, not the server's disk.
public struct DeadLetterAllowance: Sendable, Equatable {
    public var perSecond: Double = 100
    public var burst = 1_000
    public init(perSecond: Double = 100, burst: Int = 1_000) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// Token buckets of dead letters, one per source. The table holds at most `maxSources`
/// buckets that are not full; beyond that, new sources share one bucket (a flood from many
/// addresses is still bounded as a whole).
public final class DeadLetterBudget: Sendable {
    public let allowance: DeadLetterAllowance
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let buckets = Locked<[String: Bucket]>([:])
    static let maxSources = 10_000
    static let sharedSource = "(other sources)"

    public init(_ allowance: DeadLetterAllowance) { self.allowance = allowance }

    public enum Verdict: Equatable, Sendable {
        case granted
        /// Try again after this many seconds.
        case later(seconds: Int)
        /// More than a source may ever write at once (`burst`).
        case never
    }

    /// Takes `count` dead letters from `source`'s allowance, or none at all.
    public func take(_ count: Int, source: String, now: ContinuousClock.Instant = .now) -> Verdict {
        guard count > 0 else { return .granted }
        guard count <= allowance.burst else { return .never }
        let burst = Double(allowance.burst)
        return buckets.withLock { table in
            var key = source
            if table[key] == nil && table.count >= Self.maxSources {
                table = table.filter { Self.refilled($0.value, now: now, allowance: allowance) < burst }
                if table.count >= Self.maxSources { key = Self.sharedSource }
            }
            var bucket = table[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = Self.refilled(bucket, now: now, allowance: allowance)
            bucket.updated = now
            defer { table[key] = bucket }
            if bucket.tokens >= Double(count) {
                bucket.tokens -= Double(count)
                return .granted
            }
            guard allowance.perSecond > 0 else { return .never }
            return .later(seconds: max(1, Int(((Double(count) - bucket.tokens) / allowance.perSecond).rounded(.up))))
        }
    }

    private static func refilled(_ bucket: Bucket, now: ContinuousClock.Instant, allowance: DeadLetterAllowance) -> Double {
        let elapsed = now - bucket.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(Double(allowance.burst), bucket.tokens + max(0, seconds) * allowance.perSecond)
    }
}
