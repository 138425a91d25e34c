import ArgumentParser
import CardwatchCore
import CardwatchGenerator
import CardwatchPipeline
import CardwatchPostgres
import CardwatchServer
import CardwatchStorage
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the live pipeline: generator → log → features → scoring → alerts and warehouse, until stopped.",
        discussion: """
            On an empty data directory it first bootstraps a model (a generated history,
            training, promotion). Then the live generator feeds --tps transactions a second
            (and their chargebacks, as labels) into the durable log, the processor decides
            each one, a health check runs every --health-interval seconds, and the model is
            retrained on the warehouse on the --retrain schedule and hot-swapped when the
            registry's rule promotes it. The pipeline follows the registry's production model:
            a promotion by another process (cardwatch models promote) is served within a second.
            A failing stage is restarted with an exponential backoff (100 ms up to 30 s), never
            given up. Ctrl-C (SIGINT) or SIGTERM stops it cleanly; a SIGKILL loses nothing
            either (the next start resumes from the last commit, the generator's simulated
            clock where the stored stream left off).

            One process writes to a data directory at a time: run holds DATA_DIR/lock, and
            import on the same directory is refused meanwhile. Feed a running pipeline over
            HTTP (POST /v1/transactions).

            Examples:
              cardwatch run
              cardwatch run --tps 500 --rules rules.json --data-dir /var/lib/cardwatch
            """)

    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup(title: "Kafka (with --log kafka://…)") var kafka: KafkaOptions
    @Option(help: "Transactions per second from the live generator.") var tps = 50.0
    @Flag(help: "No generator: decide only what arrives over HTTP (POST /v1/transactions).") var noGenerator = false
    @Option(help: "Generator seed (the synthetic world; 1 is the bootstrap model's world).") var seed: UInt64 = 1
    @Option(help: "Generator cards (500: the bootstrap model's world).") var cards = 500
    @Option(help: "Generator fraud share of all transactions (0 to 0.5).") var fraudRate = 0.02
    @Option(help: "Seconds between health checks.") var healthInterval = 300.0
    @Option(help: "Retraining schedule, cron syntax in UTC (minute hour day month weekday).") var retrain = "0 2 * * *"
    @Option(help: "Days of warehouse history a retraining uses.") var retrainDays = 30.0
    @Option(help: "Pause the generator while this many records wait for the processor.") var maxLag = 100_000
    @OptionGroup(title: "HTTP API") var http: HTTPOptions
    /// Checks of posted records beyond the schema (the live generator is exempt).
    @OptionGroup var ingest: LiveIngestOptions
    @OptionGroup(title: "Online feature store") var online: OnlineStoreOptions

    func validate() throws {
        if !(tps > 0 && tps <= 1_000_000) { throw ValidationError("--tps must be in (0, 1000000]") }
        if !(healthInterval > 0) { throw ValidationError("--health-interval must be positive") }
        if !(fraudRate >= 0 && fraudRate <= 0.5) { throw ValidationError("--fraud-rate must be within 0…0.5") }
        if cards < 1 { throw ValidationError("--cards must be at least 1") }
        do { _ = try CronSchedule(retrain) } catch { throw ValidationError("--retrain: \(error)") }
    }

    /// What feeds this pipeline.
    var sources: [Topology.Source] {
        (noGenerator ? [] : [.generator(transactionsPerSecond: tps)]) + [.http(host: http.host, port: http.port)]
    }

    func run() async throws {
        if try pipeline.printedTopology(sources: sources, kafkaGroup: kafka.group) { return }
        let configured = try pipeline.topology(sources: sources)
        if case .kafka(let url) = configured.log {
            #if Kafka
                return try await KafkaInstance(run: self, topology: configured, url: url).start()
            #else
                throw ValidationError("--log \(url): \(KafkaSupport.missing ?? "")")
            #endif
        }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "cardwatch")
        logger.logLevel = pipeline.quiet ? .warning : .info
        let ingestPolicy = try ingest.policy()  // a bad PAN secret stops the start, before any bootstrap
        let lock = try pipeline.lockDataDirectory(command: "cardwatch run")
        defer { withExtendedLifetime(lock) {} }
        let scoring = try pipeline.scoringPolicy
        let (store, registry, runtime, state, _, postgres) = try pipeline.openPipeline()
        // The API's, the health check's and retraining's reads: the warehouse's, wherever it is.
        let serving: any ServingStore
        let monitoring: any MonitoringStore & TrainingStore
        if let postgres {
            let reads = PostgresWarehouseReads(pool: postgres, ingest: LogIngestSide(store: store, runtime: runtime))
            (serving, monitoring) = (reads, reads)
        } else {
            (serving, monitoring) = (store.serving, store.monitoring)
        }
        var topology = try pipeline.topology(sources: sources)
        topology.opened = .init(partitions: store.partitions, partitioner: store.partitioner.rawValue)
        if postgres != nil { topology.consumerGroup = "\(PartitionRuntime.defaultGroup)@\(try store.logID())" }
        let metrics = PipelineMetrics()
        let feed = AlertFeed()
        let scorer = runtime.models.current.scorer
        metrics.setModelVersion(scorer.modelVersion)
        let online = try self.online.open(
            models: runtime.models, rules: try pipeline.ruleFile(), metrics: metrics, logger: logger)
        runtime.commits.onCommit {
            metrics.observe($0)
            feed.publish($0)
            online?.publisher.publish($0)
        }
        logger.info("model v\(scorer.modelVersion) in production; data in \(pipeline.dataDir)")
        if scoring.overridesModel {
            let applied = scorer.policy
            logger.info("thresholds: review ≥ \(applied.high), decline ≥ \(applied.critical) (the model's own overridden)")
        }

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        func supervised(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
            services.append(
                .init(
                    service: Supervised(name, state: state, logger: logger, body: body), successTerminationBehavior: .ignore,
                    failureTerminationBehavior: .ignore, serviceName: name))
        }
        let runtimeService = SteppedService(runtime, name: "partition-runtime", doorbell: state.arrivals)
        supervised("processor") { try await runtimeService.run() }
        if !noGenerator {
            var config = GeneratorConfig()
            config.seed = seed
            config.cards = cards
            config.fraudRate = fraudRate
            let generator = LiveGeneratorService(
                store: store, runtime: runtime, config: config, tps: tps, maxLag: Int64(maxLag), state: state, logger: logger)
            supervised("generator") { try await generator.run() }
        }
        let interval = Duration.milliseconds(Int64(healthInterval * 1000))
        let health = HealthService(check: HealthCheck(store: monitoring, state: state), interval: interval, logger: logger)
        supervised("health") { try await health.run() }
        var job = RetrainingJob(store: monitoring, catalog: registry, models: runtime.models)
        job.windowDays = retrainDays
        job.scoring = scoring
        var retraining = RetrainingService(
            job: job, schedule: try CronSchedule(retrain), state: state, monitoring: monitoring, logger: logger)
        if let publisher = online?.publisher {
            let retry = OnlineRetry(publisher: publisher)
            supervised("online-store") { try await retry.run() }
        }
        let promoted = Doorbell()
        if case .postgres(let url) = topology.registry {
            // A registry shared by instances: one retrains at a time; any promotion wakes the follower.
            let endpoint = try PostgresEndpoint.parse(url)
            retraining.lease = PostgresRetrainingLease(pool: PostgresPool(endpoint, size: 1))
            let notifications = PostgresModelNotifications(endpoint: endpoint, wake: promoted, logger: logger)
            supervised("model-notifications") { try await notifications.run() }
        }
        let retrainingService = retraining
        supervised("retraining") { try await retrainingService.run() }
        let follower = ModelFollower(
            registry: registry, models: runtime.models, scoring: scoring, logger: logger, wake: promoted)
        supervised("model-follower") { try await follower.run() }

        let settings = serverSettings(logger: logger)
        var dependencies = ServerDependencies(
            serving: serving, monitoring: monitoring, models: registry,
            decide: { batch in try runtime.ingestAndDecide(batch) }, doorbell: state.arrivals,
            modelSwitch: runtime.models)
        dependencies.metrics = metrics
        dependencies.feed = feed
        dependencies.ingestPolicy = ingestPolicy
        dependencies.scoring = scoring
        dependencies.state = state
        dependencies.healthInterval = interval
        dependencies.topology = topology
        dependencies.online = online?.scoring
        let api = CardwatchAPI(dependencies: dependencies, settings: settings)
        services.append(.init(service: api.application(), serviceName: "http"))
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let source = noGenerator ? "no generator" : "generator at \(tps) tx/s"
        logger.info(
            "running: \(source); HTTP on \(http.host):\(http.port); health every \(healthInterval) s; retraining '\(retrain)' UTC; Ctrl-C stops"
        )
        try await group.run()
        online?.publisher.flush()
        online?.publisher.stop()
        let processed = state.processed.load(ordering: .relaxed)
        let alerts = state.alerts.load(ordering: .relaxed)
        logger.info("stopped: \(processed) transactions processed, \(alerts) alerts")
        // Append to the log → decision committed, in milliseconds (also what benchmarks/pipeline.sh reads).
        for alertsOnly in [false, true] {
            let (n, q) = runtime.commits.latencies.quantiles([0.5, 0.99, 1], alertsOnly: alertsOnly)
            let ms = q.map { String(format: "%.2f", Double($0) / 1000) }
            let what = alertsOnly ? "alerts" : "decisions"
            printError("latency, append to committed \(what) (\(n)): p50 \(ms[0]) ms, p99 \(ms[1]) ms, max \(ms[2]) ms")
        }
    }
}

