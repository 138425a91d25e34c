import ArgumentParser
import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation

/// Options shared by `train` and `evaluate`: where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: "Transaction history (JSON Lines or CSV, schema v1); features come from the engine's replay.")
    var data: String?
    @Option(help: "A numeric feature table (CSV), e.g. from `cardwatch features`, instead of --data.") var table: String?
    @Option(help: "With --table: the label column.") var label = "is_fraud"
    @Option(help: "With --table: the time column, RFC 3339 or seconds (default: timestamp when present).")
    var timeColumn: String?
    @Option(help: "With --data: label events (JSON Lines) instead of the history's is_fraud.") var labels: String?
    @Option(help: "With --data: days after which a label counts as known for merchant fraud rates.")
    var labelDelayDays = 7.0
    @Option(
        help: ArgumentHelp(
            "Largest share of invalid records (or table rows) to skip; above it the command refuses to run.",
            valueName: "fraction"))
    var maxInvalid = 0.01
    @OptionGroup var pan: PANSecretOptions

    func validate() throws {
        if (data == nil) == (table == nil) { throw ValidationError("give exactly one of --data and --table") }
        if !(maxInvalid >= 0 && maxInvalid <= 1) { throw ValidationError("--max-invalid must be within 0…1") }
    }

    /// The labelled rows and their feature names (with `keepUnlabelled` and --data, every
    /// transaction's row: an unsupervised model's input). What was skipped is printed, by reason; more
    /// than --max-invalid of the records invalid stops the command (a file read wrongly, e.g. a
    /// label taxonomy or a date format the schema does not take, must not train in silence).
    func load(command: String, keepUnlabelled: Bool = false) throws -> (
        TimedDataset, [String], hasCardsAndDays: Bool, hasTimes: Bool
    ) {
        if let table {
            let t: FeatureTable
            do { t = try FeatureTable.read(path: table, label: label, timeColumn: timeColumn) } catch {
                throw ValidationError("\(error)")
            }
            try check(t.invalid, path: table, total: t.rowsRead, what: "rows")
            if t.unlabelled > 0 { printError("\(table): \(grouped(t.unlabelled)) rows without a label skipped") }
            return (t.data, t.featureNames, t.hasTimes && !t.data.cards.contains(""), t.hasTimes)
        }
        let (transactions, invalid) = try Input.transactions(
            data!, format: nil, deadLetters: nil, command: command, policy: try pan.offlinePolicy())
        try check(invalid, path: data!, total: transactions.count + invalid.count, what: "records")
        let labelEvents = try labels.map { try Input.labels($0, command: command) }
        var config = FeatureConfig()
        config.labelDelay = Int64(labelDelayDays * 86_400e6)
        let dataset = try ModelTraining.dataset(
            history: transactions, labels: labelEvents, config: config, keepUnlabelled: keepUnlabelled)
        if let labelled = dataset.labelled {
            let unlabelled = labelled.count { !$0 }
            printError("\(data!): \(grouped(unlabelled)) transactions without is_fraud used for training, not for evaluation")
        }
        let unlabelled = transactions.count - dataset.rows
        if unlabelled > 0 { printError("\(data!): \(grouped(unlabelled)) transactions without is_fraud used for features only") }
        return (dataset, Feature.names, true, true)
    }

    func check(_ invalid: InvalidRecords, path: String, total: Int, what: String) throws {
        guard invalid.count > 0 else { return }
        printError(invalid.report(path, of: total))
        let share = invalid.fraction(of: total)
        if share > maxInvalid {
            throw ValidationError(
                "\(path): \(String(format: "%.2f", 100 * share)) % of the \(what) are invalid, more than --max-invalid "
                    + "\(maxInvalid) allows; fix the file, or pass --max-invalid \(String(format: "%.2f", (share * 100).rounded(.up) / 100)) "
                    + "to go on without them")
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a time window, evaluate it on a later one, and register it.",
        discussion: """
            The split respects time: rows in [train-from, train-to) train, rows in
            [test-from, test-to) test; by default the test window is the last 7 days
            (or the latest --test-fraction of rows) and training ends --delay-days
            before it (default 7; with --test-fraction at most the test window's length,
            so a data set of a few days keeps training rows; a table without a time
            column has no delay). The latest 15 % of the training window stop the boosting early,
            calibrate the probabilities and choose the thresholds. Dates are
            2026-01-22 or RFC 3339.

            Examples:
              cardwatch train --data history.jsonl --train-from 2026-01-01 --train-to 2026-01-22 \\
                --test-from 2026-01-22 --test-to 2026-01-31
              cardwatch train --table table.csv --label is_fraud --test-fraction 0.2 --json
            """
    )

    @OptionGroup var source: DataOptions
    @Option(help: "Start of the training window.") var trainFrom: String?
    @Option(help: "End of the training window (exclusive).") var trainTo: String?
    @Option(
        help: "Gap between training and test windows, in days (the label delay; default 7, see above).")
    var delayDays: Double?
    @Option(help: "Start of the test window.") var testFrom: String?
    @Option(help: "End of the test window (exclusive).") var testTo: String?
    @Option(help: "Without dates: the test window is this many last days...") var testDays = 7.0
    @Option(help: "...or this latest share of the rows.") var testFraction: Double?
    @Option(
        help: """
            gbdt, random-forest, logistic or isolation-forest (unsupervised: labels only evaluate it; \
            never tuned). Default: with tuning, the best of gbdt and random-forest on the validation slice; \
            with --no-tuning, gbdt.
            """)
    var model: String?
    @Option(
        help: """
            Trees: GBDT rounds at most (default 300 with --no-tuning; the search's own caps), or a \
            forest's trees (default 100; isolation forest 300). With tuning, a value given fixes it in every candidate.
            """)
    var trees: Int?
    @Option(help: "Isolation forest: rows drawn for each tree (ψ).") var sampleSize = 256
    @Option(help: "Maximum tree depth (default 6 with --no-tuning). With tuning, a value given fixes it.") var maxDepth: Int?
    @Option(help: "GBDT learning rate (default 0.1 with --no-tuning). With tuning, a value given fixes it.")
    var learningRate: Double?
    @Option(
        help: """
            Weight of fraud rows in the loss (default 1 with --no-tuning; the search tries 1 and \
            √(legitimate/fraud rows)). With tuning, a value given fixes it.
            """)
    var scalePosWeight: Double?
    @Option(
        help: ArgumentHelp(
            """
            Time the whole training may take, in seconds of the reference machine (2 cores), e.g. 60, 60s, 2m: \
            the feature replay is charged 9 µs a transaction and the model search gets the rest (at least half), \
            counted from the fits' sizes, not a clock, so results do not depend on the machine's speed.
            """, valueName: "duration"))
    var tuningBudget = "60s"
    @Flag(help: "One fit with the given (or default) parameters instead of the model search.") var noTuning = false
    @Option(help: "Random seed (row and column sampling).") var seed: UInt64 = 1
    @Option(help: "Choose the review threshold for this precision on the validation rows.") var targetPrecision: Double?
    @Option(help: "Choose the review threshold for this false-positive rate on the validation rows.") var targetFpr: Double?
    @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
    @OptionGroup var registryOption: RegistryOption
    @Flag(help: "Do not register the model.") var noRegister = false
    @Flag(help: "Promote the new model if the registry's promotion rule approves it.") var promote = false
    @Option(help: "Write the model artifact (JSON) to this file too.") var artifactOut: String?
    @Option(help: "Write transaction_id,timestamp,card_id,score,label for every test row.") var predictionsOut: String?
    @Flag(help: "Print the metrics as one JSON object.") var json = false

    func validate() throws {
        if targetPrecision != nil && targetFpr != nil {
            throw ValidationError("give --target-precision or --target-fpr, not both")
        }
        if let p = targetPrecision, !(p > 0 && p <= 1) { throw ValidationError("--target-precision must be in (0, 1]") }
        if let f = targetFpr, !(f > 0 && f < 1) { throw ValidationError("--target-fpr must be in (0, 1)") }
        if let trees, trees < 1 { throw ValidationError("--trees must be at least 1") }
        if sampleSize < 2 { throw ValidationError("--sample-size must be at least 2") }
        if let maxDepth, !(1...16).contains(maxDepth) { throw ValidationError("--max-depth must be between 1 and 16") }
        if let learningRate, !(learningRate > 0 && learningRate <= 1) {
            throw ValidationError("--learning-rate must be in (0, 1]")
        }
        if let scalePosWeight, !(scalePosWeight > 0) { throw ValidationError("--scale-pos-weight must be greater than 0") }
        _ = try Self.budget(tuningBudget)
        if let delayDays, !(delayDays >= 0) { throw ValidationError("--delay-days must not be negative") }
        if !(testDays > 0) { throw ValidationError("--test-days must be greater than 0") }
    }

    func run() throws {
        let kind = try model.map { name in
            guard let k = ModelKind(rawValue: name.replacingOccurrences(of: "-", with: "_")) else {
                throw ValidationError("--model must be gbdt, random-forest, logistic or isolation-forest, got '\(name)'")
            }
            return k
        }
        let supervised = kind?.isSupervised ?? true
        let (dataset, names, cardsAndDays, hasTimes) = try source.load(command: "train", keepUnlabelled: !supervised)
        if supervised && dataset.rows == 0 {
            throw ValidationError(
                "no labelled rows: \((kind ?? .gbdt).rawValue) learns from is_fraud (or --labels); --model isolation-forest "
                    + "trains without labels")
        }
        var request = TrainingRequest()
        request.kind = kind ?? .gbdt
        if let trees { request.gbdt.trees = trees }
        if let maxDepth { request.gbdt.maxDepth = maxDepth }
        if let learningRate { request.gbdt.learningRate = learningRate }
        if let scalePosWeight { request.gbdt.scalePosWeight = scalePosWeight }
        request.gbdt.seed = seed
        request.logistic.scalePosWeight = scalePosWeight ?? 1
        request.forest.trees = trees ?? request.forest.trees
        request.forest.maxDepth = maxDepth ?? request.forest.maxDepth
        request.forest.scalePosWeight = scalePosWeight ?? 1
        request.forest.seed = seed
        request.isolation.trees = trees ?? 300
        request.isolation.sampleSize = sampleSize
        request.isolation.seed = seed
        if !noTuning && request.kind != .logistic && supervised {
            var search = SearchSettings()
            search.budget = try Self.budget(tuningBudget)
            search.families = kind.map { [$0] } ?? [.gbdt, .randomForest]
            search.trees = trees
            search.maxDepth = maxDepth
            search.learningRate = learningRate
            search.scalePosWeight = scalePosWeight
            search.seed = seed
            request.search = search
        }
        request.trainFrom = try trainFrom.map { try Input.instant($0, option: "--train-from") }
        request.trainTo = try trainTo.map { try Input.instant($0, option: "--train-to") }
        request.testFrom = try testFrom.map { try Input.instant($0, option: "--test-from") }
        request.testTo = try testTo.map { try Input.instant($0, option: "--test-to") }
        // An unsupervised model reads no labels, so it waits for none: no gap unless asked.
        request.delay = Int64((delayDays ?? (hasTimes && supervised ? 7 : 0)) * 86_400e6)
        request.delayAtMostTest = delayDays == nil && testFraction != nil && testFrom == nil
        request.testLength = Int64(testDays * 86_400e6)
        request.testFraction = testFraction
        request.targetPrecision = targetPrecision
        request.targetFPR = targetFpr
        request.cardPrecision = cardsAndDays
        let outcome: TrainingOutcome
        do { outcome = try ModelTraining.train(dataset, featureNames: names, request: request) } catch let empty
            as EmptyTrainingWindow
        {
            throw ValidationError(advice(empty))
        } catch {
            throw ValidationError("\(error)")
        }
        var version: Int?
        var decision: PromotionDecision?
        if !noRegister {
            let registry = try registryOption.open(dataDir: dataDir)
            version = try registry.register(outcome.artifact)
            if promote {
                // "On the same test window": score the production model on this candidate's test rows.
                var productionAP: Double?
                if let current = try registry.production(),
                    let artifact = try? registry.artifact(version: current.version, expectedFeatures: names)
                {
                    productionAP = ModelTraining.evaluate(artifact, on: outcome.test).metrics.averagePrecision
                }
                decision = try registry.promote(version: version!, rule: PromotionRule(), productionAP: productionAP)
            }
        }
        if let artifactOut { try outcome.artifact.jsonData().write(to: URL(fileURLWithPath: artifactOut)) }
        if let predictionsOut { try Report.writePredictions(outcome.test, outcome.testScores, to: predictionsOut) }
        if json {
            var extra: [String: Any] = [
                "train_rows": outcome.trainRows, "test_rows": outcome.test.rows, "trees": outcome.trees ?? 0,
                "training_seconds": (outcome.seconds * 1000).rounded() / 1000,
                "fit_seconds": (outcome.fitSeconds * 10000).rounded() / 10000, "promoted": decision?.promoted ?? false,
                "label_delay_days": Double(outcome.split.testFrom - outcome.split.trainTo) / Double(TimeSplit.day),
            ]
            extra.merge(Report.selectionJSON(outcome)) { $1 }
            Report.printJSON(outcome.metrics, version: version, extra: extra)
        } else {
            print(
                "model \(version.map { "v\($0)" } ?? "(not registered)"): \(outcome.artifact.kind.rawValue)"
                    + (outcome.trees.map { ", \($0) trees" } ?? "")
                    + ", trained on \(grouped(outcome.trainRows)) rows in \(format1(outcome.seconds)) s")
            print(
                "train [\(outcome.artifact.trainingWindow!.from), \(outcome.artifact.trainingWindow!.to))"
                    + "  test [\(outcome.artifact.testWindow!.from), \(outcome.artifact.testWindow!.to))"
                    + "  label delay \(TimeSplit.days(outcome.split.testFrom - outcome.split.trainTo))")
            Report.printTable(outcome.metrics)
            if outcome.metrics.rows == 0 { print("  (no labelled rows in the test window: not evaluated)") }
            for line in Report.selectionLines(outcome.artifact) { print(line) }
            if let decision { print("promotion: \(decision.promoted ? "promoted" : "not promoted") — \(decision.reason)") }
        }
    }
}

