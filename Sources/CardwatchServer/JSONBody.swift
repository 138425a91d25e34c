import CardwatchCore
import CardwatchModel
import CardwatchPipeline
import Foundation
import Hummingbird

/// The API's JSON shapes (snake_case, as the transaction schema).
enum JSONBody {
    static func response(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: try body(object)))
    }

    static func body(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static func time(_ micros: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(micros) / 1e6))
    }

    static func reasons(_ json: String?) -> Any {
        guard let json, let parsed = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else { return [Any]() }
        return parsed
    }

    static func reason(_ r: Reason) -> [String: Any] {
        var o: [String: Any] = ["kind": r.kind.rawValue, "name": r.name]
        if let v = r.value { o["value"] = v }
        if let c = r.contribution { o["contribution"] = c }
        if let d = r.detail { o["detail"] = d }
        return o
    }

    static func decision(_ id: String, _ d: Decision, latencyMs: Double) -> [String: Any] {
        [
            "transaction_id": id, "fraud_probability": d.probability, "risk_tier": d.tier.rawValue, "action": d.action.rawValue,
            "reasons": d.reasons.map(reason), "model_version": d.modelVersion, "latency_ms": latencyMs,
        ]
    }

    static func decisionResponse(_ id: String, _ d: Decision, latencyMs: Double) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: decisionBody(id, d, latencyMs: latencyMs)))
    }

    /// The hot path's answer, written directly (JSONSerialization costs more than the decision).
    static func decisionBody(_ id: String, _ d: Decision, latencyMs: Double) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(256 + 96 * d.reasons.count)
        out.append(contentsOf: #"{"transaction_id":"#.utf8)
        TransactionEncoder.appendJSONString(id, to: &out)
        out.append(contentsOf: #","fraud_probability":"#.utf8)
        TransactionEncoder.appendNumber(d.probability, to: &out)
        out.append(contentsOf: #","risk_tier":""#.utf8)
        out.append(contentsOf: d.tier.rawValue.utf8)
        out.append(contentsOf: #"","action":""#.utf8)
        out.append(contentsOf: d.action.rawValue.utf8)
        out.append(contentsOf: #"","model_version":"#.utf8)
        out.append(contentsOf: String(d.modelVersion).utf8)
        out.append(contentsOf: #","latency_ms":"#.utf8)
        TransactionEncoder.appendNumber(latencyMs, to: &out)
        out.append(contentsOf: #","reasons":["#.utf8)
        for (i, r) in d.reasons.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"kind":""#.utf8)
            out.append(contentsOf: r.kind.rawValue.utf8)
            out.append(contentsOf: #"","name":"#.utf8)
            TransactionEncoder.appendJSONString(r.name, to: &out)
            if let v = r.value {
                out.append(contentsOf: #","value":"#.utf8)
                TransactionEncoder.appendNumber(v, to: &out)
            }
            if let c = r.contribution {
                out.append(contentsOf: #","contribution":"#.utf8)
                TransactionEncoder.appendNumber(c, to: &out)
            }
            if let detail = r.detail {
                out.append(contentsOf: #","detail":"#.utf8)
                TransactionEncoder.appendJSONString(detail, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}".utf8)
        return ByteBuffer(bytes: out)
    }

    static func stored(_ s: StoredDecision, duplicate: Bool) -> [String: Any] {
        var reasons = (Self.reasons(s.reasonsJSON) as? [Any]) ?? []
        if s.reasonsJSON == nil {
            reasons = s.ruleHits.map { ["kind": "rule", "name": $0] as [String: Any] }
        }
        return [
            "transaction_id": s.transactionID, "fraud_probability": s.fraudProbability, "risk_tier": s.riskTier,
            "action": s.action, "reasons": reasons, "model_version": s.modelVersion,
            "latency_ms": Double(s.latencyMicros) / 1000, "duplicate": duplicate,
        ]
    }

    static func alert(_ a: AlertRecord) -> [String: Any] {
        var o: [String: Any] = [
            "transaction_id": a.transactionID, "card_id": a.cardID, "merchant_id": a.merchantID, "amount": a.amount,
            "timestamp": a.timestamp, "fraud_probability": a.fraudProbability, "risk_tier": a.riskTier, "action": a.action,
            "model_version": a.modelVersion, "reasons": reasons(a.reasonsJSON), "decided_at": time(a.decidedAt),
        ]
        if let p = a.fraudPattern { o["fraud_pattern"] = p }
        if let f = a.feedback { o["feedback"] = f }
        return o
    }

    static func summary(_ s: WindowStats) -> [String: Any] {
        var o: [String: Any] = [
            "window_hours": 24, "transactions": s.transactions, "alerts": s.alerts, "reviews": s.reviews,
            "declines": s.declines, "fraud_rate": s.transactions > 0 ? Double(s.alerts) / Double(s.transactions) : 0,
            "alerts_by_tier": s.alertsByTier, "alerts_by_pattern": s.alertsByPattern,
            "latency_ms": ["max": Double(s.maxLatencyMicros) / 1000] as [String: Any],
        ]
        if let m = s.meanLatencyMicros { o["latency_ms"] = ["mean": m / 1000, "max": Double(s.maxLatencyMicros) / 1000] }
        if let p = s.meanProbability { o["mean_fraud_probability"] = p }
        return o
    }

    static func bucket(_ b: TimeBucket) -> [String: Any] {
        var o: [String: Any] = [
            "start": time(b.start), "transactions": b.transactions, "alerts": b.alerts,
            "fraud_rate": b.transactions > 0 ? Double(b.alerts) / Double(b.transactions) : 0,
        ]
        if let l = b.meanLatencyMicros { o["mean_latency_ms"] = l / 1000 }
        return o
    }

    static func health(_ h: HealthReport) -> [String: Any] {
        var o: [String: Any] = [
            "checked_at": time(h.checkedAt), "interval_seconds": h.intervalSeconds, "processed": h.processed,
            "throughput_per_second": h.throughputPerSecond, "lag": h.lag, "dead_letters_total": h.deadLettersTotal,
            "dead_letters_recent": h.deadLettersRecent, "healthy": h.healthy,
            "stages": h.stages.mapValues {
                ["failures": $0.failures, "down": $0.down, "last_error": ($0.lastError as Any?) ?? NSNull()]
            },
            "alerts": h.alerts.map(systemAlert),
        ]
        if let r = h.fraudRate { o["fraud_rate"] = r }
        if let b = h.baselineFraudRate { o["baseline_fraud_rate"] = b }
        return o
    }

    static func systemAlert(_ a: SystemAlert) -> [String: Any] {
        ["kind": a.kind.rawValue, "message": a.message, "raised_at": time(a.raisedAt)]
    }

    static func model(_ m: ModelSummary) -> [String: Any] {
        var o: [String: Any] = ["version": m.version, "kind": m.kind, "stage": m.stage, "created_at": m.createdAt]
        if let v = m.rocAUC { o["roc_auc"] = v }
        if let v = m.averagePrecision { o["average_precision"] = v }
        if let w = m.trainingWindow { o["training_window"] = ["from": w.from, "to": w.to] }
        if let w = m.testWindow { o["test_window"] = ["from": w.from, "to": w.to] }
        return o
    }
}
