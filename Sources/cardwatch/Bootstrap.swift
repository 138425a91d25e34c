import ArgumentParser
import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchPostgres
import CardwatchStorage
import Foundation

/// `--registry`: where the model registry is.
struct RegistryOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The model registry: sqlite (registry.sqlite in --data-dir, the default) or postgres://USER@HOST:PORT/DB.",
            discussion:
                "A PostgreSQL registry is shared by every instance using it: a promotion by any of them reaches the "
                + "others at once (LISTEN/NOTIFY), and scheduled retraining runs on one at a time. The password as "
                + "for --warehouse (PGPASSWORD or a password file)."))
    var registry: String?

    /// The registry named, opened (a PostgreSQL one migrated).
    func open(dataDir: String) throws -> ModelRegistry { try openRegistry(registry, dataDir: dataDir).registry }
}

/// The registry `url` names (nil or `sqlite`: the data directory's file), and the
/// PostgreSQL pool it lives in, if it does.
func openRegistry(_ url: String?, dataDir: String) throws -> (registry: ModelRegistry, pool: PostgresPool?) {
    guard let url, url.lowercased() != "sqlite" else { return (try ModelRegistry(directory: dataDir), nil) }
    guard PostgresEndpoint.isURL(url) else {
        throw ValidationError("--registry \(url): use sqlite (the data directory's file) or postgres://USER@HOST:PORT/DB")
    }
    let endpoint: PostgresEndpoint
    do { endpoint = try PostgresEndpoint.parse(url) } catch { throw ValidationError("--registry: \(error)") }
    let pool = PostgresPool(endpoint, size: 2)
    do { return (ModelRegistry(store: try PostgresRegistryStore(pool: pool)), pool) } catch {
        throw CLIError("the model registry at \(endpoint) cannot be used: \(error)")
    }
}

/// Options shared by `run` and `import`: the data directory and the decision settings.
struct PipelineOptions: ParsableArguments {
    @Option(help: "Directory of the log, the warehouse and the model registry.") var dataDir = "./cardwatch-data"
    @Option(help: "A rule file (JSON), reloaded when it changes.") var rules: String?
    @Option(
        help:
            "Probability at or above which a transaction is high risk (review, alert), for every model served (hot swaps too); default: each model's own."
    )
    var highThreshold: Double?
    @Option(
        help:
            "Probability at or above which a transaction is critical (decline, alert), for every model served (hot swaps too); default: each model's own."
    )
    var criticalThreshold: Double?
    @Option(help: "Log partitions of a new data directory (default 1); an existing one keeps its own.")
    var partitions: Int?
    @Option(
        help:
            "The log: sqlite, in --data-dir (the default), or kafka://HOST:PORT[,HOST:PORT…] (builds with the Kafka trait; with --warehouse postgres://…)."
    )
    var log: String?
    @Option(
        help: ArgumentHelp(
            "Where decisions commit: sqlite, the log's file (the default), or postgres://USER@HOST:PORT/DB.",
            discussion:
                "PostgreSQL's password comes from PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass), never the URL; "
                + "PGHOST, PGPORT, PGUSER and PGDATABASE fill what the URL leaves out. Checkpoints go there too."))
    var warehouse: String?
    @Option(
        help: ArgumentHelp(
            "The model registry: sqlite (registry.sqlite in --data-dir) or postgres://USER@HOST:PORT/DB; default: the "
                + "warehouse's database when that is PostgreSQL, else sqlite."))
    var registry: String?
    @Option(help: "With a PostgreSQL warehouse: keep silver's rows of this many event days, the newest included.")
    var retainDays: Int?
    @Flag(help: "Print the pipeline's topology (sources, log, processor, sinks, stores) and exit.") var printTopology = false
    @Option(help: "Records per runtime batch, at most.") var batch = 32768
    @Option(help: "Checkpoint a partition's feature state every this many of its batches.") var checkpointEvery = 64
    @Flag(help: "Print no progress.") var quiet = false

