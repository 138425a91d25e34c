import ArgumentParser
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, promote and import models in the registry.",
        subcommands: [List.self, Show.self, Promote.self, ImportXGBoost.self]
    )

    static func version(_ text: String, _ registry: ModelRegistry) throws -> Int {
        if text == "production" {
            guard let p = try registry.production() else { throw ValidationError("no model is in production yet") }
            return p.version
        }
        guard let v = Int(text.hasPrefix("v") ? String(text.dropFirst()) : text), try registry.record(version: v) != nil else {
            throw ValidationError("no model version '\(text)' in the registry")
        }
        return v
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every registered model, newest first.")
        @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
        @OptionGroup var registryOption: RegistryOption
        @Flag(help: "JSON output.") var json = false

        func run() throws {
            let records = try registryOption.open(dataDir: dataDir).list()
            if json {
                let rows: [[String: Any]] = records.map {
                    [
                        "version": $0.version, "kind": $0.kind.rawValue, "stage": $0.stage.rawValue, "created_at": $0.createdAt,
                        "roc_auc": $0.rocAUC.map { $0 as Any } ?? NSNull(),
                        "average_precision": $0.averagePrecision.map { $0 as Any } ?? NSNull(),
                    ]
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            if records.isEmpty { print("no models registered in \(dataDir)") }
            print("version  stage       kind      ROC AUC  AP      created")
            for r in records {
                func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "—     " }
                print(
                    "v\(r.version)".padding(toLength: 9, withPad: " ", startingAt: 0)
                        + r.stage.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                        + r.kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + "\(f(r.rocAUC))   \(f(r.averagePrecision))  \(r.createdAt)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "One model: windows, metrics, the thresholds applied (the data directory's --high/--critical-threshold, if any), promotion history."
        )
        @Argument(help: "Version number or 'production'.") var version: String
        @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
        @OptionGroup var registryOption: RegistryOption
        @Flag(help: "Print the whole artifact as JSON.") var json = false

        func run() throws {
            let registry = try registryOption.open(dataDir: dataDir)
            let v = try Models.version(version, registry)
            let artifact = try registry.artifact(version: v)
            if json {
                print(String(decoding: try artifact.jsonData(), as: UTF8.self))
                return
            }
            let record = try registry.record(version: v)!
            print("model v\(v): \(artifact.kind.rawValue), stage \(record.stage.rawValue), created \(record.createdAt)")
            if let trees = artifact.trees { print("\(trees.treeCount) trees, \(trees.nodes.count) nodes") }
            print(
                "features (\(artifact.featureNames.count), schema v\(artifact.featureSchemaVersion)): \(artifact.featureNames.joined(separator: ", "))"
            )
            if let w = artifact.trainingWindow { print("training window [\(w.from), \(w.to))") }
            if let w = artifact.testWindow { print("test window     [\(w.from), \(w.to))") }
            for line in Self.thresholds(artifact.thresholds, record: ScoringPolicyRecord.read(directory: dataDir)) {
                print(line)
            }
            if let m = artifact.metrics { Report.printTable(m) }
            for line in Report.selectionLines(artifact) { print(line) }
            for p in try registry.promotions(version: v) {
                print("\(p.at)  \(p.fromStage.rawValue) → \(p.toStage.rawValue): \(p.reason)")
            }
        }

        /// The thresholds a pipeline on this data directory applies to the model (review,
        /// decline, medium), and where they come from: the model's own, or the operator's
        /// policy recorded by the last `run` or `import`, next to the model's own.
        static func thresholds(_ own: DecisionThresholds, record: ScoringPolicyRecord.Entry?) -> [String] {
            let policy = record?.policy ?? ScoringPolicy()
            let applied = policy.decisionPolicy(for: own)
            func f(_ v: Double) -> String { String(format: "%.4f", v) }
            var lines = [
                "thresholds applied: review (high) ≥ \(f(applied.high)), decline (critical) ≥ \(f(applied.critical)), "
                    + "medium ≥ \(f(applied.medium))"
            ]
            if let record, policy.overridesModel {
                let given = [("--high-threshold", policy.highThreshold), ("--critical-threshold", policy.criticalThreshold)]
                    .compactMap { name, v in v.map { "\(name) \($0)" } }.joined(separator: ", ")
                lines.append("  from the policy of `\(record.setBy)` (\(given), \(record.setAt)), overriding the model's own")
            } else {
                lines.append(
                    "  the model's own" + (record == nil ? " (no pipeline has recorded a policy on this data directory)" : ""))
            }
            let ownPolicy = DecisionPolicy(review: own.review, decline: own.decline)
            var ownLine = "model's own: review ≥ \(f(own.review)), decline ≥ \(f(own.decline))"
            if ownPolicy.critical != own.decline {
                ownLine += " (not above review: declining uses \(f(ownPolicy.critical)), halfway from review to 1)"
            }
            lines.append("  " + ownLine)
            return lines
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote a model to production if the promotion rule approves (AUC ≥ 0.90, AP within tolerance).",
            discussion: "A cardwatch run serving the same data directory switches to the new production model within a second."
        )
        @Argument(help: "Version number.") var version: String
        @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
        @OptionGroup var registryOption: RegistryOption
        @Option(help: "Minimum ROC AUC.") var minAuc = 0.90
        @Option(help: "How much lower than production's the average precision may be.") var tolerance = 0.01
        @Flag(help: "Promote even if the rule refuses (recorded as forced).") var force = false

        func run() throws {
            let registry = try registryOption.open(dataDir: dataDir)
            let v = try Models.version(version, registry)
            let decision = try registry.promote(
                version: v, rule: PromotionRule(minimumAUC: minAuc, apTolerance: tolerance), force: force)
            print("\(decision.promoted ? "promoted" : "not promoted"): \(decision.reason)")
            if !decision.promoted { throw ExitCode(1) }
        }
    }

    struct ImportXGBoost: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-xgboost",
            abstract: "Register a model saved by XGBoost's save_model (JSON) so it can be served here.",
            discussion: "Its features must be the engine's, in order (train it on a table from `cardwatch features`).")
        @Argument(help: "The XGBoost JSON model file.") var file: String
        @Option(help: "Directory of the model registry.") var dataDir = "./cardwatch-data"
        @OptionGroup var registryOption: RegistryOption

        func run() throws {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            let artifact: ModelArtifact
            do {
                artifact = try XGBoostImport.artifact(
                    json: data, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion,
                    createdAt: ModelTraining.rfc3339(Int64(Date().timeIntervalSince1970 * 1e6)))
            } catch { throw ValidationError("\(file): \(error)") }
            let v = try registryOption.open(dataDir: dataDir).register(artifact)
            print("registered \(file) as model v\(v) (\(artifact.trees?.treeCount ?? 0) trees)")
        }
    }
}
