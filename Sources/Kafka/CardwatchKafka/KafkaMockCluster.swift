#if Kafka
    public import CardwatchPipeline
    import CRdKafka
    import CardwatchCore
    import Foundation

    #if canImport(Glibc)
        import Glibc
    #endif

    /// librdkafka's mock cluster: brokers that speak the real protocol on loopback ports, in this
    /// process, for tests and benchmarks (no Apache Kafka broker can be installed here). Other
    /// processes (kcat, confluent-kafka, other Cardwatch instances) reach it by `bootstrapServers`.
    /// It cannot create topics through the admin API, so Cardwatch's are made here.
    /// `@unchecked Sendable`: librdkafka's mock calls are thread-safe (they post to the cluster's thread).
    public final class KafkaMockCluster: @unchecked Sendable {
        private let handle: KafkaHandle
        private let cluster: OpaquePointer
        public let bootstrapServers: String
        public let brokers: Int

        public init(brokers: Int = 3) throws {
            handle = try KafkaHandle(KafkaEndpoint(bootstrapServers: ""), consumer: false, settings: [("log_level", "3")])
            guard let cluster = rd_kafka_mock_cluster_new(handle.rk, Int32(brokers)) else {
                throw KafkaError("the mock cluster could not start")
            }
            self.cluster = cluster
            self.brokers = brokers
            bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
            Self.startNoDelay()
        }

        /// The mock brokers never set TCP_NODELAY on their connections (a real broker does), so
        /// Nagle's algorithm holds a small answer until the client's delayed ACK, ~40 ms: every
        /// latency through the mock would measure that. Every 5 ms, each TCP socket of this
        /// process is set TCP_NODELAY (sockets of other kinds refuse it, harmlessly); started
        /// once per process.
        private static let noDelay = Locked(false)
        private static func startNoDelay() {
            let first = noDelay.withLock { started in
                defer { started = true }
                return !started
            }
            guard first else { return }
            startThread(named: "mock-nodelay") {
                var one: Int32 = 1
                while true {
                    if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
                        for name in fds {
                            guard let fd = Int32(name) else { continue }
                            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                        }
                    }
                    usleep(5_000)
                }
            }
        }

        deinit { rd_kafka_mock_cluster_destroy(cluster) }

        /// The cluster as an endpoint (with `prefix` before the topic names).
        public func endpoint(topicPrefix: String = "") -> KafkaEndpoint {
            KafkaEndpoint(bootstrapServers: bootstrapServers, topicPrefix: topicPrefix)
        }

        /// Creates a topic (`replicationFactor` at most the brokers).
        public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 3) throws {
            try check(
                rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(min(replicationFactor, brokers))),
                "creating topic \(name)")
        }

        /// Creates Cardwatch's topics (the four of the log and `decisions`), each name after
        /// `prefix`: the mock cluster of librdkafka 2.0 does not answer CreateTopics.
        public func createTopics(prefix: String = "", partitions: Int) throws {
            for t in Topic.allCases { try createTopic(prefix + t.rawValue, partitions: partitions) }
            try createTopic(prefix + KafkaLog.decisionsTopic, partitions: partitions)
        }

        /// Takes a broker (1…brokers; nil: all) down: its connections close, new ones are refused.
        public func setDown(_ broker: Int? = nil) throws {
            try check(rd_kafka_mock_broker_set_down(cluster, Int32(broker ?? -1)), "taking broker \(broker ?? -1) down")
        }

        /// Brings a broker (nil: all) up again.
        public func setUp(_ broker: Int? = nil) throws {
            try check(rd_kafka_mock_broker_set_up(cluster, Int32(broker ?? -1)), "bringing broker \(broker ?? -1) up")
        }
    }
#endif