    func validate() throws {
        if let partitions, !(1...256).contains(partitions) {
            throw ValidationError("--partitions must be between 1 and 256")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1") }
        if let retainDays {
            guard retainDays >= 1 else { throw ValidationError("--retain-days must be at least 1") }
            guard let warehouse, PostgresEndpoint.isURL(warehouse) else {
                throw ValidationError("--retain-days needs a PostgreSQL warehouse (--warehouse postgres://…)")
            }
        }
        for (name, v) in [("--high-threshold", highThreshold), ("--critical-threshold", criticalThreshold)] {
            if let v, !(0...1).contains(v) { throw ValidationError("\(name) must be within 0…1") }
        }
        if let high = highThreshold, let critical = criticalThreshold, high > critical {
            throw ValidationError("--high-threshold (\(high)) must not be above --critical-threshold (\(critical))")
        }
        _ = try topology(sources: [])
    }

    /// The pipeline's shape from these options: the one place it is declared.
    func topology(sources: [Topology.Source]) throws -> Topology {
        do {
            return try Topology.parse(
                log: log, warehouse: warehouse, registry: registry, dataDirectory: dataDir, partitions: partitions,
                sources: sources)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `--print-topology`: the topology as configured (and as the existing log says), printed; true when asked.
    func printedTopology(sources: [Topology.Source], kafkaGroup: String? = nil) throws -> Bool {
        guard printTopology else { return false }
        var topology = try topology(sources: sources)
        if case .kafka = topology.log {
            topology.consumerGroup = kafkaGroup ?? topology.consumerGroup
            print(topology.text)
            return true
        }
        // Read without opening the log: nothing is created, migrated or written.
        do {
            if let existing = try SQLiteEventLog.partitioning(directory: topology.logDirectory) {
                topology.opened = .init(partitions: existing.partitions, partitioner: existing.partitioner.rawValue)
            }
        } catch { throw ValidationError("\(error)") }
        print(topology.text)
        return true
    }

    /// The operator's thresholds, applied to every model this pipeline scores with.
    var scoringPolicy: ScoringPolicy {
        get throws {
            do { return try ScoringPolicy(highThreshold: highThreshold, criticalThreshold: criticalThreshold) } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    /// Takes the data directory's writer lock for `command` (held until the process exits) and
    /// records the thresholds this pipeline applies, for `models show`.
    func lockDataDirectory(command: String) throws -> DataDirectoryLock {
        let lock: DataDirectoryLock
        do { lock = try DataDirectoryLock(directory: dataDir, command: command) } catch {
            throw CLIError("\(error)")
        }
        try ScoringPolicyRecord.write(
            .init(policy: try scoringPolicy, setBy: command, setAt: Timestamp.now.rfc3339), directory: dataDir)
        return lock
    }

    func say(_ text: String) { if !quiet { printError(text) } }

    func openStore() throws -> SQLiteEventLog {
        let directory = try topology(sources: []).logDirectory
        do { return try SQLiteEventLog(directory: directory, partitions: partitions) } catch { throw ValidationError("\(error)") }
    }

    /// The production model, bootstrapping one when the registry has none. A data directory
    /// whose log holds a history (1,000 transactions or more) with too few labels for a
    /// supervised model gets an isolation forest over that history; any other (an empty one)
    /// gets a GBDT on a generated history (30 days × 500 cards): features by replay,
    /// registration, promotion. Retraining replaces the isolation forest through the
    /// promotion rule once the warehouse holds labels.
    func productionScorer(registry: ModelRegistry, store: (any EventLog)? = nil) throws -> Scorer {
        if let production = try registry.production() {
            let artifact = try registry.artifact(
                version: production.version, expectedFeatures: Feature.names, expectedSchemaVersion: Feature.schemaVersion)
            return try scorer(artifact, version: production.version)
        }
        if let store {
            let history = try StoredHistory.read(from: store)
            if history.callsForUnsupervisedModel() { return try unsupervisedBootstrap(history, registry: registry) }
        }
        say("bootstrap: no model in \(dataDir) yet; generating 30 days of history for 500 cards")
        var config = GeneratorConfig()
        config.seed = 1
        let start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
        var generator = try TransactionGenerator(config: config, mode: .backfill(start: start, end: start + 30 * 86_400))
        var history: [Transaction] = []
        while let t = generator.next() { history.append(t) }
        say("bootstrap: \(grouped(history.count)) transactions; computing features by replay")
        let dataset = try ModelTraining.dataset(history: history, labels: nil, config: FeatureConfig())
        var request = TrainingRequest()
        request.trainFrom = start.microseconds
        request.trainTo = (start + 21 * 86_400).microseconds
        request.testFrom = request.trainTo
        request.testTo = (start + 30 * 86_400).microseconds
        request.delay = 0
        say("bootstrap: training a GBDT on days 1–21, testing on days 22–30")
        let outcome = try ModelTraining.train(dataset, featureNames: Feature.names, request: request)
        let version = try registry.register(outcome.artifact)
        let decision = try registry.promote(version: version)
        say(
            "bootstrap: model v\(version): ROC AUC \(format4(outcome.metrics.rocAUC)), average precision "
                + "\(format4(outcome.metrics.averagePrecision)); \(decision.promoted ? "promoted" : "NOT promoted"): \(decision.reason)"
        )
        guard decision.promoted else { throw ValidationError("the bootstrap model did not pass the promotion rule") }
        return try scorer(outcome.artifact, version: version)
    }

    /// An isolation forest over the stored history, registered and made production: it has
    /// no labels to be judged by, so the promotion rule cannot pass it; the stage history says why.
    func unsupervisedBootstrap(_ history: StoredHistory, registry: ModelRegistry) throws -> Scorer {
        let (fraud, legitimate) = history.labelCounts
        say(
            "bootstrap: no model in \(dataDir) yet; its log holds \(grouped(history.transactions.count)) transactions with "
                + "\(fraud) fraud and \(legitimate) legitimate labels, too few for a supervised model: training an isolation forest"
        )
        let outcome = try history.trainUnsupervised()
        let version = try registry.register(outcome.artifact)
        try registry.setStage(
            version: version, stage: .production,
            reason: "bootstrap: unsupervised isolation forest over \(history.transactions.count) stored transactions "
                + "(\(fraud) fraud, \(legitimate) legitimate labels); a supervised model replaces it through the promotion rule")
        let m = outcome.metrics
        say(
            "bootstrap: model v\(version): isolation forest, \(outcome.trees ?? 0) trees on \(grouped(outcome.trainRows)) rows; "
                + (m.positives > 0
                    ? "on the labelled test rows ROC AUC \(format4(m.rocAUC)), average precision \(format4(m.averagePrecision))"
                    : "no labelled test rows to evaluate it")
                + "; review at score ≥ \(format4(outcome.artifact.thresholds.review)), decline ≥ \(format4(outcome.artifact.thresholds.decline))"
        )
        return try scorer(outcome.artifact, version: version)
    }

    /// The store, the registry, and the runtime with the production model (bootstrapped when
    /// there is none) and the rules, its partitions restored to the last commit.
    /// `pipelined`: commits overlap the next batch's decisions (`import`). `run` commits on the
    /// runtime's thread: in its full-disk test (`scripts/disk-full-test.py`) the writer's
    /// connection failed every commit with SQLITE_FULL after the disk had room again in one run
    /// of three when commits were pipelined, and never in six without (cause not found yet).
    func openPipeline(store opened: SQLiteEventLog? = nil, pipelined: Bool = false) throws -> (
        store: SQLiteEventLog, registry: ModelRegistry, runtime: EmbeddedRuntime, state: PipelineState, rules: RuleFile?,
        postgres: PostgresPool?
    ) {
        let postgres = try postgresWarehouse()
        let registry = try openedRegistry().registry
        let store = try opened ?? openStore()
        let state = PipelineState()
        let rules = try ruleFile()
        var options = PartitionRuntime.Options()
        options.batchRecords = batch
        options.checkpointEvery = checkpointEvery
        options.pipelined = pipelined
        // A shared warehouse holds the streams of many logs: this one's group names its own.
        if postgres != nil {
            do { options.group = "\(PartitionRuntime.defaultGroup)@\(try store.logID())" } catch { throw CLIError("\(error)") }
        }
        let runtime = try EmbeddedRuntime(
            store: store, scorer: try productionScorer(registry: registry, store: store), rules: rules, options: options,
            state: state, warehouse: try postgres.map { try Self.external($0, retainDays: retainDays) } ?? .embedded)
        try runtime.start()
        let replayed = runtime.counters.replayed
        if replayed > 0 { say("resumed: replayed \(grouped(replayed)) records committed after the last checkpoints") }
        return (store, registry, runtime, state, rules, postgres)
    }

    /// The registry of `--registry` (default: the warehouse's database when that is PostgreSQL).
    func openedRegistry() throws -> (registry: ModelRegistry, pool: PostgresPool?) {
        switch try topology(sources: []).registry {
        case .postgres(let url): try openRegistry(url, dataDir: dataDir)
        default: try openRegistry(nil, dataDir: dataDir)
        }
    }

    /// The PostgreSQL pool of `--warehouse`, when it names one (connected and migrated).
    func postgresWarehouse() throws -> PostgresPool? {
        guard case .postgres(let url) = try topology(sources: []).warehouse else { return nil }
        let endpoint: PostgresEndpoint
        do { endpoint = try PostgresEndpoint.parse(url) } catch { throw ValidationError("--warehouse: \(error)") }
        let pool = PostgresPool(endpoint, size: 4)
        do { try PostgresSchema.migrate(pool) } catch {
            throw CLIError("the warehouse \(endpoint) cannot be used: \(error)")
        }
        return pool
    }

    /// The runtime's sink and checkpoints in PostgreSQL's warehouse.
    static func external(_ pool: PostgresPool, retainDays: Int?) throws -> EmbeddedRuntime.Warehouse {
        .external(
            sink: { try PostgresWarehouseSink(pool: pool, retainDays: retainDays, observer: $0) },
            checkpoints: try PostgresCheckpointStore(pool: pool))
    }

    func scorer(_ artifact: ModelArtifact, version: Int) throws -> Scorer {
        try scoringPolicy.scorer(artifact, version: version)
    }

    func ruleFile() throws -> RuleFile? {
        guard let rules else { return nil }
        do { return try RuleFile(path: rules) } catch { throw ValidationError("\(error)") }
    }
}

func format4(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
