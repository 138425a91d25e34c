#if Kafka
    public import CardwatchPipeline
    import CRdKafka
    import Foundation

    /// A Kafka cluster as `--log kafka://HOST:PORT[,HOST:PORT…]` names it, with the librdkafka
    /// settings of `--kafka-option KEY=VALUE` (security, tuning: passed through unchanged, so
    /// SASL and TLS need no code) and the prefix of the topic names.
    public struct KafkaEndpoint: Sendable, Equatable, CustomStringConvertible {
        public var bootstrapServers: String
        /// librdkafka configuration properties, in the order given (a later one wins).
        public var options: [KafkaOption] = []
        public var topicPrefix = ""

        public init(bootstrapServers: String, options: [KafkaOption] = [], topicPrefix: String = "") {
            self.bootstrapServers = bootstrapServers
            self.options = options
            self.topicPrefix = topicPrefix
        }

        /// `kafka://HOST:PORT[,HOST:PORT…]` (no path, no credentials: those go in `--kafka-option`).
        public static func parse(_ url: String) throws(KafkaError) -> KafkaEndpoint {
            guard url.lowercased().hasPrefix("kafka://") else {
                throw KafkaError("\(url): not a Kafka URL; use kafka://HOST:PORT[,HOST:PORT…]")
            }
            var rest = String(url.dropFirst("kafka://".count))
            if rest.hasSuffix("/") { rest.removeLast() }
            let servers = rest.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard !servers.isEmpty else { throw KafkaError("\(url): no broker; use kafka://HOST:PORT[,HOST:PORT…]") }
            for s in servers {
                guard !s.contains("@") else {
                    throw KafkaError(
                        "\(url): credentials do not go in the URL; use --kafka-option sasl.username=… (and the password likewise)"
                    )
                }
                guard !s.contains("/"), let colon = s.lastIndex(of: ":"), colon != s.startIndex,
                    let port = Int(s[s.index(after: colon)...]), (1...65_535).contains(port)
                else {
                    throw KafkaError("\(url): '\(s)' is not HOST:PORT (a port within 1…65535)")
                }
            }
            return KafkaEndpoint(bootstrapServers: servers.joined(separator: ","))
        }

        /// The Kafka name of a topic.
        public func name(_ topic: Topic) -> String { topicPrefix + topic.rawValue }

        /// The topic of a Kafka name (nil: not one of Cardwatch's).
        public func topic(named name: String) -> Topic? {
            guard name.hasPrefix(topicPrefix) else { return nil }
            return Topic(rawValue: String(name.dropFirst(topicPrefix.count)))
        }

        public var description: String { "kafka://\(bootstrapServers)" }
    }

    /// One `--kafka-option KEY=VALUE`.
    public struct KafkaOption: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
        /// `KEY=VALUE`.
        public static func parse(_ text: String) throws(KafkaError) -> KafkaOption {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw KafkaError("--kafka-option \(text): use KEY=VALUE (a librdkafka property, e.g. security.protocol=SASL_SSL)")
            }
            return KafkaOption(key: String(text[..<eq]), value: String(text[text.index(after: eq)...]))
        }
    }

    /// A failure of the cluster or of the client, with what was asked; transient when the same
    /// call may succeed later (a broker down, a timeout), so that the supervisors retry.
    public struct KafkaError: Error, CustomStringConvertible, Equatable, TransientFailure {
        public var message: String
        public var isTransient: Bool
        public init(_ message: String, transient: Bool = false) {
            self.message = message
            self.isTransient = transient
        }
        public var description: String { "kafka: \(message)" }

        /// librdkafka's error code as a failure of `what`.
        init(_ what: String, _ code: rd_kafka_resp_err_t) {
            let transient: Bool
            switch code {
            case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
                RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
                RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR__WAIT_COORD,
                RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR__RESOLVE:
                transient = true
            default: transient = false
            }
            self.init("\(what): \(String(cString: rd_kafka_err2str(code)))", transient: transient)
        }
    }

    /// A librdkafka client (`rd_kafka_t`): made from an endpoint's settings plus the role's own,
    /// destroyed with the object. Callbacks never hold it: whoever owns a `KafkaHandle` outlives
    /// every call into it.
    final class KafkaHandle {
        let rk: OpaquePointer
        let endpoint: KafkaEndpoint
        /// What the client's callbacks reach through its opaque pointer: released after the client is destroyed.
        var keepAlive: AnyObject?

        /// `settings` go first, the user's `--kafka-option`s after them (so they can override
        /// any); `configure` installs callbacks on the configuration before the client is made.
        init(
            _ endpoint: KafkaEndpoint, consumer: Bool, settings: [(String, String)],
            configure: (OpaquePointer) -> Void = { _ in }
        ) throws(KafkaError) {
            self.endpoint = endpoint
            let conf = rd_kafka_conf_new()!
            // Small requests go out at once (a decision waits on each round trip); a broker that
            // comes back is reconnected to within a second (librdkafka's default backs off to 10 s).
            var all = [
                ("bootstrap.servers", endpoint.bootstrapServers), ("client.id", "cardwatch"),
                ("socket.nagle.disable", "true"), ("reconnect.backoff.max.ms", "1000"),
            ]
            all += settings
            all += endpoint.options.map { ($0.key, $0.value) }
            var err = [CChar](repeating: 0, count: 512)
            for (key, value) in all where rd_kafka_conf_set(conf, key, value, &err, err.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError("--kafka-option \(key)=\(value): \(text(err))")
            }
            configure(conf)
            guard let rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, &err, err.count) else {
                rd_kafka_conf_destroy(conf)
                throw KafkaError("cannot make a client for \(endpoint): \(text(err))")
            }
            self.rk = rk
        }

        deinit { rd_kafka_destroy(rk) }

        /// The partition count of each of `names` that exists (by a metadata request for all
        /// topics: naming one would make a broker that auto-creates topics create it).
        func partitionCounts(timeout: Int32 = 10_000) throws(KafkaError) -> [String: Int] {
            var md: UnsafePointer<rd_kafka_metadata>?
            let code = rd_kafka_metadata(rk, 1, nil, &md, timeout)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let md else {
                throw KafkaError("cannot reach the cluster at \(endpoint.bootstrapServers) (metadata)", code)
            }
            defer { rd_kafka_metadata_destroy(md) }
            var counts: [String: Int] = [:]
            for i in 0..<Int(md.pointee.topic_cnt) {
                let t = md.pointee.topics[i]
                guard t.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                counts[String(cString: t.topic)] = Int(t.partition_cnt)
            }
            return counts
        }

        /// Creates the topics that are missing with `partitions` partitions (admin API).
        func createTopics(_ names: [String], partitions: Int, replicationFactor: Int) throws(KafkaError) {
            guard !names.isEmpty else { return }
            var err = [CChar](repeating: 0, count: 512)
            var newTopics: [OpaquePointer?] = []
            defer { for t in newTopics { rd_kafka_NewTopic_destroy(t) } }
            for name in names {
                guard let t = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replicationFactor), &err, err.count) else {
                    throw KafkaError("topic \(name): \(text(err))")
                }
                newTopics.append(t)
            }
            let queue = rd_kafka_queue_new(rk)
            defer { rd_kafka_queue_destroy(queue) }
            rd_kafka_CreateTopics(rk, &newTopics, newTopics.count, nil, queue)
            guard let event = rd_kafka_queue_poll(queue, 30_000) else {
                throw KafkaError("creating topics \(names): no answer within 30 s", transient: true)
            }
            defer { rd_kafka_event_destroy(event) }
            let code = rd_kafka_event_error(event)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("creating topics \(names)", code) }
            var count = 0
            let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
            for i in 0..<count {
                let r = results![i]
                let code = rd_kafka_topic_result_error(r)
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else {
                    let name = String(cString: rd_kafka_topic_result_name(r))
                    throw KafkaError("creating topic \(name)", code)
                }
            }
        }

        /// The low and high watermarks of a topic-partition (the high one: the next offset to be written).
        func watermarks(_ name: String, partition: Int, timeout: Int32 = 10_000) throws(KafkaError) -> (Int64, Int64) {
            var low: Int64 = 0
            var high: Int64 = 0
            let code = rd_kafka_query_watermark_offsets(rk, name, Int32(partition), &low, &high, timeout)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError("offsets of \(name)[\(partition)]", code) }
            return (low, high)
        }
    }

    /// A `rd_kafka_topic_partition_list_t`, destroyed with the object.
    final class PartitionList {
        let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
        init(capacity: Int = 8) { list = rd_kafka_topic_partition_list_new(Int32(max(1, capacity))) }
        deinit { rd_kafka_topic_partition_list_destroy(list) }

        func add(_ name: String, _ partition: Int, offset: Int64 = RD_KAFKA_OFFSET_INVALID_VALUE) {
            rd_kafka_topic_partition_list_add(list, name, Int32(partition)).pointee.offset = offset
        }

        /// The entries of a list librdkafka owns: (topic, partition, offset, error).
        static func entries(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [(
            name: String, partition: Int, offset: Int64, error: rd_kafka_resp_err_t
        )] {
            guard let list else { return [] }
            return (0..<Int(list.pointee.cnt)).map {
                let e = list.pointee.elems[$0]
                return (String(cString: e.topic), Int(e.partition), e.offset, e.err)
            }
        }
    }

    /// `RD_KAFKA_OFFSET_INVALID`: no offset (a macro Swift does not import).
    let RD_KAFKA_OFFSET_INVALID_VALUE: Int64 = -1001

    /// Fails with the code unless it is `NO_ERROR`.
    func check(_ code: rd_kafka_resp_err_t, _ what: @autoclosure () -> String) throws(KafkaError) {
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(what(), code) }
    }

    /// Fails with an `rd_kafka_error_t` (destroyed here) unless it is nil.
    func check(_ error: OpaquePointer?, _ what: @autoclosure () -> String) throws(KafkaError) {
        guard let error else { return }
        defer { rd_kafka_error_destroy(error) }
        throw KafkaError(what(), rd_kafka_error_code(error))
    }
#endif

#if Kafka
    /// A NUL-terminated C string in a buffer (librdkafka's error text) as a String.
    func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
#endif
