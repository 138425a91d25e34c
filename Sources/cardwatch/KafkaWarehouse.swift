#if Kafka
    import CardwatchCore
    import CardwatchKafka
    import CardwatchModel
    import CardwatchPipeline
    import CardwatchPostgres
    import CardwatchStorage
    import Foundation

    /// Where an instance on Kafka commits its decisions: the PostgreSQL warehouse its group
    /// shares, or, for one instance alone, a SQLite file of its own (`Topology.kafkaWarehouse`),
    /// which is then also the idempotency index and the labels' router (`seen_transactions`).
    struct KafkaWarehouse {
        let sink: any DecisionSink
        /// Each transaction id's first decision (repeats are answered with it).
        let index: any DecisionIndex
        let checkpoints: any CheckpointStore
        let labelTargets: @Sendable ([String]) throws -> [String: LabelTarget]
        /// The API's, health check's and retraining's reads, given the log side.
        let reads: (KafkaIngestSide) -> (any ServingStore, any MonitoringStore & TrainingStore)
        /// The SQLite sink's card profiles folded in behind, written at a clean stop.
        let flush: () throws -> Void

        init(pool: PostgresPool, retainDays: Int?, observer: @escaping @Sendable (ProcessedBatch) -> Void) throws {
            let postgres = try PostgresWarehouseSink(pool: pool, retainDays: retainDays, observer: observer)
            sink = postgres
            index = postgres
            checkpoints = try PostgresCheckpointStore(pool: pool)
            let routing = PostgresLabelRouting(pool: pool)
            labelTargets = { try routing.targets($0) }
            reads = { side in
                let reads = PostgresWarehouseReads(pool: pool, ingest: side)
                return (reads, reads)
            }
            flush = {}
        }

        init(alone topology: Topology, partitions: Int, observer: @escaping @Sendable (ProcessedBatch) -> Void) throws {
            guard case .sqlite(let path) = topology.warehouse else {
                throw CLIError("the warehouse \(topology.warehouse) is neither PostgreSQL nor a SQLite file")
            }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let file: SQLiteEventLog
            do { file = try SQLiteEventLog(directory: directory, partitions: partitions) } catch {
                throw CLIError("the warehouse \(path) cannot be used: \(error)")
            }
            let sqlite = SQLiteWarehouseSink(log: file, logElsewhere: true, observer: observer)
            sink = sqlite
            let decided = SQLiteDecidedIndex(sink: sqlite)
            index = decided
            checkpoints = try SQLiteCheckpointStore(
                path: URL(fileURLWithPath: directory).appendingPathComponent(EmbeddedRuntime.checkpointFile).path)
            labelTargets = { try decided.labelTargets($0) }
            reads = { side in
                (FeedbackToKafka(inner: file.serving, labels: side), LagFromKafka(inner: file.monitoring, side: side))
            }
            flush = { try sqlite.flush() }
        }
    }

    /// The SQLite warehouse's reads, with analysts' verdicts also produced to the `labels`
    /// topic (its own `recordFeedback` appends them to the file's unread labels table).
    struct FeedbackToKafka: ServingStore {
        let inner: SQLiteServing
        let labels: KafkaIngestSide

        func recentAlerts(limit: Int) throws -> [AlertRecord] { try inner.recentAlerts(limit: limit) }
        func alert(transactionID: String) throws -> AlertRecord? { try inner.alert(transactionID: transactionID) }
        func alerts(cardID: String, limit: Int) throws -> [AlertRecord] { try inner.alerts(cardID: cardID, limit: limit) }
        func decision(transactionID: String) throws -> StoredDecision? { try inner.decision(transactionID: transactionID) }
        func stats(from: Int64) throws -> WindowStats { try inner.stats(from: from) }
        func timeseries(from: Int64, bucketMicros: Int64) throws -> [TimeBucket] {
            try inner.timeseries(from: from, bucketMicros: bucketMicros)
        }

        func recordFeedback(_ feedback: AnalystFeedback, alertsOnly: Bool) throws -> Bool? {
            guard let alert = try inner.recordFeedback(feedback, alertsOnly: alertsOnly) else { return nil }
            try labels.appendFeedbackLabel(
                LabelEvent(
                    transactionID: feedback.transactionID, isFraud: feedback.fraud,
                    reportedAt: Timestamp(microseconds: feedback.at)))
            return alert
        }
    }

    /// The SQLite warehouse's monitoring, with the lag of the topics in Kafka (the file's own log is empty).
    struct LagFromKafka: MonitoringStore, TrainingStore {
        let inner: SQLiteMonitoring
        let side: KafkaIngestSide

        func processorLag() throws -> Int64 { try side.processorLag() }
        func deadLetterCounts(since: Int64) throws -> (total: Int, recent: Int) { try inner.deadLetterCounts(since: since) }
        func baseline() throws -> (transactions: Int, alerts: Int) { try inner.baseline() }
        func record(_ report: HealthReport) throws { try inner.record(report) }
        func record(_ alert: SystemAlert) throws { try inner.record(alert) }
        func latestHealth() throws -> HealthReport? { try inner.latestHealth() }
        func systemAlerts(limit: Int) throws -> [SystemAlert] { try inner.systemAlerts(limit: limit) }
        func trainingRows(days: Double) throws -> TimedDataset { try inner.trainingRows(days: days) }
        func featureColumns() throws -> [String] { try inner.featureColumns() }
    }

    /// One instance alone on a SQLite warehouse holds every partition of its group: its
    /// decisions, offsets and card state are in a file no other instance reads, so a second
    /// member deciding some partitions into a file of its own would split the stream between
    /// two warehouses. Refused, before anything is restored or decided:
    /// - a member given a partition whose group offset in Kafka (committed after each batch by
    ///   whoever decided it) is ahead of this warehouse's: it was decided in another warehouse;
    /// - a member given only part of the partitions for longer than `grace` (a restarted
    ///   instance waits there for the group to drop its previous self) without ever holding
    ///   them all: another member holds the rest.
    /// One that has held them all keeps what the group gives it and gets the rest back when
    /// the other leaves.
    final class SoleMember: Sendable {
        let partitions: Int
        let group: String
        let grace: Double
        /// The group's offset in Kafka and this warehouse's, of a partition's transactions.
        let offsets: @Sendable (Int) throws -> (kafka: Int64?, warehouse: Int64)
        private let state = Locked<(heldAll: Bool, partialSince: Double?, refused: String?)>((false, nil, nil))

        init(
            partitions: Int, group: String, grace: Double,
            offsets: @escaping @Sendable (Int) throws -> (kafka: Int64?, warehouse: Int64)
        ) {
            self.partitions = partitions
            self.group = group
            self.grace = grace
            self.offsets = offsets
        }

        /// Why this instance was refused, once it was.
        var refused: String? { state.withLock { $0.refused } }

        static let remedy =
            "instances on SQLite warehouses cannot share a group, each would decide part of the stream into a file of its "
            + "own. Run them all with --warehouse postgres://USER@HOST:PORT/DB, or give each its own --group (each then "
            + "decides every transaction)"

        func admit(_ held: [Int], refuse: (String) -> Void) throws {
            if refused != nil { throw CLIError(refused!) }
            var verdict: String?
            for p in held {
                let (kafka, warehouse) = try offsets(p)
                if let kafka, kafka > warehouse {
                    verdict =
                        "group \(group) decided partition \(p) up to offset \(kafka) in another warehouse (the group's "
                        + "offsets in Kafka), this one holds \(warehouse): " + Self.remedy
                    break
                }
            }
            let now = monotonicSeconds()
            if verdict == nil {
                verdict = try state.withLock { s -> String? in
                    if held.count == partitions {
                        s.heldAll = true
                        s.partialSince = nil
                        return nil
                    }
                    if s.heldAll { return nil }
                    let since = s.partialSince ?? now
                    s.partialSince = since
                    guard now - since >= grace else { throw AdmissionPending() }
                    return "another member of group \(group) holds partitions (this one was given \(held.count) of "
                        + "\(partitions) for \(Int(grace)) s): " + Self.remedy
                }
            }
            guard let verdict else { return }
            state.withLock { $0.refused = verdict }
            refuse(verdict)
            throw CLIError(verdict)
        }
    }
#endif
