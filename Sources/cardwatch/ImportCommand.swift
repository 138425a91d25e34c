import ArgumentParser
import CardwatchCore
import CardwatchPipeline
import CardwatchStorage
import Foundation
import Logging
import Synchronization

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Feed a file of transactions through the pipeline: log, features, scoring, alerts, warehouse.",
        discussion: """
            Ingest (validation, dead letters, duplicates) and processing run side by side;
            the command returns when every record of the file has been decided. An
            interrupted import resumes where its last commit left off when run again.
            On a data directory without a model the file is stored first and a first
            model is bootstrapped from it: an isolation forest (unsupervised) when the
            file has 1,000 transactions or more and fewer than 10 fraud or legitimate
            labels, else a GBDT on a generated history. Records whose event time lies outside the
            live bounds (--max-event-lead, --max-event-age) are dead-lettered: a
            file of history needs --max-event-age none (or a longer age). Refused
            (exit status 1) while another process, such as cardwatch run, writes to the
            data directory: feed a running pipeline over HTTP (POST /v1/transactions) instead.

            Example:
              cardwatch generate --days 30 --seed 7 --out history.jsonl
              cardwatch import history.jsonl --data-dir ./cardwatch-data --json --max-event-age none
            """)

    @Argument(help: "Transactions: JSON Lines or CSV, schema v1.") var file: String
    @Option(help: "Label events (JSON Lines) to feed to the labels log after the transactions.") var labels: String?
    @Option(help: "jsonl or csv (default: from the file name).") var format: String?
    @Option(help: "Pause ingestion while this many records wait for the processor.") var maxLag = 200_000
    @Option(help: "Records per ingest batch (one atomic append to the log).") var ingestBatch = 16_384
    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup(title: "Kafka (with --log kafka://…)") var kafka: KafkaOptions
    @OptionGroup var ingest: LiveIngestOptions
    @OptionGroup(title: "Online feature store") var online: OnlineStoreOptions
    @Flag(help: "Print the summary as one JSON object.") var json = false

    func validate() throws {
        if maxLag < 1 { throw ValidationError("--max-lag must be at least 1") }
        if ingestBatch < 1 { throw ValidationError("--ingest-batch must be at least 1") }
    }

    func run() throws {
        if try pipeline.printedTopology(sources: [.file(path: file)], kafkaGroup: kafka.group) { return }
        guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let recordFormat = try format.map(parseFormat)
        let policy = try ingest.policy()
        if case .kafka(let url) = try pipeline.topology(sources: []).log {
            #if Kafka
                return try produceToKafka(url, format: recordFormat, policy: policy)
            #else
                throw ValidationError("--log \(url): \(KafkaSupport.missing ?? "")")
            #endif
        }
        let lock = try pipeline.lockDataDirectory(command: "cardwatch import")
        defer { withExtendedLifetime(lock) {} }
        let began = monotonicSeconds()
        let store = try pipeline.openStore()
        // No model yet: store the file before the bootstrap, which learns from what the log holds.
        let stored: Ingestor.Summary?
        do {
            stored =
                try pipeline.openedRegistry().registry.production() != nil
                ? nil : try storeFirst(store, format: recordFormat, policy: policy)
        } catch { throw ValidationError("\(file): \(error)") }
        let (_, _, runtime, state, _, _) = try pipeline.openPipeline(store: store, pipelined: true)
        let alertsBefore = try runtime.alertCount()
        // With --online-store: each commit's profiles and alerts, and how fresh they were when written.
        let freshness = Locked<[Int64]>([])
        var logger = Logger(label: "cardwatch")
        logger.logLevel = .warning
        let online = try self.online.open(models: runtime.models, rules: nil, logger: logger) { committed, written in
            freshness.withLock { $0.append(written - committed) }
        }
        if let online { runtime.commits.onCommit { online.publisher.publish($0) } }

        // Ingest on its own thread; process here until the ingest is done and the log is drained.
        let done = StopSignal()
        let result = Mutex<Result<Ingestor.Summary, any Error>?>(nil)
        let maxLag = Int64(maxLag)
        let ingestor = Ingestor(store: store, batchSize: ingestBatch) {
            while (try? store.processorLag()) ?? 0 > maxLag { usleep(1_000) }
        }
        let file = file
        let labels = labels
        startThread(named: "import") {
            if let stored {
                result.withLock { $0 = .success(stored) }
                done.stop()
                return
            }
            result.withLock { $0 = Result { try ingestor.importFile(file, format: recordFormat, policy: policy) } }
            if let labels, case .success = result.withLock({ $0! }) {
                do { try Self.appendLabels(labels, to: store) } catch { result.withLock { $0 = .failure(error) } }
            }
            done.stop()
        }
        var lastProgress = began
        while true {
            let n = try runtime.step()
            if n == 0 {
                if try done.isStopped && store.processorLag() == 0 && runtime.step() == 0 { break }
                usleep(500)
            }
            if !pipeline.quiet && isatty(2) != 0 && monotonicSeconds() - lastProgress > 0.5 {
                lastProgress = monotonicSeconds()
                printError("\rprocessed \(grouped(runtime.counters.decided))   ", terminator: "")
            }
        }
        try runtime.stop()
        online?.publisher.flush()
        online?.publisher.stop()
        let counters = runtime.counters
        let modelVersion = runtime.models.current.scorer.modelVersion
        let summary: Ingestor.Summary
        switch result.withLock({ $0! }) {
        case .success(let s): summary = s
        case .failure(let error): throw ValidationError("\(file): \(error)")
        }
        let seconds = monotonicSeconds() - began
        let alerts = try runtime.alertCount() - alertsBefore
        if !pipeline.quiet && isatty(2) != 0 { printError("") }
        if json {
            var object: [String: Any] = [
                "read": summary.read, "accepted": summary.accepted, "processed": counters.decided,
                "dead_lettered": summary.deadLettered, "duplicates": summary.duplicates, "alerts": alerts,
                "labels": state.labels.load(ordering: .relaxed), "resumed_after_line": summary.resumedAfter,
                "replayed": counters.replayed, "seconds": (seconds * 1000).rounded() / 1000,
                "outside_time_bounds": summary.outsideTimeBounds,
                "transactions_per_second": (Double(counters.decided) / max(seconds, 1e-9)).rounded(),
                "model_version": modelVersion,
            ]
            if online != nil {
                let f = Self.quantiles(freshness.withLock { $0 })
                object["online_writes"] = f.count
                object["online_freshness_ms"] = ["p50": f.p50, "p99": f.p99, "max": f.max]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let resumed = summary.resumedAfter > 0 ? " (resumed after line \(grouped(summary.resumedAfter)))" : ""
            let rate = grouped(Int(Double(counters.decided) / max(seconds, 1e-9)))
            var line = "\(file): \(grouped(summary.read)) records read\(resumed), \(grouped(counters.decided)) processed, "
            line += "\(grouped(summary.deadLettered)) dead-lettered, \(grouped(summary.duplicates)) duplicates, "
            line += "\(grouped(alerts)) alerts; model v\(modelVersion); \(format1(seconds)) s, \(rate) tx/s"
            print(line)
            if online != nil {
                let f = Self.quantiles(freshness.withLock { $0 })
                print("online store: \(f.count) writes; commit → written p50 \(f.p50) ms, p99 \(f.p99) ms, max \(f.max) ms")
            }
        }
        if summary.outsideTimeBounds > 0 {
            printError(
                "\(file): \(grouped(summary.outsideTimeBounds)) records were dead-lettered: their event times lie "
                    + "outside the live bounds (\(ingest.described): --max-event-lead, --max-event-age); for a file "
                    + "of history pass --max-event-age none")
        }
    }

    /// Nearest-rank quantiles of microsecond durations, in milliseconds (two decimals).
    static func quantiles(_ micros: [Int64]) -> (count: Int, p50: Double, p99: Double, max: Double) {
        let sorted = micros.sorted()
        guard !sorted.isEmpty else { return (0, 0, 0, 0) }
        func at(_ q: Double) -> Double {
            let i = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
            return (Double(sorted[i]) / 10).rounded() / 100
        }
        return (sorted.count, at(0.5), at(0.99), at(1))
    }

    /// The whole file (and its labels) into the log, nothing processed yet.
    func storeFirst(_ store: SQLiteEventLog, format: RecordFormat?, policy: IngestPolicy) throws -> Ingestor.Summary {
        let summary = try Ingestor(store: store, batchSize: ingestBatch).importFile(file, format: format, policy: policy)
        if let labels { try Self.appendLabels(labels, to: store) }
        return summary
    }

    /// Appends label events (JSON Lines) to the labels log, resuming after the last batch a
    /// previous (interrupted) import of the same file committed.
    /// Returns how many the file holds.
    @discardableResult
    static func appendLabels(_ path: String, to store: some PipelineStore) throws -> Int {
        let source = "labels:" + URL(fileURLWithPath: path).standardizedFileURL.path
        let events = try Input.labels(path, command: "import")
        var at = Int(try store.resumePosition(source: source) ?? 0)
        while at < events.count {
            let end = min(events.count, at + 4096)
            try store.ingestLabels(Array(events[at..<end]), source: source, resumeAt: Int64(end))
            at = end
        }
        return events.count
    }
}
