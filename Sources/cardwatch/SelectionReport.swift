import CardwatchModel
import CardwatchPipeline
import Foundation

/// How `train` and `models show` report the model selection and the calibration.
extension Report {
    /// The chosen parameters, the search's candidates and scores, the calibration choice,
    /// the test window's Brier score and reliability table, for `train --json`.
    static func selectionJSON(_ outcome: TrainingOutcome) -> [String: Any] {
        let a = outcome.artifact
        var o: [String: Any] = ["model_kind": a.kind.rawValue, "parameters": a.parameters]
        o["brier_score"] = outcome.metrics.brierScore.map { $0 as Any } ?? NSNull()
        o["reliability"] = Metrics.reliability(scores: outcome.testScores, labels: outcome.test.matrix.labels).map {
            [
                "lower": $0.lower, "upper": $0.upper, "rows": $0.rows, "mean_probability": $0.meanProbability,
                "fraud_share": $0.fraudShare,
            ]
                as [String: Any]
        }
        if let c = a.calibrationChoice {
            o["calibration"] =
                [
                    "method": c.method, "platt_brier": c.plattBrier, "isotonic_brier": c.isotonicBrier ?? .nan,
                    "platt_average_precision": c.plattAveragePrecision,
                    "isotonic_average_precision": c.isotonicAveragePrecision ?? .nan,
                ] as [String: Any]
        }
        if let s = a.search {
            o["search"] =
                [
                    "budget_seconds": s.budget, "listed": s.listed, "tried": s.tried, "spent_seconds": s.spent,
                    "candidate_rows": s.candidateRows, "validation_rows": s.validationRows,
                    "validation_frauds": s.validationFrauds, "chosen": s.chosen,
                    "blend_average_precision": s.blendAveragePrecision.map { $0 as Any } ?? NSNull(),
                    "blended": s.blended.map { $0 as Any } ?? NSNull(),
                    "finals": (s.finals ?? []).enumerated().map { j, f in
                        [
                            "candidate": f.candidate, "rows": f.rows, "validation_rows": f.validationRows,
                            "trees": f.trees, "average_precision": f.averagePrecision, "cost_seconds": f.cost,
                            "wall_seconds": s.scores.count + j < outcome.candidateSeconds.count
                                ? outcome.candidateSeconds[s.scores.count + j] : .nan,
                        ] as [String: Any]
                    },
                    "candidates": s.scores.enumerated().map { i, c in
                        [
                            "kind": c.kind.rawValue, "average_precision": c.averagePrecision, "trees": c.trees,
                            "cost_seconds": c.cost, "parameters": c.parameters,
                            "wall_seconds": i < outcome.candidateSeconds.count ? outcome.candidateSeconds[i] : .nan,
                        ] as [String: Any]
                    },
                ] as [String: Any]
        } else {
            o["search"] = NSNull()
        }
        return o
    }

    /// The same for people: one line per candidate, the winner marked.
    static func selectionLines(_ a: ModelArtifact) -> [String] {
        var lines: [String] = []
        let skip: Set<String> = ["seed", "max_bins"]
        func text(_ p: [String: String]) -> String {
            p.filter { !skip.contains($0.key) }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        lines.append("parameters: \(text(a.parameters))")
        if let s = a.search {
            lines.append(
                "model search: \(s.tried) of \(s.listed) candidates in a budget of \(format1(s.budget)) s "
                    + "(\(format1(s.spent)) reference s spent), fitted on \(grouped(s.candidateRows)) rows, "
                    + "scored by average precision on the latest \(grouped(s.validationRows)) training rows "
                    + "(\(s.validationFrauds) fraud)")
            for (i, c) in s.scores.enumerated() {
                lines.append(
                    "  \(i == s.chosen ? "*" : " ") \(c.kind.rawValue)  AP \(String(format: "%.4f", c.averagePrecision))  "
                        + "\(c.trees) trees  \(text(c.parameters.filter { $0.key != "trees" && $0.key != "best_iteration" }))")
            }
            for f in s.finals ?? [] {
                lines.append(
                    "  \(f.candidate == s.chosen ? "*" : " ") candidate \(f.candidate + 1) again on \(grouped(f.rows)) rows: "
                        + "AP \(String(format: "%.4f", f.averagePrecision)) on \(grouped(f.validationRows)) validation rows, "
                        + "\(f.trees) trees")
            }
            if let ap = s.blendAveragePrecision, let finals = s.finals, finals.count == 2 {
                lines.append(
                    "  \(s.blended == true ? "*" : " ") candidates \(finals[0].candidate + 1) and \(finals[1].candidate + 1) "
                        + "averaged: AP \(String(format: "%.4f", ap))")
            }
        }
        if let c = a.calibrationChoice {
            lines.append(
                "calibration: \(c.method) (held-out Brier: platt \(String(format: "%.5f", c.plattBrier))"
                    + (c.isotonicBrier.map { ", isotonic \(String(format: "%.5f", $0))" } ?? "") + ")")
        }
        return lines
    }
}
