public import CardwatchCore
import Foundation

/// What every warehouse writes the same way, whatever its store: the encodings of reasons and
/// dead letters, and the gold aggregates of a batch.
public enum WarehouseRows {
    /// The dead-letter record: source, line, every reason, and the raw record (as text when
    /// it is UTF-8, else base64), as one JSON object.
    public static func deadLetterJSON(_ d: DeadLetter) -> [UInt8] {
        var out: [UInt8] = Array(#"{"source":"#.utf8)
        TransactionEncoder.appendJSONString(d.source, to: &out)
        if let line = d.line { out.append(contentsOf: Array(#","line":\#(line)"#.utf8)) }
        out.append(contentsOf: Array(#","reasons":"#.utf8))
        appendIssues(d.issues, to: &out)
        if let text = String(validating: d.raw, as: UTF8.self) {
            out.append(contentsOf: Array(#","raw":"#.utf8))
            TransactionEncoder.appendJSONString(text, to: &out)
        } else {
            out.append(contentsOf: Array(#","raw_base64":""#.utf8))
            out.append(contentsOf: Array(Data(d.raw).base64EncodedString().utf8))
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// An alert as the `alerts` topic carries it: the `alerts` table's row as one JSON object,
    /// times as RFC 3339. Without `decidedAt` (Kafka's topic, produced at least once) a
    /// transaction decided again after a crash gives the very same record.
    public static func alertJSON(_ t: Transaction, _ d: Decision, reasons: String, decidedAt: Int64?) -> [UInt8] {
        var out = Array(#"{"transaction_id":"#.utf8)
        TransactionEncoder.appendJSONString(t.transactionID, to: &out)
        out.append(contentsOf: Array(#","card_id":"#.utf8))
        TransactionEncoder.appendJSONString(t.cardID, to: &out)
        out.append(contentsOf: Array(#","merchant_id":"#.utf8))
        TransactionEncoder.appendJSONString(t.merchantID, to: &out)
        out.append(contentsOf: Array(#","amount":"#.utf8))
        TransactionEncoder.appendNumber(t.amount, to: &out)
        out.append(contentsOf: Array(#","event_time":""#.utf8) + Array(t.timestamp.rfc3339.utf8))
        out.append(contentsOf: Array(#"","fraud_probability":"#.utf8))
        TransactionEncoder.appendNumber(d.probability, to: &out)
        out.append(contentsOf: Array(#","risk_tier":""#.utf8) + Array(d.tier.rawValue.utf8))
        out.append(contentsOf: Array(#"","action":""#.utf8) + Array(d.action.rawValue.utf8))
        out.append(contentsOf: Array(#"","model_version":"#.utf8) + Array(String(d.modelVersion).utf8))
        out.append(contentsOf: Array(#","reasons":"#.utf8) + Array(reasons.utf8))
        if let pattern = t.fraudPattern {
            out.append(contentsOf: Array(#","fraud_pattern":"#.utf8))
            TransactionEncoder.appendJSONString(pattern, to: &out)
        }
        if let decidedAt {
            out.append(contentsOf: Array(#","decided_at":""#.utf8) + Array(Timestamp(microseconds: decidedAt).rfc3339.utf8))
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A dead letter's reasons as a JSON array of {field, problem}.
    public static func reasonsJSON(issues: [FieldIssue]) -> String {
        var out: [UInt8] = []
        appendIssues(issues, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendIssues(_ issues: [FieldIssue], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, issue) in issues.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: Array(#"{"field":"#.utf8))
            TransactionEncoder.appendJSONString(issue.field, to: &out)
            out.append(contentsOf: Array(#","problem":"#.utf8))
            TransactionEncoder.appendJSONString(issue.problem, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
    }

    /// An alert's reasons as a JSON array.
    public static func reasonsJSON(_ reasons: [Reason]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, r) in reasons.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: Array(#"{"kind":""#.utf8) + Array(r.kind.rawValue.utf8) + Array(#"","name":"#.utf8))
            TransactionEncoder.appendJSONString(r.name, to: &out)
            if let v = r.value {
                out.append(contentsOf: Array(#","value":"#.utf8))
                TransactionEncoder.appendNumber(v, to: &out)
            }
            if let c = r.contribution {
                out.append(contentsOf: Array(#","contribution":"#.utf8))
                TransactionEncoder.appendNumber(c, to: &out)
            }
            if let d = r.detail {
                out.append(contentsOf: Array(#","detail":"#.utf8))
                TransactionEncoder.appendJSONString(d, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Amounts and probabilities are summed as integers (micro-dollars, nano-units of
    /// probability), so a sum does not depend on how the stream was cut into batches: a
    /// restarted run's aggregates equal an uninterrupted run's to the last digit.
    public static func micros(_ amount: Double) -> Int64 { Int64((amount * 1e6).rounded()) }
    public static func nanos(_ probability: Double) -> Int64 { Int64((probability * 1e9).rounded()) }

    /// The rule names among a decision's reasons, comma-separated (nil: none).
    public static func ruleHits(_ d: Decision) -> String? {
        d.reasons.contains { $0.kind == .rule }
            ? d.reasons.filter { $0.kind == .rule }.map(\.name).joined(separator: ",") : nil
    }
}

/// One bucket of the gold aggregates (an event hour, a minute of decision time).
public struct GoldTotals: Sendable, Equatable {
    public var transactions = 0
    /// Sums as integers (µ-units of amount, n-units of probability), see `WarehouseRows.micros`.
    public var amount: Int64 = 0
    public var alerts = 0
    public var reviews = 0
    public var declines = 0
    public var probability: Int64 = 0
    public var latency: Int64 = 0
    public var latencyMax: Int64 = 0
    public init() {}

    /// The buckets' sum (their maximum latency the largest).
    public init(summing buckets: [GoldTotals]) {
        for h in buckets {
            transactions += h.transactions
            amount += h.amount
            alerts += h.alerts
            reviews += h.reviews
            declines += h.declines
            probability += h.probability
            latency += h.latency
            latencyMax = max(latencyMax, h.latencyMax)
        }
    }

    mutating func add(_ p: ProcessedTransaction) {
        let d = p.decision
        transactions += 1
        amount += WarehouseRows.micros(p.transaction.amount)
        alerts += d.isAlert ? 1 : 0
        reviews += d.action == .review ? 1 : 0
        declines += d.action == .decline ? 1 : 0
        probability += WarehouseRows.nanos(d.probability)
        latency += p.latencyMicros
        latencyMax = max(latencyMax, p.latencyMicros)
    }

    /// The transactions' totals per event hour (its start, µs since 1970), in hour order.
    public static func hourly(_ transactions: [ProcessedTransaction]) -> [(hour: Int64, totals: GoldTotals)] {
        var hours: [Int64: GoldTotals] = [:]
        for p in transactions {
            let micros = p.transaction.timestamp.microseconds
            let hour = micros - ((micros % 3_600_000_000) + 3_600_000_000) % 3_600_000_000
            // In place (`_modify`): one hash lookup per transaction.
            hours[hour, default: GoldTotals()].add(p)
        }
        return hours.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// A transaction's outcome moving from `old` to `new` (nil: unknown; 1: fraud; 0: legitimate):
/// what one label adds to the confirmed-outcome aggregates (labelled, confirmed frauds and
/// their amount, and the same among alerts), so they always equal a count over silver's labels.
public struct OutcomeDelta: Sendable, Equatable {
    public var labelled: Int64
    public var frauds: Int64
    public var amount: Int64
    public var alertsLabelled: Int64
    public var alertsConfirmed: Int64

    public init(old: Int64?, new: Int64, alert: Bool, amountMicros: Int64) {
        labelled = old == nil ? 1 : 0
        frauds = new - (old ?? 0)
        amount = frauds * amountMicros
        alertsLabelled = alert ? labelled : 0
        alertsConfirmed = alert ? frauds : 0
    }

    public var isZero: Bool { labelled == 0 && frauds == 0 }
    /// In the order of the aggregates' columns (labelled, confirmed_frauds, fraud_amount_micros,
    /// alerts_labelled, alerts_confirmed).
    public var moves: [Int64] { [labelled, frauds, amount, alertsLabelled, alertsConfirmed] }
}