/// What stays with the SQLite log when the warehouse is PostgreSQL.
struct LogIngestSide: IngestSide {
    let store: SQLiteEventLog
    let runtime: EmbeddedRuntime
    func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) {
        try store.monitoring.deadLetterCounts(since: since)
    }
    func processorLag() throws -> Int64 { try store.processorLag() }
    func appendFeedbackLabel(_ label: LabelEvent) throws {
        try runtime.appendLabels([label], source: "feedback", resumeAt: label.reportedAt.microseconds)
    }
}

extension Run {
    func serverSettings(logger: Logger) -> ServerSettings { http.serverSettings(logger: logger) }
}

/// The live generator as a stage. It runs the synthetic world (by default the very world
/// the bootstrap model was trained on: same seed, same 500 cards) and emits `tps`
/// transactions a wall-clock second. The world's own rate is a few transactions per card
/// per day, so to reach `tps` its clock runs faster than the wall clock (about 2,900× for
/// 500 cards at 50 tx/s): event times are simulated, per-card behaviour stays what the
/// model knows, and chargebacks (labels) arrive within minutes.
///
/// Its simulated clock is durable: each append commits the event time of its last
/// transaction as the `generator` source's resume position, and a start (of the process,
/// or of the stage after a failure) resumes just after it, so the stream goes on where the
/// stored one left off instead of jumping back to the wall clock (every card's next
/// transaction would be days older than its last, and look like fraud). A data directory
/// the generator never fed starts at the wall clock. The chargebacks the world still owes
/// (its frauds of the stored stream that no label has confirmed) are reported as it would
/// have reported them.
struct LiveGeneratorService: Sendable {
    static let source = "generator"
    let store: SQLiteEventLog
    /// Appends go through the runtime, so that they never land between the plan and the
    /// append of a synchronous decision (`EmbeddedRuntime.ingestAndDecide`).
    let runtime: EmbeddedRuntime
    let config: GeneratorConfig
    let tps: Double
    let maxLag: Int64
    let state: PipelineState
    let logger: Logger

