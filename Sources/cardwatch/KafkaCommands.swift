#if Kafka
    import ArgumentParser
    import CardwatchCore
    import CardwatchKafka
    import CardwatchPipeline
    import Foundation

    /// `generate --out kafka://…`: the transactions produced to the `transactions` topic, keyed by
    /// card id, in batches (a live stream's as soon as each is due).
    struct KafkaTransactionOutlet: TransactionOutlet {
        let store: KafkaIngestStore
        var batch = IngestBatch(source: "generator")

        init(url: String, options: KafkaOptions, partitions: Int?) throws {
            let endpoint = try options.endpoint(url)
            do {
                store = KafkaIngestStore(
                    log: try KafkaLog(endpoint, partitions: partitions, replicationFactor: options.replicationFactor))
            } catch { throw CLIError("the log at \(endpoint) cannot be used: \(error)") }
        }

        mutating func add(_ transaction: Transaction) throws {
            batch.records.append(IngestRecord(transaction: transaction))
            if batch.records.count >= 4_096 { try flush() }
        }

        mutating func flush() throws {
            guard !batch.records.isEmpty else { return }
            _ = try store.ingest(batch)
            batch.records.removeAll(keepingCapacity: true)
        }
    }

    /// `cardwatch kafka`: tools for Kafka deployments and their tests.
    struct KafkaTools: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kafka", abstract: "Kafka tools (tests and benchmarks).", shouldDisplay: false,
            subcommands: [MockCluster.self])
    }

    /// `cardwatch kafka mock-cluster`: librdkafka's mock cluster for other processes (no Apache
    /// Kafka broker can be installed here). Prints its bootstrap servers on the first line of
    /// standard output, then takes commands on standard input, a line each, answered `ok` or
    /// `error: …`: `down N|all` (a broker, or every one, refuses connections), `up N|all`.
    /// Runs until killed (SIGTERM).
    struct MockCluster: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mock-cluster", abstract: "Serve librdkafka's mock cluster with Cardwatch's topics until killed.")
        @Option(help: "Brokers.") var brokers = 3
        @Option(help: "Partitions of each of Cardwatch's topics.") var partitions = 6
        @Option(help: "A prefix of the topic names.") var topicPrefix = ""

        func validate() throws {
            if !(1...16).contains(brokers) { throw ValidationError("--brokers must be within 1…16") }
            if !(1...256).contains(partitions) { throw ValidationError("--partitions must be within 1…256") }
        }

        func run() throws {
            let cluster = try KafkaMockCluster(brokers: brokers)
            try cluster.createTopics(prefix: topicPrefix, partitions: partitions)
            print(cluster.bootstrapServers)
            fflush(nil)
            while let line = readLine() {
                let words = line.split(separator: " ").map(String.init)
                do {
                    guard words.count == 2, ["down", "up"].contains(words[0]),
                        words[1] == "all" || Int(words[1]) != nil
                    else { throw ValidationError("expected 'down N|all' or 'up N|all', got '\(line)'") }
                    let broker = words[1] == "all" ? nil : Int(words[1])
                    if words[0] == "down" { try cluster.setDown(broker) } else { try cluster.setUp(broker) }
                    print("ok")
                } catch {
                    print("error: \(error)")
                }
                fflush(nil)
            }
            while true { sleep(3_600) }  // stdin closed: serve until killed
        }
    }
#endif
