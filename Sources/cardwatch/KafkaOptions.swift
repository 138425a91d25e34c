import ArgumentParser
import CardwatchPipeline

#if Kafka
    import CardwatchCore
    import CardwatchKafka
#endif

/// The Kafka settings of `run`, `import` and `generate` (used with `--log kafka://…` or `--out kafka://…`).
struct KafkaOptions: ParsableArguments {
    @Option(
        name: .customLong("kafka-option"),
        help: ArgumentHelp(
            "A librdkafka property KEY=VALUE for every Kafka client (repeatable): security (security.protocol, sasl.*, ssl.*) and tuning.",
            valueName: "key=value"))
    var kafkaOptions: [String] = []
    @Option(help: "A prefix of the Kafka topic names (transactions, labels, alerts, transactions.dlq).") var topicPrefix = ""
    @Option(help: "The Kafka consumer group of the instances that share the partitions.")
    var group = KafkaSupport.defaultGroup
    @Option(help: "Replicas of the topics created when missing (with --partitions partitions).") var replicationFactor = 3
    @Option(help: "Seconds without a heartbeat before the group gives an instance's partitions to the others.")
    var sessionTimeout = 6.0
    @Option(
        help: ArgumentHelp(
            "run: the schema registry that Avro transactions' writer schemas are fetched from by id (Confluent wire format; https://USER:PASSWORD@HOST sends basic authentication).",
            valueName: "url"))
    var schemaRegistry: String?
    @Flag(help: "run: also produce every decision to the decisions topic (keyed by transaction id).")
    var decisionsTopic = false

    func validate() throws {
        if !(1...32).contains(replicationFactor) { throw ValidationError("--replication-factor must be within 1…32") }
        if !(sessionTimeout >= 1 && sessionTimeout <= 300) {
            throw ValidationError("--session-timeout must be within 1…300 seconds")
        }
        if group.isEmpty { throw ValidationError("--group must not be empty") }
        for o in kafkaOptions where !o.contains("=") || o.hasPrefix("=") {
            throw ValidationError("--kafka-option \(o): use KEY=VALUE (a librdkafka property)")
        }
    }

    #if Kafka
        /// The writer schemas of Avro records: the registry, when one is given.
        func avroDecoder() throws -> ConfluentAvroDecoder {
            do {
                return ConfluentAvroDecoder(source: try schemaRegistry.map { try SchemaRegistry(url: $0) })
            } catch { throw ValidationError("\(error)") }
        }

        /// The cluster `url` names, with these settings.
        func endpoint(_ url: String) throws -> KafkaEndpoint {
            do {
                var endpoint = try KafkaEndpoint.parse(url)
                endpoint.options = try kafkaOptions.map { try KafkaOption.parse($0) }
                endpoint.topicPrefix = topicPrefix
                return endpoint
            } catch { throw ValidationError("\(error)") }
        }
    #endif
}