    /// Where the simulated clock starts: just after the last generated transaction committed.
    static func start(_ store: SQLiteEventLog) throws -> Timestamp {
        let stored = try store.resumePosition(source: source) ?? store.lastLiveGeneratorEventTime()
        guard let stored else { return Timestamp(microseconds: wallClockMicroseconds()) }
        return Timestamp(microseconds: stored + 1)
    }

    /// The chargebacks owed for the frauds generated before `start` (within the longest label
    /// delay) that no label has confirmed, in report order.
    static func owedChargebacks(_ store: SQLiteEventLog, config: GeneratorConfig, start: Timestamp) throws -> [LabelEvent] {
        let since = start.microseconds - Int64(config.labelDelayMaxDays * 86_400e6)
        return try store.unconfirmedFrauds(idPrefix: "lv", since: since).map {
            chargeback(transactionID: $0.id, eventTime: $0.eventTime, config: config)
        }.sorted { $0.reportedAt < $1.reportedAt }
    }

    /// A fraud's chargeback, a label delay after it, drawn as the generator draws its delays
    /// (log-normal around the median, σ 0.6, clamped), from a seed made of the transaction id:
    /// every start owes it at the same time.
    static func chargeback(transactionID id: String, eventTime: Int64, config: GeneratorConfig) -> LabelEvent {
        var seed: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a of the id
        for byte in id.utf8 { seed = (seed ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var rng = SeededRandom(seed: seed)
        let days = min(
            config.labelDelayMaxDays,
            max(config.labelDelayMinDays, rng.logNormal(median: config.labelDelayMedianDays, sigma: 0.6)))
        return LabelEvent(
            transactionID: id, isFraud: true,
            reportedAt: Timestamp(microseconds: (eventTime + Int64(days * 86_400e6)) / 1_000 * 1_000))
    }

    func run() async throws {
        let store = store
        let runtime = runtime
        let config = config
        let tps = tps
        let maxLag = maxLag
        let state = state
        let logger = logger
        try await runOnThreadUntilShutdown(name: "generator") { stop, _ in
            let start = try Self.start(store)
            var generator = try TransactionGenerator(config: config, mode: .backfill(start: start, end: nil))
            let owed = try Self.owedChargebacks(store, config: config, start: start)
            var nextOwed = 0
            // A backfill numbers its transactions from 1 for a seed: prefix this start so they never
            // repeat an earlier run's (or the bootstrap history's) ids, and their labels follow. Starts
            // strictly increase (each resumes after the last commit), so prefixes never repeat.
            let prefix = "lv\(start.microseconds)_"
            logger.info(
                "generator: simulated clock starts at \(start.rfc3339); \(owed.count) chargebacks owed from before")

            let began = wallClockMicroseconds()
            var emitted = 0
            var labelsSent: Int64 = 0
            while !stop.isStopped {
                // Everything due by now (the k-th transaction is due k/tps seconds after the start),
                // at most 20 ms of it; at low rates that is one transaction, sent as soon as it is due.
                let due = Int(Double(wallClockMicroseconds() - began) * tps / 1e6)
                if due <= emitted {
                    let next = began + Int64(Double(emitted + 1) / tps * 1e6)
                    usleep(UInt32(max(50, min(next - wallClockMicroseconds(), 100_000))))
                    continue
                }
                var batch = IngestBatch(source: Self.source)
                var last = start
                while emitted < due, batch.records.count < max(1, Int(tps / 50)), var tx = generator.next() {
                    tx.transactionID = prefix + tx.transactionID
                    batch.records.append(IngestRecord(transaction: tx))
                    last = tx.timestamp
                    emitted += 1
                }
                // The simulated clock, committed with the records it covers.
                batch.resumeAt = last.microseconds
                while (try? store.processorLag()) ?? 0 > maxLag && !stop.isStopped { usleep(1_000) }
                let outcome = try runtime.append(batch)
                state.arrivals.ring()
                state.ingested.add(outcome.accepted, ordering: .relaxed)
                state.duplicates.add(outcome.duplicates.count, ordering: .relaxed)
                var labels = generator.labels(reportedBy: last).map {
                    LabelEvent(transactionID: prefix + $0.transactionID, isFraud: $0.isFraud, reportedAt: $0.reportedAt)
                }
                while nextOwed < owed.count, owed[nextOwed].reportedAt <= last {
                    labels.append(owed[nextOwed])
                    nextOwed += 1
                }
                if !labels.isEmpty {
                    labelsSent += Int64(labels.count)
                    try runtime.appendLabels(labels, source: "generator-labels", resumeAt: labelsSent)
                }
            }
        }
    }
}
