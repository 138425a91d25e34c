public import CardwatchCore

/// Latencies of the last million decisions (and alerts): from the record's append to the
/// log to the commit of its decision, in microseconds.
public final class LatencyRecorder: Sendable {
    public init() {}
    private static let capacity = 1 << 20
    private let samples = Locked<(all: [Int64], alerts: [Int64], next: Int, nextAlert: Int)>(([], [], 0, 0))

    public func record(_ batch: ProcessedBatch) {
        guard let decidedAt = batch.decidedAt, !batch.transactions.isEmpty else { return }
        let delay = max(0, Timestamp.now.microseconds - decidedAt)
        samples.withLock { s in
            for t in batch.transactions {
                let total = t.latencyMicros + delay
                Self.put(total, into: &s.all, at: &s.next)
                if t.decision.isAlert { Self.put(total, into: &s.alerts, at: &s.nextAlert) }
            }
        }
    }

    private static func put(_ v: Int64, into a: inout [Int64], at next: inout Int) {
        if a.count < capacity { a.append(v) } else { a[next] = v }
        next = (next + 1) % capacity
    }

    /// The `q` quantiles (0…1) of the recorded latencies, all decisions or alerts only.
    public func quantiles(_ q: [Double], alertsOnly: Bool = false) -> (count: Int, values: [Int64]) {
        var v = samples.withLock { alertsOnly ? $0.alerts : $0.all }
        guard !v.isEmpty else { return (0, q.map { _ in 0 }) }
        v.sort()
        return (v.count, q.map { v[min(v.count - 1, Int(($0 * Double(v.count - 1)).rounded(.up)))] })
    }
}
