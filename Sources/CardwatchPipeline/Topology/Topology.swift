import Foundation

/// The shape of a running pipeline, from configuration: which backend holds each stage's
/// data, how the log is partitioned, and which stages feed which. Built in one place
/// (`cardwatch`'s `PipelineOptions.topology`), printed by `cardwatch run --print-topology`
/// and `cardwatch import --print-topology`, reported under `topology` in `/pipeline/health`,
/// and what `run`, `import` and the API open their stores from.
///
/// The embedded mode is one topology among several: a SQLite log whose file also holds
/// the warehouse (so a batch's outputs and offsets commit in one transaction), serving
/// reads from the same file, the registry and checkpoints beside it. The log may be a Kafka
/// cluster (with the `Kafka` trait) and the warehouse PostgreSQL; Redis is refused until its backend exists.
public struct Topology: Sendable, Equatable {
    /// Where a stage's data lives.
    public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
        /// A SQLite file (or a directory of files, for checkpoints).
        case sqlite(path: String)
        /// Files in a directory.
        case files(directory: String)
        /// A PostgreSQL database (its URL, which holds no password).
        case postgres(url: String)
        /// A Kafka cluster (`kafka://HOST:PORT[,HOST:PORT…]`).
        case kafka(url: String)

        public var description: String {
            switch self {
            case .sqlite(let path): "sqlite:\(path)"
            case .files(let directory): "files:\(directory)"
            case .postgres(let url), .kafka(let url): url
            }
        }
    }

    /// A producer of records into the log.
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case generator(transactionsPerSecond: Double)
        case http(host: String, port: Int)
        case file(path: String)

        public var description: String {
            switch self {
            case .generator(let tps): "generator (\(tps) tx/s) → transactions, labels"
            case .http(let host, let port): "http \(host):\(port) → transactions, labels (feedback)"
            case .file(let path): "file \(path) → transactions (and labels)"
            }
        }
    }

    public var dataDirectory: String
    /// The log of topics (transactions, labels, transactions.dlq, alerts).
    public var log: Endpoint
    /// Partitions of a new log (an existing log keeps its own); nil: 1.
    public var partitions: Int?
    /// The consumer group whose offsets commit with the decisions.
    public var consumerGroup: String
    /// Decisions, alerts, aggregates, labels, dead letters: where the decision sink commits.
    public var warehouse: Endpoint
    /// What the API reads card profiles, alerts and statistics from.
    public var serving: Endpoint
    public var registry: Endpoint
    public var checkpoints: Endpoint
    public var sources: [Source]
    /// What an existing log says of itself (it keeps the partitioning it was created with).
    public struct OpenedLog: Sendable, Equatable {
        public var partitions: Int
        public var partitioner: String
        public init(partitions: Int, partitioner: String) {
            self.partitions = partitions
            self.partitioner = partitioner
        }
    }
    public var opened: OpenedLog?

    /// The embedded topology of a data directory: everything in SQLite files inside it.
    public static func embedded(dataDirectory: String, partitions: Int? = nil, sources: [Source] = []) -> Topology {
        let log = URL(fileURLWithPath: dataDirectory).appendingPathComponent("log.sqlite").path
        return Topology(
            dataDirectory: dataDirectory, log: .sqlite(path: log), partitions: partitions, consumerGroup: "processor",
            warehouse: .sqlite(path: log), serving: .sqlite(path: log),
            registry: .sqlite(path: URL(fileURLWithPath: dataDirectory).appendingPathComponent("registry.sqlite").path),
            checkpoints: .files(directory: URL(fileURLWithPath: dataDirectory).appendingPathComponent("checkpoints").path),
            sources: sources)
    }

    /// The topology `--log`, `--warehouse` and `--registry` values ask for: the log `sqlite` (the data
    /// directory's; the default) or a Kafka cluster (builds with the `Kafka` trait), the warehouse that
    /// log's file (the default) or a PostgreSQL database (`postgres://USER@HOST:PORT/DB`,
    /// which then holds the checkpoints too, and the registry unless `registry` says otherwise).
    /// The URLs must hold no password.
    public static func parse(
        log: String?, warehouse: String? = nil, registry: String? = nil, dataDirectory: String, partitions: Int?,
        sources: [Source]
    ) throws(TopologyError) -> Topology {
        var topology = embedded(dataDirectory: dataDirectory, partitions: partitions, sources: sources)
        if let warehouse, warehouse.lowercased() != "sqlite" {
            let lower = warehouse.lowercased()
            guard lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://") else {
                throw TopologyError(
                    "--warehouse \(warehouse): unknown backend; use sqlite (the log's file, the default) or "
                        + "postgres://USER@HOST:PORT/DATABASE")
            }
            topology.warehouse = .postgres(url: warehouse)
            topology.serving = .postgres(url: warehouse)
            topology.checkpoints = .postgres(url: warehouse)
            topology.registry = .postgres(url: warehouse)
        }
        if let registry {
            let lower = registry.lowercased()
            if lower == "sqlite" {
                topology.registry = embedded(dataDirectory: dataDirectory).registry
            } else if lower.hasPrefix("postgres://") || lower.hasPrefix("postgresql://") {
                topology.registry = .postgres(url: registry)
            } else {
                throw TopologyError(
                    "--registry \(registry): unknown backend; use sqlite (the data directory's file) or "
                        + "postgres://USER@HOST:PORT/DATABASE")
            }
        }
        guard let log, log.lowercased() != "sqlite" else { return topology }
        let scheme = log.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? log
        switch scheme {
        case "kafka":
            guard let missing = KafkaSupport.missing else {
                topology.log = .kafka(url: log)
                topology.consumerGroup = KafkaSupport.defaultGroup
                if case .sqlite = topology.warehouse {
                    // One instance alone: its warehouse a file of its own (never an embedded log's).
                    let file = kafkaWarehouse(dataDirectory: dataDirectory)
                    topology.warehouse = .sqlite(path: file)
                    topology.serving = .sqlite(path: file)
                }
                return topology
            }
            throw TopologyError("--log \(log): \(missing)")
        case "sqlite":
            throw TopologyError(
                "--log \(log): the SQLite log lives in the data directory; choose it with --data-dir and say --log sqlite")
        default:
            throw TopologyError(
                "--log \(log): unknown backend '\(scheme)'; use sqlite (the default) or kafka://HOST:PORT[,HOST:PORT…]")
        }
    }

    /// The SQLite warehouse of a single instance on Kafka: `kafka/log.sqlite` in the data
    /// directory (the layout of an embedded data directory, whose log tables stay empty).
    public static func kafkaWarehouse(dataDirectory: String) -> String {
        URL(fileURLWithPath: dataDirectory).appendingPathComponent("kafka").appendingPathComponent("log.sqlite").path
    }

    /// The directory the SQLite log lives in.
    public var logDirectory: String {
        switch log {
        case .sqlite(let path): URL(fileURLWithPath: path).deletingLastPathComponent().path
        case .files(let directory): directory
        case .postgres, .kafka: dataDirectory
        }
    }

    /// The topology as lines of text: the sources, the log, the processor, the sinks, the reads.
    public var text: String {
        let p = opened?.partitions ?? partitions ?? 1
        let partitioner = opened?.partitioner
        var lines: [String] = []
        lines.append("sources:")
        if sources.isEmpty { lines.append("  (none)") }
        for s in sources { lines.append("  \(s)") }
        let count: String
        if case .kafka = log, opened == nil, partitions == nil {
            count = "as many partitions as its topics have (1 when it creates them)"
        } else {
            count = "\(p) partition\(p == 1 ? "" : "s")"
        }
        lines.append(
            "log: \(log), \(count)\(partitioner.map { ", keys by \($0)" } ?? "")"
                + "; topics transactions (keyed by card), labels, transactions.dlq, alerts")
        if case .kafka = log {
            lines.append(
                "processor: consumer group \(consumerGroup) on the Kafka cluster; each instance runs an operator per "
                    + "partition assigned to it; decisions commit with their input offsets in the warehouse")
        } else {
            lines.append(
                "processor: consumer group \(consumerGroup); the embedded runtime reads the partitions in their arrival "
                    + "order through one operator; decisions commit with their input offsets")
        }
        lines.append(
            "decision sink (warehouse): \(warehouse)\(warehouse == log ? " (the log's file: one transaction per batch)" : "")")
        if case .kafka = log {
            lines.append("alerts: the alerts topic (keyed by transaction id, at least once) and the warehouse")
        } else {
            lines.append("alerts: the alerts topic and the warehouse")
        }
        lines.append("dead letters: transactions.dlq and the warehouse")
        lines.append("serving reads: \(serving)")
        lines.append("model registry: \(registry)")
        lines.append("feature checkpoints: \(checkpoints)")
        return lines.joined(separator: "\n")
    }

    /// The topology for `/pipeline/health`.
    public var json: [String: Any] {
        var o: [String: Any] = [
            "log": log.description, "partitions": opened?.partitions ?? partitions ?? 1, "consumer_group": consumerGroup,
            "warehouse": warehouse.description, "serving": serving.description, "registry": registry.description,
            "checkpoints": checkpoints.description, "sources": sources.map(\.description),
        ]
        if let partitioner = opened?.partitioner { o["partitioner"] = partitioner }
        return o
    }
}

public struct TopologyError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
