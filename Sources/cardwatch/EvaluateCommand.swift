import ArgumentParser
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a registered model on labelled data (optionally a time window of it), or compare several.",
        discussion: """
            --model takes a version number or 'production'; --compare a comma-separated list of
            them, scored on the same rows: the figures side by side, a bootstrap confidence
            interval on each average precision, and on the difference of each model's AP from
            the first one's (the rows resampled with replacement, the same draw for every model).

            Examples:
              cardwatch evaluate --model 3 --data history.jsonl --from 2026-02-01 --to 2026-02-08
              cardwatch evaluate --compare production,4,5 --data history.jsonl --from 2026-02-01
            """
    )

    @Option(help: "Model version, or 'production'.") var model: String?
    @Option(
        help: ArgumentHelp(
            "Models to compare on the same rows: versions or 'production', comma-separated.", valueName: "v1,v2,..."))
    var compare: String?
    @OptionGroup var source: DataOptions
    @Option(help: "Only rows at or after this date.") var from: String?
    @Option(help: "Only rows before this date.") var to: String?
    @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
    @OptionGroup var registryOption: RegistryOption
    @Option(help: "Write transaction_id,timestamp,card_id,score,label for every evaluated row (with --model).")
    var predictionsOut: String?
    @Option(help: "With --compare: bootstrap replicates for the confidence intervals (0: none).") var bootstrap = 1000
    @Option(help: "With --compare: confidence level of the intervals.") var confidence = 0.95
    @Option(help: "With --compare: seed of the bootstrap's draws.") var seed: UInt64 = 1
    @Flag(help: "Print the metrics as one JSON object.") var json = false

    func validate() throws {
        if (model == nil) == (compare == nil) { throw ValidationError("give exactly one of --model and --compare") }
        if compare != nil && predictionsOut != nil { throw ValidationError("--predictions-out goes with --model, not --compare") }
        if !(0...100_000).contains(bootstrap) { throw ValidationError("--bootstrap must be within 0…100000") }
        if !(confidence > 0 && confidence < 1) { throw ValidationError("--confidence must be within (0, 1)") }
    }

    func run() throws {
        let registry = try registryOption.open(dataDir: dataDir)
        let versions = try (compare.map(Self.list) ?? [model!]).map { try Models.version($0, registry) }
        if versions.count < 2 && compare != nil { throw ValidationError("--compare needs at least two models") }
        if Set(versions).count != versions.count { throw ValidationError("--compare names one model twice: \(versions)") }
        let (dataset, names, _, _) = try source.load(command: "evaluate")
        let artifacts = try versions.map { try registry.artifact(version: $0, expectedFeatures: names) }
        let fromTime = try from.map { try Input.instant($0, option: "--from") }
        let toTime = try to.map { try Input.instant($0, option: "--to") }
        let results = artifacts.map { ModelTraining.evaluate($0, on: dataset, from: fromTime, to: toTime) }
        let rows = results[0].rows
        guard rows.rows > 0 else { throw ValidationError("no labelled rows in the chosen window") }
        guard compare != nil else {
            if let predictionsOut { try Report.writePredictions(rows, results[0].scores, to: predictionsOut) }
            if json {
                Report.printJSON(results[0].metrics, version: versions[0])
            } else {
                print("model v\(versions[0]) on \(grouped(rows.rows)) rows")
                Report.printTable(results[0].metrics)
            }
            return
        }
        let boot =
            bootstrap > 0
            ? AveragePrecisionBootstrap(
                scores: results.map(\.scores), labels: rows.matrix.labels, replicates: bootstrap, seed: seed, level: confidence)
            : nil
        let comparison = Comparison(versions: versions, metrics: results.map(\.metrics), bootstrap: boot)
        if json {
            comparison.printJSON()
        } else {
            comparison.printTable(rows: rows.rows, positives: results[0].metrics.positives)
        }
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// Several models' figures on the same rows, for `evaluate --compare`.
struct Comparison {
    var versions: [Int]
    var metrics: [EvaluationMetrics]
    var bootstrap: AveragePrecisionBootstrap?

    func printTable(rows: Int, positives: Int) {
        func f(_ v: Double?) -> String { v.map { $0.isNaN ? "—" : String(format: "%.4f", $0) } ?? "—" }
        func line(_ name: String, _ values: [String]) {
            print(name.padding(toLength: 26, withPad: " ", startingAt: 0) + values.map { $0.leftPadded(to: 16) }.joined())
        }
        print("\(versions.count) models on the same \(grouped(rows)) rows, fraud \(grouped(positives))")
        line("", versions.map { "v\($0)" })
        line("ROC AUC", metrics.map { f($0.rocAUC) })
        line("average precision", metrics.map { f($0.averagePrecision) })
        if let bootstrap {
            let level = "\(Int((bootstrap.level * 100).rounded())) %"
            line("  AP \(level) interval", metrics.indices.map { m in interval(bootstrap.interval(model: m)) })
            line(
                "  AP − v\(versions[0]) \(level)",
                metrics.indices.map { m in m == 0 ? "" : interval(bootstrap.differenceInterval(model: m, base: 0)) })
            line(
                "  AP above v\(versions[0])",
                metrics.indices.map { m in
                    m == 0 ? "" : bootstrap.shareAbove(model: m, base: 0).map { String(format: "%.1f %%", 100 * $0) } ?? "—"
                })
        }
        line("recall at 1 % FPR", metrics.map { f($0.recallAt1PctFPR) })
        line("card precision@100", metrics.map { f($0.cardPrecisionAt100) })
        line("Brier score", metrics.map { f($0.brierScore) })
        line("review threshold", metrics.map { f($0.threshold) })
        for pattern in Set(metrics.flatMap { $0.perPatternRecall.keys }).sorted() {
            line("  recall \(pattern)", metrics.map { f($0.perPatternRecall[pattern]) })
        }
        if let bootstrap {
            print("intervals: \(bootstrap.replicates.first?.count ?? 0) bootstrap replicates of the rows, percentile method")
        }
    }

    func interval(_ i: AveragePrecisionBootstrap.Interval?) -> String {
        i.map { String(format: "[%.3f, %.3f]", $0.lower, $0.upper) } ?? "—"
    }

    func printJSON() {
        func number(_ v: Double?) -> Any { v.map { $0.isNaN ? NSNull() : $0 as Any } ?? NSNull() }
        func pair(_ i: AveragePrecisionBootstrap.Interval?) -> Any { i.map { [$0.lower, $0.upper] } ?? NSNull() }
        let models: [[String: Any]] = metrics.indices.map { m in
            let x = metrics[m]
            var o: [String: Any] = [
                "model_version": versions[m], "roc_auc": number(x.rocAUC), "average_precision": number(x.averagePrecision),
                "recall_at_1pct_fpr": number(x.recallAt1PctFPR), "card_precision_at_100": number(x.cardPrecisionAt100),
                "brier_score": number(x.brierScore), "per_pattern_recall": x.perPatternRecall, "threshold": x.threshold,
            ]
            if let bootstrap {
                o["average_precision_interval"] = pair(bootstrap.interval(model: m))
                if m > 0 {
                    o["average_precision_difference_interval"] = pair(bootstrap.differenceInterval(model: m, base: 0))
                    o["average_precision_above_first_share"] = number(bootstrap.shareAbove(model: m, base: 0))
                }
            }
            return o
        }
        var o: [String: Any] = ["rows": metrics[0].rows, "positives": metrics[0].positives, "models": models]
        if let bootstrap {
            o["bootstrap"] = ["replicates": bootstrap.replicates.first?.count ?? 0, "level": bootstrap.level]
        }
        let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
