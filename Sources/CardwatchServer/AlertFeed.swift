import CardwatchCore
public import CardwatchPipeline
import Foundation
import Synchronization

/// Fans committed alerts out to the live feed's subscribers (WebSocket connections). Each
/// subscriber has a bounded buffer: a slow client loses its oldest alerts, it never slows
/// the pipeline (the stream never stops for a slow client).
public final class AlertFeed: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])
    public static let buffer = 256

    public init() {}

    public var subscriberCount: Int { subscribers.withLock { $0.count } }

    /// A stream of alerts as JSON text, until the caller stops iterating.
    public func subscribe() -> AsyncStream<String> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(Self.buffer))
        continuation.onTermination = { [weak self] _ in self?.subscribers.withLock { _ = $0.removeValue(forKey: id) } }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    /// A committed batch: each alert in it, to every subscriber.
    public func publish(_ batch: ProcessedBatch) {
        let alerts = batch.transactions.filter(\.decision.isAlert)
        guard !alerts.isEmpty else { return }
        let targets = subscribers.withLock { Array($0.values) }
        guard !targets.isEmpty else { return }
        for a in alerts {
            let t = a.transaction
            var o = JSONBody.decision(t.transactionID, a.decision, latencyMs: Double(a.latencyMicros) / 1000)
            o["card_id"] = t.cardID
            o["merchant_id"] = t.merchantID
            o["amount"] = t.amount
            o["timestamp"] = t.timestamp.rfc3339
            if let p = t.fraudPattern { o["fraud_pattern"] = p }
            guard let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            for c in targets { c.yield(text) }
        }
    }

    /// Stored alerts (an API node's, read from the warehouse the processors commit to), oldest first.
    public func publish(_ alerts: [AlertRecord]) {
        guard !alerts.isEmpty else { return }
        let targets = subscribers.withLock { Array($0.values) }
        guard !targets.isEmpty else { return }
        for a in alerts {
            guard let data = try? JSONSerialization.data(withJSONObject: JSONBody.alert(a), options: [.sortedKeys]) else {
                continue
            }
            let text = String(decoding: data, as: UTF8.self)
            for c in targets { c.yield(text) }
        }
    }
}
