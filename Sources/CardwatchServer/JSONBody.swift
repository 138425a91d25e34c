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

    /// RFC 3339 in UTC, as the transaction schema writes times.
    static func time(_ micros: Int64) -> String { Timestamp(microseconds: micros).rfc3339 }

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

    /// A decision: the transaction's own time (`event_time`, simulated for the live generator)
    /// and the wall-clock time it was decided (`decided_at`), side by side.
    static func decision(_ id: String, _ d: Decision, latencyMs: Double) -> [String: Any] {
        [
            "transaction_id": id, "fraud_probability": d.probability, "risk_tier": d.tier.rawValue, "action": d.action.rawValue,
            "reasons": d.reasons.map(reason), "model_version": d.modelVersion, "latency_ms": latencyMs,
            "event_time": time(d.eventTime), "decided_at": time(d.decidedAt),
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
        out.reserveCapacity(320 + 96 * d.reasons.count)
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
        out.append(contentsOf: #","event_time":""#.utf8)
        Timestamp(microseconds: d.eventTime).write(to: &out)
        out.append(contentsOf: #"","decided_at":""#.utf8)
        Timestamp(microseconds: d.decidedAt).write(to: &out)
        out.append(UInt8(ascii: "\""))
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
            "latency_ms": Double(s.latencyMicros) / 1000, "duplicate": duplicate, "event_time": time(s.eventTime),
            "decided_at": time(s.decidedAt),
        ]
    }

    static func alert(_ a: AlertRecord) -> [String: Any] {
        var o: [String: Any] = [
            "transaction_id": a.transactionID, "card_id": a.cardID, "merchant_id": a.merchantID, "amount": a.amount,
            "timestamp": a.timestamp, "fraud_probability": a.fraudProbability, "risk_tier": a.riskTier, "action": a.action,
            "model_version": a.modelVersion, "reasons": reasons(a.reasonsJSON), "decided_at": time(a.decidedAt),
            "event_time": a.timestamp,
        ]
        if let p = a.fraudPattern { o["fraud_pattern"] = p }
        if let f = a.feedback { o["feedback"] = f }
        return o
    }

    /// `/stats/summary`: the alert rate (what the model flagged) apart from what is confirmed
    /// (labels and feedback on the window's transactions): confirmed frauds, their rate and
    /// amount, and the precision of the alerts whose outcome is known (null when none is).
    static func summary(_ s: WindowStats) -> [String: Any] {
        func share(_ a: Int, _ b: Int) -> Any { b > 0 ? Double(a) / Double(b) : NSNull() }
        var o: [String: Any] = [
            "window_hours": 24, "transactions": s.transactions, "alerts": s.alerts, "reviews": s.reviews,
            "declines": s.declines, "alert_rate": s.transactions > 0 ? Double(s.alerts) / Double(s.transactions) : 0,
            "labelled": s.labelled, "confirmed_frauds": s.confirmedFrauds,
            "confirmed_fraud_rate": s.transactions > 0 ? Double(s.confirmedFrauds) / Double(s.transactions) : 0,
            "fraud_amount": Double(s.fraudAmountMicros) / 1e6, "alerts_with_outcome": s.alertsLabelled,
            "alerts_confirmed": s.alertsConfirmed, "alert_precision": share(s.alertsConfirmed, s.alertsLabelled),
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
            "alert_rate": b.transactions > 0 ? Double(b.alerts) / Double(b.transactions) : 0,
        ]
        if let l = b.meanLatencyMicros { o["mean_latency_ms"] = l / 1000 }
        return o
    }

    /// `/pipeline/health`: taken at the request; the last check's report under `last_check`.
    static func health(_ h: PipelineHealth, lag: Int64?, deadLettersTotal: Int?) -> [String: Any] {
        func orNull(_ v: Any?) -> Any { v ?? NSNull() }
        var o: [String: Any] = [
            "status": h.status.rawValue, "healthy": h.healthy, "checked_at": time(h.at),
            "started_at": orNull(h.startedAt.map(time)),
            "stages": h.stages.mapValues(stage), "alerts": h.alerts.map(systemAlert),
            "processed": orNull(h.processed), "alerts_raised": orNull(h.alertsRaised), "lag": orNull(lag),
            "dead_letters_total": orNull(deadLettersTotal), "last_check": NSNull(),
        ]
        if let r = h.lastReport {
            o["last_check"] =
                [
                    "checked_at": time(r.checkedAt), "stale": h.reportIsStale, "interval_seconds": r.intervalSeconds,
                    "processed": r.processed, "throughput_per_second": r.throughputPerSecond, "lag": r.lag,
                    "dead_letters_recent": r.deadLettersRecent, "alert_rate": orNull(r.alertRate),
                    "baseline_alert_rate": orNull(r.baselineAlertRate), "alerts": r.alerts.map(systemAlert),
                ] as [String: Any]
        }
        return o
    }

    static func stage(_ s: PipelineState.StageHealth) -> [String: Any] {
        [
            "status": s.status.rawValue, "since": time(s.since), "restarts": s.restarts,
            "consecutive_failures": s.consecutiveFailures, "last_error": (s.lastError as Any?) ?? NSNull(),
            "last_error_at": (s.lastErrorAt.map(time) as Any?) ?? NSNull(),
            "next_attempt_at": (s.nextAttemptAt.map(time) as Any?) ?? NSNull(),
            "failing_since": (s.failingSince.map(time) as Any?) ?? NSNull(),
        ]
    }

    static func feedback(_ f: AnalystFeedback, alert: Bool) -> [String: Any] {
        [
            "transaction_id": f.transactionID, "label": f.fraud ? "fraud" : "legitimate",
            "analyst": (f.analyst as Any?) ?? NSNull(), "note": (f.note as Any?) ?? NSNull(), "recorded_at": time(f.at),
            "alert": alert, "appended_to": "labels",
        ]
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
