import ArgumentParser
import CardwatchCore
import CardwatchGenerator
import CardwatchPipeline
import CardwatchStorage
import Foundation

/// The HTTP API's synchronous path without HTTP: groups of transactions appended and
/// decided (`EmbeddedRuntime.ingestAndDecide`: an append and a commit of their decisions,
/// what the API's decision queue does for the requests that gathered meanwhile), on one thread.
struct DecisionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decisions",
        abstract: "Measure synchronous decisions: append, then features + scoring + warehouse committed, per group.",
        discussion: """
            Bootstraps a model once (as `cardwatch run` does on an empty data directory), then
            per run starts from an empty log and decides --count generated transactions in
            groups of --group, each group an append and a commit of its decisions, and prints the
            median rate and time per transaction, and the pages a group wrote to the WAL (SQLite's count).
            --group 13 is about what 32 HTTP connections gather.
            """
    )

    @Option(help: "Transactions per run.") var count = 100_000
    @Option(help: "Transactions per group (one store transaction).") var group = 13
    @Option(help: "Cardholders in the synthetic world.") var cards = 5_000
    @Option(help: "Runs; the median is reported.") var runs = 5
    @Option(help: "Random seed.") var seed: UInt64 = 3
    @Option(help: "Log partitions.") var partitions = SQLiteEventLog.defaultPartitions

    func validate() throws {
        if count < 1 || group < 1 || cards < 1 || runs < 1 {
            throw ValidationError("--count, --group, --cards and --runs must be at least 1")
        }
    }

    func run() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cardwatch-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var options = try PipelineOptions.parse(["--data-dir", root + "/seed", "--quiet"])
        options.quiet = true
        let scorer = try options.productionScorer(registry: try ModelRegistry(directory: root + "/seed"))

        var config = GeneratorConfig()
        config.seed = seed
        config.cards = cards
        let start = Timestamp(rfc3339: "2026-11-25T00:00:00Z")!
        var generator = try TransactionGenerator(config: config, mode: .backfill(start: start, end: nil))
        var records: [IngestRecord] = []
        records.reserveCapacity(count)
        while records.count < count, let t = generator.next() { records.append(IngestRecord(transaction: t)) }
        print("transactions=\(grouped(records.count)) group=\(group) cards=\(cards) runs=\(runs)")

        var seconds: [Double] = []
        var pages: [Double] = []
        for run in 0..<runs {
            let dir = root + "/run\(run)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: root + "/seed/registry.sqlite", toPath: dir + "/registry.sqlite")
            let store = try SQLiteEventLog(directory: dir, partitions: partitions)
            var runtimeOptions = PartitionRuntime.Options()
            runtimeOptions.checkpointEvery = options.checkpointEvery
            let runtime = try EmbeddedRuntime(store: store, scorer: scorer, options: runtimeOptions)
            try runtime.start()
            let pages0 = try store.pagesWritten()
            let t0 = monotonicSeconds()
            var at = 0
            while at < records.count {
                var batch = IngestBatch(source: "http")
                batch.records = Array(records[at..<min(records.count, at + group)])
                _ = try runtime.ingestAndDecide(batch)
                at += group
            }
            seconds.append(monotonicSeconds() - t0)
            let groups = (records.count + group - 1) / group
            pages.append(Double(try store.pagesWritten() - pages0) / Double(groups))
            try runtime.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        seconds.sort()
        let median = seconds[seconds.count / 2]
        print(
            "decisions: \(grouped(Int(Double(records.count) / median))) transactions/s median, "
                + String(
                    format: "%.1f µs each (%.1f … %.1f)", median / Double(records.count) * 1e6,
                    seconds[0] / Double(records.count) * 1e6, seconds[seconds.count - 1] / Double(records.count) * 1e6))
        pages.sort()
        print(String(format: "pages written a group (WAL frames): %.1f median", pages[pages.count / 2]))
    }
}
