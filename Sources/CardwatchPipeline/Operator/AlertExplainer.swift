import CardwatchFeatures
import Dispatch

/// A decided row whose alert may be explained: features in, reasons out.
protocol ExplainableRow {
    var features: FeatureVector { get }
    var decision: Decision { get set }
}

extension ProcessedTransaction: ExplainableRow {}
extension DecidedTransaction: ExplainableRow {}

/// TreeSHAP reasons for a batch's alerts, shared with the other core: explaining one costs
/// about as much as twenty-five feature updates and scorings. Each alert comes in
/// `Scorer.explanationParts` parts, so that even one alert (the HTTP API's groups have one or
/// none) is shared; when no other core is free, the calling thread takes every part itself
/// (`concurrentPerform` hands out iterations as they are asked for).
enum AlertExplainer {
    static func explain<Row: ExplainableRow>(_ rows: inout [Row], scorer: Scorer) {
        let alerts = rows.indices.filter { rows[$0].decision.isAlert }
        guard !alerts.isEmpty else { return }
        let width = Scorer.explanationParts * Feature.count
        var parts = [Double](repeating: 0, count: alerts.count * width)
        let features = alerts.map { rows[$0].features }
        features.withUnsafeBufferPointer { features in
            parts.withUnsafeMutableBufferPointer { out in
                let task = ExplainTask(features: features, out: out, scorer: scorer)
                DispatchQueue.concurrentPerform(iterations: alerts.count * Scorer.explanationParts) { task.explain($0) }
            }
        }
        for (k, i) in alerts.enumerated() {
            rows[i].decision.reasons =
                scorer.reasons(rows[i].features, parts: parts[k * width..<(k + 1) * width]) + rows[i].decision.reasons
        }
    }
}

/// The buffers of one batch's explanations. `@unchecked Sendable` is sound: they outlive
/// `concurrentPerform`, `features` is only read, and iteration `k` (part `k % explanationParts`
/// of alert `k / explanationParts`) writes only its own `Feature.count` values of `out`,
/// each `k` taken once.
private struct ExplainTask: @unchecked Sendable {
    let features: UnsafeBufferPointer<FeatureVector>
    let out: UnsafeMutableBufferPointer<Double>
    let scorer: Scorer

    func explain(_ k: Int) {
        let phi = UnsafeMutableBufferPointer(rebasing: out[k * Feature.count..<(k + 1) * Feature.count])
        scorer.accumulate(features[k / Scorer.explanationParts], part: k % Scorer.explanationParts, into: phi)
    }
}