extension Train {
    /// A budget as seconds: `90`, `90s`, `1.5m`.
    static func budget(_ text: String) throws -> Double {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let (number, unit) = t.hasSuffix("m") ? (t.dropLast(), 60.0) : t.hasSuffix("s") ? (t.dropLast(), 1.0) : (t[...], 1.0)
        guard let v = Double(number), v.isFinite, v > 0 else {
            throw ValidationError("--tuning-budget must be a positive duration such as 60, 60s or 2m, got '\(text)'")
        }
        return v * unit
    }

    /// An empty training window explained with what to pass.
    func advice(_ e: EmptyTrainingWindow) -> String {
        var ways: [String] = []
        if e.longestDelay > 0 {
            let most = Double(e.longestDelay) / Double(TimeSplit.day)
            ways.append("--delay-days below \(String(format: "%.2f", (most * 100).rounded(.down) / 100))")
        }
        ways.append(testFraction != nil ? "a smaller --test-fraction" : "a smaller --test-days or --test-from")
        ways.append("--train-from and --train-to")
        return e.situation + ". Pass " + ways.joined(separator: ", or ")
    }
}

/// How commands show metrics and predictions.
enum Report {
    static func printTable(_ m: EvaluationMetrics) {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "—" }
        print("test rows \(grouped(m.rows)), fraud \(grouped(m.positives))")
        print("  ROC AUC                \(f(m.rocAUC))")
        print("  average precision      \(f(m.averagePrecision))")
        print("  card precision@100     \(f(m.cardPrecisionAt100))")
        print("  recall at 1 % FPR      \(f(m.recallAt1PctFPR))")
        print("  at threshold \(f(m.threshold)): precision \(f(m.precision)), recall \(f(m.recall)), F1 \(f(m.f1))")
        print("  confusion: TP \(m.truePositives)  FP \(m.falsePositives)  TN \(m.trueNegatives)  FN \(m.falseNegatives)")
        for (p, r) in m.perPatternRecall.sorted(by: { $0.key < $1.key }) {
            print("  recall \(p)\(String(repeating: " ", count: max(1, 16 - p.count)))\(f(r))")
        }
    }

    static func printJSON(_ m: EvaluationMetrics, version: Int?, extra: [String: Any] = [:]) {
        var o: [String: Any] = [
            "roc_auc": m.rocAUC, "average_precision": m.averagePrecision, "recall_at_1pct_fpr": m.recallAt1PctFPR,
            "per_pattern_recall": m.perPatternRecall, "precision": m.precision, "recall": m.recall, "f1": m.f1,
            "threshold": m.threshold, "rows": m.rows, "positives": m.positives,
            "confusion": ["tp": m.truePositives, "fp": m.falsePositives, "tn": m.trueNegatives, "fn": m.falseNegatives],
        ]
        o["card_precision_at_100"] = m.cardPrecisionAt100 ?? NSNull()
        o["model_version"] = version ?? NSNull()
        for (k, v) in extra { o[k] = v }
        for (k, v) in o where (v as? Double)?.isNaN == true { o[k] = NSNull() }
        let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    static func writePredictions(_ rows: TimedDataset, _ scores: [Double], to path: String) throws {
        var sink = try ByteSink(path: path)
        sink.buffer.append(contentsOf: "transaction_id,timestamp,card_id,score,label\n".utf8)
        for i in 0..<rows.rows {
            TransactionEncoder.appendCSVCell(rows.transactionIDs[i], to: &sink.buffer)
            sink.buffer.append(UInt8(ascii: ","))
            Timestamp(microseconds: rows.times[i]).write(to: &sink.buffer)
            sink.buffer.append(UInt8(ascii: ","))
            TransactionEncoder.appendCSVCell(rows.cards[i], to: &sink.buffer)
            sink.buffer.append(UInt8(ascii: ","))
            TransactionEncoder.appendNumber(scores[i], to: &sink.buffer)
            sink.buffer.append(contentsOf: (rows.matrix.labels[i] ? ",1\n" : ",0\n").utf8)
            try sink.flushIfFull()
        }
        try sink.close()
    }
}
