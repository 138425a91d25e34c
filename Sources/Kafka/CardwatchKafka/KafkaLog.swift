#if Kafka
    public import CardwatchPipeline
    import CRdKafka
    public import Foundation

    /// The log on a Kafka cluster: Cardwatch's four topics (`--topic-prefix` before each name),
    /// co-partitioned, keys placed by Kafka's murmur2 (so a record an external producer keys by
    /// `card_id` lands where Cardwatch's own does).
    ///
    /// Appends go through an idempotent producer with `acks=all` and wait for every record's
    /// delivery report: the positions returned are the broker's. An append is not atomic across
    /// records (Kafka's producer is not, without transactions, which the mock cluster cannot
    /// serve): a failed one may have written some records; the caller's retry writes them again,
    /// and the runtime answers a repeated transaction id with its first decision.
    ///
    /// Reads by position (replays, tests) go through a consumer of their own that assigns the
    /// topic-partition it reads (no group membership); group offsets through a consumer per
    /// group that never joins (Kafka's "simple" commits). The group members of the pipeline are
    /// `KafkaConsumer`s.
    ///
    /// `@unchecked Sendable`: librdkafka's clients are thread-safe; the reader, whose
    /// assignment is state, and the table of group clients are used under `lock` only.
    public final class KafkaLog: EventLog, @unchecked Sendable {
        public let endpoint: KafkaEndpoint
        public let partitions: Int
        public let partitioner = KeyPartitioner.murmur2
        let producer: KafkaHandle
        private let topics: [Topic: OpaquePointer]
        private let lock = NSLock()
        private var reader: KafkaHandle?
        /// Where the reader's assignment stands: the next offset it delivers.
        private var readerAt: (topic: Topic, partition: Int, offset: Int64)?
        private var groupClients: [String: KafkaHandle] = [:]

        /// Opens the log, creating its topics when missing: with `partitions` partitions (or as
        /// many as the existing topics have; 1 for a new cluster) and `replicationFactor` replicas.
        /// Existing topics with another count than `partitions` are refused.
        ///
        /// With `decisions`, the `decisions` topic too (`produceDecisions`), co-partitioned like the others.
        public init(
            _ endpoint: KafkaEndpoint, partitions requested: Int? = nil, replicationFactor: Int = 3, decisions: Bool = false
        ) throws {
            self.endpoint = endpoint
            producer = try KafkaHandle(
                endpoint, consumer: false,
                settings: [
                    ("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "0"),
                    ("queue.buffering.max.messages", "1000000"), ("partitioner", "murmur2_random"),
                ]
            ) { rd_kafka_conf_set_dr_msg_cb($0, deliveryReport) }
            let decisionsName = endpoint.topicPrefix + Self.decisionsTopic
            let names = Topic.allCases.map(endpoint.name) + (decisions ? [decisionsName] : [])
            let existing = try producer.partitionCounts().filter { names.contains($0.key) }
            let counts = Set(existing.values)
            guard counts.count <= 1 else {
                throw EventLogError(
                    .partitionCountMismatch,
                    "the topics \(existing.keys.sorted()) have different partition counts (\(existing)); "
                        + "Cardwatch's topics must be co-partitioned")
            }
            if let have = counts.first, let requested, requested != have {
                throw EventLogError(
                    .partitionCountMismatch,
                    "the topics at \(endpoint) have \(have) partitions, --partitions asked for \(requested)")
            }
            let count = counts.first ?? requested ?? 1
            let missing = names.filter { existing[$0] == nil }
            if !missing.isEmpty {
                try producer.createTopics(missing, partitions: count, replicationFactor: replicationFactor)
            }
            partitions = count
            var topics: [Topic: OpaquePointer] = [:]
            for t in Topic.allCases { topics[t] = rd_kafka_topic_new(producer.rk, endpoint.name(t), nil) }
            self.topics = topics
            decisionsHandle = decisions ? rd_kafka_topic_new(producer.rk, decisionsName, nil) : nil
        }

        /// The topic every decision goes to when asked for (not one of the log's `Topic`s: nothing reads it back).
        public static let decisionsTopic = "decisions"
        private let decisionsHandle: OpaquePointer?
        public var producesDecisions: Bool { decisionsHandle != nil }

        /// Produces to the `decisions` topic (opened with `decisions: true`), as `produce` does.
        public func produceDecisions(_ records: [OutgoingRecord]) throws {
            guard let decisionsHandle else { throw KafkaError("this log was opened without the decisions topic") }
            _ = try produce(decisionsHandle, name: endpoint.topicPrefix + Self.decisionsTopic, records, deadline: nil)
        }

        deinit {
            _ = rd_kafka_flush(producer.rk, 10_000)
            for t in topics.values { rd_kafka_topic_destroy(t) }
            if let decisionsHandle { rd_kafka_topic_destroy(decisionsHandle) }
        }

        // MARK: Producing

        public func append(_ topic: Topic, _ records: [(key: String, payload: [UInt8])]) throws -> [LogPosition] {
            try produce(topic, records.map { OutgoingRecord(key: $0.key, payload: $0.payload) })
        }

        /// Produces `records` to `topic`, each to its key's partition, and waits for every
        /// delivery report; their positions, in order. With a `deadline`, records not delivered
        /// by then fail the call (transient; librdkafka may still deliver them later).
        public func produce(_ topic: Topic, _ records: [OutgoingRecord], deadline: Date? = nil) throws -> [LogPosition] {
            try produce(topics[topic]!, name: endpoint.name(topic), records, deadline: deadline)
        }

        private func produce(
            _ rkt: OpaquePointer, name: String, _ records: [OutgoingRecord], deadline: Date?
        ) throws -> [LogPosition] {
            guard !records.isEmpty else { return [] }
            let batch = DeliveryBatch(count: records.count)
            for (i, r) in records.enumerated() {
                let p = partitioner.partition(forKey: r.key, partitions: partitions)
                batch.expect(i, partition: p)
                let opaque = Unmanaged.passRetained(batch).toOpaque()
                while true {
                    let error = Self.produceOne(producer.rk, rkt, partition: p, r, opaque: opaque)
                    guard let error else { break }
                    let code = rd_kafka_error_code(error)
                    rd_kafka_error_destroy(error)
                    if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                        rd_kafka_poll(producer.rk, 10)
                        continue
                    }
                    Unmanaged<DeliveryBatch>.fromOpaque(opaque).release()
                    batch.failed(i, code)
                    break
                }
            }
            while !batch.isComplete {
                rd_kafka_poll(producer.rk, 5)
                if let deadline, Date() > deadline, !batch.isComplete {
                    throw KafkaError(
                        "producing to \(name): not delivered in time (the cluster is away or slow)",
                        transient: true)
                }
            }
            return try batch.positions(topic: name)
        }

        private static func produceOne(
            _ rk: OpaquePointer, _ rkt: OpaquePointer, partition: Int, _ r: OutgoingRecord, opaque: UnsafeMutableRawPointer
        ) -> OpaquePointer? {
            // Header names and values copied into C strings for the call (librdkafka copies them).
            let headers = r.headers.map { (strdup($0.name)!, Array($0.value.utf8)) }
            defer { for h in headers { free(h.0) } }
            var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5 + headers.count)
            vus[0].vtype = RD_KAFKA_VTYPE_RKT
            vus[0].u.rkt = rkt
            vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
            vus[1].u.i32 = Int32(partition)
            vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
            vus[2].u.i = RD_KAFKA_MSG_F_COPY
            vus[3].vtype = RD_KAFKA_VTYPE_OPAQUE
            vus[3].u.ptr = opaque
            return r.payload.withUnsafeBytes { value in
                var key = Array(r.key.utf8)
                return key.withUnsafeMutableBytes { keyBytes in
                    vus[4].vtype = RD_KAFKA_VTYPE_KEY
                    vus[4].u.mem.ptr = keyBytes.baseAddress
                    vus[4].u.mem.size = keyBytes.count
                    var valueVU = rd_kafka_vu_t()
                    valueVU.vtype = RD_KAFKA_VTYPE_VALUE
                    valueVU.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                    valueVU.u.mem.size = value.count
                    return withHeaderValues(headers.map(\.1)) { values in
                        for (i, h) in headers.enumerated() {
                            vus[5 + i].vtype = RD_KAFKA_VTYPE_HEADER
                            vus[5 + i].u.header.name = UnsafePointer(h.0)
                            vus[5 + i].u.header.val = values[i]
                            vus[5 + i].u.header.size = headers[i].1.count
                        }
                        vus.append(valueVU)
                        return rd_kafka_produceva(rk, vus, vus.count)
                    }
                }
            }
        }

        // MARK: Reading

        public func read(_ topic: Topic, partition: Int, from offset: Int64, limit: Int) throws -> [LogRecord] {
            try checkPartition(partition)
            guard offset >= 0, limit >= 0 else {
                throw EventLogError(.invalidArgument, "read from offset \(offset), limit \(limit)")
            }
            lock.lock()
            defer { lock.unlock() }
            let name = endpoint.name(topic)
            let end = try producer.watermarks(name, partition: partition).1
            guard offset < end, limit > 0 else { return [] }
            let reader = try readerClient()
            if readerAt.map({ $0.topic != topic || $0.partition != partition || $0.offset != offset }) ?? true {
                let list = PartitionList(capacity: 1)
                list.add(name, partition, offset: offset)
                try check(rd_kafka_assign(reader.rk, list.list), "reading \(name)[\(partition)] from \(offset)")
                readerAt = nil
            }
            let want = Int(min(Int64(limit), end - offset))
            var out: [LogRecord] = []
            out.reserveCapacity(want)
            var next = offset
            let deadline = Date().addingTimeInterval(30)
            while out.count < want {
                guard let msg = rd_kafka_consumer_poll(reader.rk, 100) else {
                    if Date() > deadline {
                        throw KafkaError(
                            "reading \(name)[\(partition)]: offset \(next) did not arrive within 30 s (its end is \(end))",
                            transient: true)
                    }
                    continue
                }
                defer { rd_kafka_message_destroy(msg) }
                let m = msg.pointee
                guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }  // end of partition, a broker away: retried
                guard m.partition == Int32(partition), m.offset == next else { continue }  // before the assignment
                out.append(Self.record(msg, topic: topic))
                next += 1
            }
            readerAt = (topic, partition, next)
            return out
        }

        public func endOffset(_ topic: Topic, partition: Int) throws -> Int64 {
            try endOffset(topic, partition: partition, timeout: 10)
        }

        /// The end offset, or a transient failure after `timeout` seconds.
        public func endOffset(_ topic: Topic, partition: Int, timeout: Double) throws -> Int64 {
            try checkPartition(partition)
            return try producer.watermarks(endpoint.name(topic), partition: partition, timeout: Int32(timeout * 1000)).1
        }

        /// A consumed message as a log record (its payload and key copied).
        static func record(_ msg: UnsafeMutablePointer<rd_kafka_message_t>, topic: Topic) -> LogRecord {
            let m = msg.pointee
            let payload = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
            let key =
                m.key.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: m.key_len), as: UTF8.self) } ?? ""
            var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let ms = rd_kafka_message_timestamp(msg, &type)
            return LogRecord(
                topic: topic, partition: Int(m.partition), offset: m.offset, key: key, payload: payload,
                appendedAt: ms >= 0 ? ms * 1_000 : 0)
        }

        private func readerClient() throws -> KafkaHandle {
            if let reader { return reader }
            let made = try KafkaHandle(
                endpoint, consumer: true,
                settings: [
                    ("group.id", "cardwatch-reader"), ("enable.auto.commit", "false"), ("auto.offset.reset", "earliest"),
                    ("enable.partition.eof", "false"), ("fetch.wait.max.ms", "5"),
                ])
            reader = made
            return made
        }

        private func checkPartition(_ p: Int) throws {
            guard (0..<partitions).contains(p) else {
                throw EventLogError(.invalidArgument, "partition \(p) of a log of \(partitions)")
            }
        }

        // MARK: Group offsets

        public func committedOffset(group: String, topic: Topic, partition: Int) throws -> Int64? {
            try checkPartition(partition)
            lock.lock()
            defer { lock.unlock() }
            return try committed(try groupClient(group), topic, partition)
        }

        public func commit(group: String, topic: Topic, partition: Int, offset: Int64, allowBackwards: Bool) throws {
            try checkPartition(partition)
            let end = try endOffset(topic, partition: partition)
            guard (0...end).contains(offset) else {
                throw EventLogError(
                    .invalidArgument, "commit of offset \(offset) in \(topic.rawValue)[\(partition)], whose end is \(end)")
            }
            lock.lock()
            defer { lock.unlock() }
            let client = try groupClient(group)
            if !allowBackwards, let current = try committed(client, topic, partition), offset < current {
                throw EventLogError(
                    .offsetBackwards,
                    "group \(group) is at \(current) in \(topic.rawValue)[\(partition)]; \(offset) would move it back")
            }
            let list = PartitionList(capacity: 1)
            list.add(endpoint.name(topic), partition, offset: offset)
            try check(rd_kafka_commit(client.rk, list.list, 0), "committing \(group)'s offset in \(topic.rawValue)")
        }

        private func committed(_ client: KafkaHandle, _ topic: Topic, _ partition: Int) throws -> Int64? {
            let list = PartitionList(capacity: 1)
            list.add(endpoint.name(topic), partition)
            try check(rd_kafka_committed(client.rk, list.list, 10_000), "the committed offset of \(topic.rawValue)")
            let entry = PartitionList.entries(list.list)[0]
            try check(entry.error, "the committed offset of \(topic.rawValue)[\(partition)]")
            return entry.offset >= 0 ? entry.offset : nil
        }

        private func groupClient(_ group: String) throws -> KafkaHandle {
            if let client = groupClients[group] { return client }
            let made = try KafkaHandle(
                endpoint, consumer: true, settings: [("group.id", group), ("enable.auto.commit", "false")])
            groupClients[group] = made
            return made
        }
    }

    /// A record to produce: its key, its payload, and headers (dead letters' reasons).
    public struct OutgoingRecord: Sendable {
        public var key: String
        public var payload: [UInt8]
        public var headers: [(name: String, value: String)]
        public init(key: String, payload: [UInt8], headers: [(name: String, value: String)] = []) {
            self.key = key
            self.payload = payload
            self.headers = headers
        }
    }

    /// Header values' bytes kept alive for a call.
    private func withHeaderValues<T>(_ values: [[UInt8]], _ body: ([UnsafeRawPointer?]) -> T) -> T {
        let copies = values.map { v -> UnsafeMutableRawPointer? in
            guard !v.isEmpty else { return nil }
            let p = UnsafeMutableRawPointer.allocate(byteCount: v.count, alignment: 1)
            p.copyMemory(from: v, byteCount: v.count)
            return p
        }
        defer { for c in copies { c?.deallocate() } }
        return body(copies.map { $0.map(UnsafeRawPointer.init) })
    }

    /// The delivery reports of one `produce`: each record's position, or why it failed. Reports
    /// of a partition arrive in produce order (the idempotent producer keeps it), so the k-th
    /// report of partition p is the k-th record produced to it.
    final class DeliveryBatch: @unchecked Sendable {
        // `@unchecked`: every field is read and written under `lock` (reports come from whichever
        // thread polls the producer).
        private let lock = NSLock()
        private var outcome: [LogPosition?]
        private var errors: [rd_kafka_resp_err_t?]
        private var pending: Int
        private var waiting: [Int: [Int]] = [:]
        private var cursor: [Int: Int] = [:]

        init(count: Int) {
            outcome = Array(repeating: nil, count: count)
            errors = Array(repeating: nil, count: count)
            pending = count
        }

        func expect(_ index: Int, partition: Int) {
            lock.withLock { waiting[partition, default: []].append(index) }
        }

        func delivered(partition: Int, offset: Int64, error: rd_kafka_resp_err_t) {
            lock.withLock {
                let k = cursor[partition, default: 0]
                cursor[partition] = k + 1
                guard let list = waiting[partition], k < list.count else { return }
                let i = list[k]
                if error == RD_KAFKA_RESP_ERR_NO_ERROR {
                    outcome[i] = LogPosition(partition: partition, offset: offset)
                } else {
                    errors[i] = error
                }
                pending -= 1
            }
        }

        /// A record that never reached the producer's queue (it gets no report).
        func failed(_ index: Int, _ code: rd_kafka_resp_err_t) {
            lock.withLock {
                errors[index] = code
                pending -= 1
                // Its place in its partition's order is skipped.
                for (p, list) in waiting where list.contains(index) { waiting[p] = list.filter { $0 != index } }
            }
        }

        var isComplete: Bool { lock.withLock { pending == 0 } }

        func positions(topic: String) throws -> [LogPosition] {
            try lock.withLock {
                if let (i, code) = errors.enumerated().first(where: { $0.element != nil }).map({ ($0.offset, $0.element!) }) {
                    let failed = errors.count { $0 != nil }
                    throw KafkaError(
                        "producing to \(topic): \(failed) of \(errors.count) records not written (record \(i))", code)
                }
                return outcome.map { $0! }
            }
        }
    }

    /// librdkafka's delivery report: hands the outcome to the record's batch (retained per record).
    private let deliveryReport:
        @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
            _, msg, _ in
            guard let msg, let opaque = msg.pointee._private else { return }
            let batch = Unmanaged<DeliveryBatch>.fromOpaque(opaque).takeRetainedValue()
            batch.delivered(partition: Int(msg.pointee.partition), offset: msg.pointee.offset, error: msg.pointee.err)
        }
#endif
