import ArgumentParser
import CardwatchPipeline

/// `cardwatch serve`: the HTTP API and dashboard without a stream processor, so the HTTP tier
/// scales apart from the processors (any number of API nodes behind a load balancer).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTP API and dashboard only (no processor): reads from the warehouse, decides through the log.",
        discussion: """
            An API node of a deployment whose processors are `cardwatch run --log kafka://…
            --warehouse postgres://…` instances: it reads alerts, cards, statistics and models
            from the same PostgreSQL warehouse and registry; POST /v1/transactions produces to
            the log and answers once the owning processor has committed the decision; analysts'
            verdicts go to the labels topic; a promotion made here reaches every processor
            (the registry's notification). POST /predict?mode=online scores from the online
            store's profiles without waiting for the stream (its breaker keeps it answering when
            the store is away). The live feed (/alerts/stream, the dashboard) follows the
            warehouse's new alerts. It retrains nothing and takes no partitions.

            Example:
              cardwatch serve --log kafka://broker:9092 --warehouse postgres://cw@db/cardwatch \\
                --online-store redis://cache:6379 --host 0.0.0.0 --port 8080
            """)

    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup(title: "Kafka (with --log kafka://…)") var kafka: KafkaOptions
    @OptionGroup(title: "HTTP API") var http: HTTPOptions
    @OptionGroup var ingest: LiveIngestOptions
    @OptionGroup(title: "Online feature store") var online: OnlineStoreOptions

    func run() async throws {
        let sources: [Topology.Source] = [.http(host: http.host, port: http.port)]
        if try pipeline.printedTopology(sources: sources, kafkaGroup: kafka.group) { return }
        let configured = try pipeline.topology(sources: sources)
        guard case .kafka(let url) = configured.log else {
            throw ValidationError(
                "serve runs beside processors on a shared log: give --log kafka://HOST:PORT and --warehouse postgres://… (a single process: cardwatch run)"
            )
        }
        #if Kafka
            try await KafkaInstance(serve: self, topology: configured, url: url).start()
        #else
            throw ValidationError("--log \(url): \(KafkaSupport.missing ?? "")")
        #endif
    }
}
