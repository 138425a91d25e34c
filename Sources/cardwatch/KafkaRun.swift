#if Kafka
    import ArgumentParser
    import CardwatchCore
    import CardwatchKafka
    import CardwatchPipeline
    import CardwatchPostgres
    import CardwatchServer
    import CardwatchStorage
    import Foundation
    import Logging
    import ServiceLifecycle
    import Synchronization
    import UnixSignals

    /// `cardwatch run --log kafka://… --warehouse postgres://…`: one instance of a consumer group.
    ///
    /// Started N times with the same `--group`, the instances share the topics' partitions
    /// (Kafka's group protocol) and one warehouse. Each runs the partition runtime over the
    /// partitions assigned to it: on assignment a partition's card state is its checkpoint in
    /// the warehouse plus a replay from the transactions topic up to the warehouse's offsets;
    /// on revocation it commits and checkpoints first. A batch's decisions commit with its
    /// offsets in the warehouse (exactly once); its alerts and dead letters are produced to
    /// their topics before that commit (at least once, deterministic payloads keyed by
    /// transaction id), and the offsets go to Kafka after it, for lag tools. One instance at a
    /// time retrains (the registry's lease); every instance follows the promoted model.
    struct KafkaInstance {
        /// A stream processor (`run`), or an API node that decides nothing itself (`serve`).
        enum Role {
            case processor(noGenerator: Bool, retrain: String, retrainDays: Double)
            case api
        }
        let pipeline: PipelineOptions
        let kafka: KafkaOptions
        let http: HTTPOptions
        let ingest: LiveIngestOptions
        let online: OnlineStoreOptions
        let healthInterval: Double
        let role: Role
        let topology: Topology
        let url: String

        init(run: Run, topology: Topology, url: String) {
            pipeline = run.pipeline
            kafka = run.kafka
            http = run.http
            ingest = run.ingest
            online = run.online
            healthInterval = run.healthInterval
            role = .processor(noGenerator: run.noGenerator, retrain: run.retrain, retrainDays: run.retrainDays)
            self.topology = topology
            self.url = url
        }

        init(serve: Serve, topology: Topology, url: String) {
            pipeline = serve.pipeline
            kafka = serve.kafka
            http = serve.http
            ingest = serve.ingest
            online = serve.online
            healthInterval = 300
            role = .api
            self.topology = topology
            self.url = url
        }

        var isProcessor: Bool { if case .processor = role { true } else { false } }

        func start() async throws {
            let pipeline = self.pipeline
            let kafka = self.kafka
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            var logger = Logger(label: "cardwatch")
            logger.logLevel = pipeline.quiet ? .warning : .info
            let endpoint = try kafka.endpoint(url)
            // The shared PostgreSQL warehouse, or one instance alone on a SQLite file of its own.
            let pool = try pipeline.postgresWarehouse()
            if !isProcessor && pool == nil {
                throw CLIError(
                    "an API node reads the processors' warehouse: give --warehouse postgres://… (the one the processors write)")
            }
            let dataLock = pool == nil ? try pipeline.lockDataDirectory(command: "cardwatch run --log kafka://") : nil
            defer { withExtendedLifetime(dataLock) {} }
            let (registry, registryPool) = try pipeline.openedRegistry()
            let log: KafkaLog
            do {
                log = try KafkaLog(
                    endpoint, partitions: pipeline.partitions, replicationFactor: kafka.replicationFactor,
                    decisions: kafka.decisionsTopic)
            } catch { throw CLIError("the log at \(endpoint) cannot be used: \(error)") }
            let lease = (registryPool ?? pool).map { PostgresRetrainingLease(pool: $0) }
            let models = ProductionModel(try bootstrap(registry: registry, lease: lease, logger: logger))
            let rules = try pipeline.ruleFile()
            let state = PipelineState()
            let metrics = PipelineMetrics(partitions: log.partitions)
            metrics.setModelVersion(models.current.scorer.modelVersion)
            let feed = AlertFeed()
            let watch = try KafkaClusterWatch(endpoint)
            let answers = Locked<KafkaDecisions?>(nil)
            let online = try online.open(models: models, rules: rules, metrics: metrics, logger: logger)
            let observer: @Sendable (ProcessedBatch) -> Void = { batch in
                state.processed.add(batch.transactions.count, ordering: .relaxed)
                state.alerts.add(batch.transactions.count { $0.decision.isAlert }, ordering: .relaxed)
                state.labels.add(batch.labels.count, ordering: .relaxed)
                metrics.observe(batch)
                feed.publish(batch)
                answers.withLock { $0 }?.observe(batch)
                online?.publisher.publish(batch)
            }
            let stores =
                try pool.map { try KafkaWarehouse(pool: $0, retainDays: pipeline.retainDays, observer: observer) }
                ?? KafkaWarehouse(alone: topology, partitions: log.partitions, observer: observer)
            let warehouse = stores.sink
            let index = stores.index
            let decisions = KafkaDecisions(log: log, index: index) { watch.status }
            answers.withLock { $0 = decisions }
            let checkpoints = stores.checkpoints
            // Alone on SQLite: a second member of the group is refused (`SoleMember`).
            let sole =
                pool == nil
                ? SoleMember(partitions: log.partitions, group: kafka.group, grace: kafka.sessionTimeout + 10) {
                    [group = kafka.group] p in
                    (
                        try log.committedOffset(group: group, topic: .transactions, partition: p),
                        try warehouse.offsets(group: group, partition: p)?.transactions ?? 0
                    )
                } : nil
            var options = PartitionRuntime.Options()
            options.group = kafka.group
            options.batchRecords = pipeline.batch
            options.checkpointEvery = pipeline.checkpointEvery
            options.cardPartitioner = log.partitioner  // other producers write here too
            options.avro = try kafka.avroDecoder()
            // On PostgreSQL a batch's commit runs on a thread of its own while the next is decided
            // (the runtime's thread was 86 % busy deciding and committing in turn, one core of two).
            // Not on SQLite, as `run` (`PipelineOptions.openPipeline`).
            options.pipelined = pool != nil
            let runtimeOptions = options
            let group = kafka.group
            let sessionTimeout = kafka.sessionTimeout
            logger.info(
                "\(isProcessor ? "instance" : "API node (no processor)") of group \(group) on \(endpoint) (\(log.partitions) partitions), warehouse \(topology.warehouse); model v\(models.current.scorer.modelVersion)"
            )

            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            func supervised(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
                services.append(
                    .init(
                        service: Supervised(name, state: state, logger: logger, body: body),
                        successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore, serviceName: name))
            }
            let rebalanceLogger = logger
            let processor = PartitionRuntimeService(idleSeconds: 0.005) {
                let consumer = try KafkaConsumer(log: log, group: group, sessionTimeout: sessionTimeout)
                if let sole {
                    consumer.admit = { held in
                        try sole.admit(held) { reason in
                            rebalanceLogger.critical("\(reason)")
                            kill(getpid(), SIGTERM)  // the service group stops the instance; `start` then fails with the reason
                        }
                    }
                }
                consumer.onRebalance = { assigned, revoked in
                    if !assigned.isEmpty { rebalanceLogger.info("partitions assigned: \(assigned)") }
                    if !revoked.isEmpty { rebalanceLogger.info("partitions revoked: \(revoked)") }
                }
                let commits = consumer.offsetCommits
                let sink = KafkaOutputSink(inner: warehouse, log: log) { commits.commit($0) }
                return PartitionRuntime(
                    consumer: consumer, log: log, sink: sink, index: index, checkpoints: checkpoints, models: models,
                    rules: rules, options: runtimeOptions)
            }
            let lagSide = KafkaIngestSide(log: log, sink: warehouse, group: group, labelTargets: stores.labelTargets)
            let (serving, monitoring) = stores.reads(lagSide)
            let interval = Duration.milliseconds(Int64(healthInterval * 1000))
            if case .processor(_, let retrain, let retrainDays) = role {
                supervised("processor") { try await processor.run() }
                let health = HealthService(
                    check: HealthCheck(store: monitoring, state: state), interval: interval, logger: logger)
                supervised("health") { try await health.run() }
                var job = RetrainingJob(store: monitoring, catalog: registry, models: models)
                job.windowDays = retrainDays
                job.scoring = try pipeline.scoringPolicy
                var retraining = RetrainingService(
                    job: job, schedule: try CronSchedule(retrain), state: state, monitoring: monitoring, logger: logger)
                retraining.lease = lease  // nil alone: nobody to share retraining with
                let retrainingService = retraining
                supervised("retraining") { try await retrainingService.run() }
            } else {
                // An API node: the processors' alerts reach its live feed from the warehouse.
                let poller = AlertPoller(serving: serving, feed: feed)
                supervised("alert-feed") { try await poller.run() }
            }
            if let publisher = online?.publisher {
                let retry = OnlineRetry(publisher: publisher)
                supervised("online-store") { try await retry.run() }
            }
            let promoted = Doorbell()
            if case .postgres(let registryURL) = topology.registry {
                let notifications = PostgresModelNotifications(
                    endpoint: try PostgresEndpoint.parse(registryURL), wake: promoted, logger: logger)
                supervised("model-notifications") { try await notifications.run() }
            }
            let follower = ModelFollower(
                registry: registry, models: models, scoring: try pipeline.scoringPolicy, logger: logger, wake: promoted)
            supervised("model-follower") { try await follower.run() }
            // The lag, refreshed with each check of the cluster: /metrics and the health check
            // read it, and never wait for the cluster themselves.
            supervised("cluster-watch") {
                try await runOnThreadUntilShutdown(name: "cluster-watch") { stop, wake in
                    watch.run(until: stop, wake: wake) { lagSide.refresh() }
                }
            }
            if case .processor(noGenerator: false, _, _) = role {
                logger.info(
                    "instances on Kafka run no generator: feed the topic with cardwatch generate --tps N --out \(url)")
            }
            var dependencies = ServerDependencies(
                serving: serving, monitoring: monitoring, models: registry, decide: { try decisions.decide($0) },
                modelSwitch: models)
            dependencies.metrics = metrics
            dependencies.feed = feed
            dependencies.ingestPolicy = try ingest.policy()
            dependencies.scoring = try pipeline.scoringPolicy
            // An API node has no stages of its own: its health is the processors' last stored report.
            dependencies.state = isProcessor ? state : nil
            dependencies.healthInterval = interval
            var shown = topology
            shown.consumerGroup = group
            shown.opened = .init(partitions: log.partitions, partitioner: log.partitioner.rawValue)
            dependencies.topology = shown
            dependencies.logUnavailable = { watch.status }
            dependencies.partitionLag = { lagSide.cached }
            dependencies.online = online?.scoring
            let api = CardwatchAPI(dependencies: dependencies, settings: http.serverSettings(logger: logger))
            services.append(.init(service: api.application(), serviceName: "http"))
            if !pipeline.quiet && isProcessor {
                let progress = ProgressService(state: state, logger: logger)
                services.append(.init(service: progress, serviceName: "progress"))
            }
            let serviceGroup = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await serviceGroup.run()
            try stores.flush()
            online?.publisher.flush()
            online?.publisher.stop()
            if let refused = sole?.refused { throw CLIError(refused) }
            let processed = state.processed.load(ordering: .relaxed)
            let alerts = state.alerts.load(ordering: .relaxed)
            logger.info("stopped: \(processed) transactions decided by this instance, \(alerts) alerts")
        }

        /// The production model; with none, one instance (the retraining lease's holder)
        /// bootstraps it while the others wait for it.
        func bootstrap(registry: ModelRegistry, lease: (any RetrainingLease)?, logger: Logger) throws -> Scorer {
            while true {
                if try registry.production() != nil { return try pipeline.productionScorer(registry: registry) }
                guard let lease else { return try pipeline.productionScorer(registry: registry) }
                if let scorer = try lease.whileHeld({ try pipeline.productionScorer(registry: registry) }) {
                    return scorer
                }
                logger.info("waiting for the instance that bootstraps the first model")
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    /// What the health check and retraining ask of the log side when it is Kafka.
    struct KafkaIngestSide: IngestSide {
        let log: KafkaLog
        let sink: any DecisionSink
        let group: String
        /// Analysts' verdicts go to the labels topic, routed by the warehouse's decisions.
        let labels: KafkaIngestStore
        /// Each partition's lag as of the last `refresh`.
        private let lags = Locked<[Int: Int64]>([:])

        init(
            log: KafkaLog, sink: any DecisionSink, group: String,
            labelTargets: @escaping @Sendable ([String]) throws -> [String: LabelTarget]
        ) {
            self.log = log
            self.sink = sink
            self.group = group
            labels = KafkaIngestStore(log: log, lookup: labelTargets)
        }

        var cached: [Int: Int64] { lags.withLock { $0 } }

        /// Asks the cluster and the warehouse again (on the cluster watch's thread).
        func refresh() {
            if let now = try? lagByPartition() { lags.withLock { $0 = now } }
        }

        /// Dead letters of undecodable records are in the warehouse (the runtime's); the
        /// producers' own go to `transactions.dlq`, which this instance does not count.
        func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) { (0, 0) }

        /// Transactions and labels in the topics beyond the warehouse's offsets of the group (as of the last refresh).
        func processorLag() throws -> Int64 { cached.values.reduce(0, +) }

        /// Each partition's transactions and labels beyond the warehouse's offsets (a second at
        /// most per question to the cluster: a health check never hangs on it).
        func lagByPartition() throws -> [Int: Int64] {
            var lags: [Int: Int64] = [:]
            for p in 0..<log.partitions {
                let at = try sink.offsets(group: group, partition: p) ?? .start
                lags[p] =
                    try log.endOffset(.transactions, partition: p, timeout: 1) - at.transactions
                    + log.endOffset(.labels, partition: p, timeout: 1) - at.labels
            }
            return lags
        }

        /// The verdict as a label, to its transaction's card's partition (the alert it answers was decided, so the
        /// warehouse knows the card); the partition's owner applies it like a chargeback.
        func appendFeedbackLabel(_ label: LabelEvent) throws {
            try labels.ingestLabels([label], source: "feedback", resumeAt: 0)
        }
    }

    /// Logs the instance's progress every 10 s while it decides.
    struct ProgressService: Service {
        let state: PipelineState
        let logger: Logger
        func run() async throws {
            var last = 0
            while !Task.isShuttingDownGracefully {
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(10)) } } catch { return }
                let now = state.processed.load(ordering: .relaxed)
                if now != last {
                    logger.info(
                        "decided \(now) transactions (\((now - last) / 10)/s), \(state.alerts.load(ordering: .relaxed)) alerts")
                    last = now
                }
            }
        }
    }
#endif
