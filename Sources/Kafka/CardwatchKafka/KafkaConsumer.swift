#if Kafka
    public import CardwatchPipeline
    import CRdKafka
    import Foundation

    /// A member of a Kafka consumer group: the runtime's `LogConsumer` on a cluster.
    ///
    /// Rebalances reach the listener from librdkafka's rebalance callback, which runs inside
    /// `poll` (and `close`) on the polling thread: revoked partitions are handed to
    /// `listener.revoked` before they are given up (so the runtime commits and checkpoints
    /// first), assigned ones to `listener.assigned` before any of their records is fetched, and
    /// the offsets it seeks to there are the ones the assignment starts from. The group's own
    /// committed offsets are never read: the decision sink's are the truth, and they are
    /// committed to Kafka after each sink commit (`offsetCommits`) only so that lag tools see them.
    ///
    /// The assignor is `range`, the only one of librdkafka's that keeps co-partitioned topics
    /// together: partition p of `transactions` and of `labels` always go to the same member,
    /// which the runtime needs (a partition's labels update the state its transactions built).
    /// `roundrobin` and `cooperative-sticky` place each topic-partition on its own, and were
    /// seen to split them (a member given `labels[0…5]` while another kept `transactions[0…5]`
    /// after a rebalance on the mock cluster): they are refused. The incremental protocol's
    /// callbacks are followed all the same.
    ///
    /// A seek within the records of the last poll (the runtime gives back what it could not use
    /// yet) is served from memory, without librdkafka's seek (which drops its prefetched data).
    public final class KafkaConsumer: LogConsumer {
        public let log: KafkaLog
        public let group: String
        private let handle: KafkaHandle
        private weak var listener: (any RebalanceListener)?
        private var topics: [Topic] = []
        private var subscribed = false
        private var closed = false
        /// What the rebalance callback could not throw, thrown by the `poll` it ran in.
        private var callbackError: (any Error)?
        /// Partitions being assigned (inside the callback): the offsets the listener seeks to.
        private var starting: [TopicPartition: Int64]?
        /// Assigned partitions whose listener call failed: paused, their records dropped, retried at the next poll.
        private var unrestored: Set<Int> = []
        private var held: Set<Int> = []
        /// The next offset `poll` returns, per held topic-partition.
        private var position: [TopicPartition: Int64] = [:]
        /// The next offset librdkafka delivers, per held topic-partition.
        private var fetched: [TopicPartition: Int64] = [:]
        /// Records fetched but not returned (a seek back, a full poll), per topic-partition, in order.
        private var pending: [TopicPartition: [LogRecord]] = [:]
        /// The records the last poll returned, per topic-partition (what a seek back may return again).
        private var delivered: [TopicPartition: [LogRecord]] = [:]
        /// Asked, with every partition this member then holds, before an assignment reaches the
        /// listener: an error keeps the new partitions paused and untold (asked again at each
        /// poll), and `poll` throws it, but for `AdmissionPending`.
        public var admit: ((_ held: [Int]) throws -> Void)?
        /// Told, on the polling thread, of each rebalance this member took part in (for the logs).
        public var onRebalance: ((_ assigned: [Int], _ revoked: [Int]) -> Void)?
        /// Where each held topic-partition stands (next to return, next fetched, waiting), for diagnostics.
        public var positions: String {
            held.sorted().flatMap { p in
                topics.map { t in
                    let tp = TopicPartition(topic: t, partition: p)
                    return
                        "\(t.rawValue)[\(p)]: at \(position[tp].map(String.init) ?? "-"), fetched \(fetched[tp].map(String.init) ?? "-"), "
                        + "\(pending[tp]?.count ?? 0) waiting"
                }
            }.joined(separator: "; ")
        }

        /// Where the next poll starts its round over the waiting queues.
        private var turn = 0
        /// Commits the sink's offsets to the group for the lag tools, from any thread.
        public let offsetCommits: KafkaOffsetCommits

        struct TopicPartition: Hashable {
            var topic: Topic
            var partition: Int
        }

        /// A member of `group` on `log`'s cluster. `sessionTimeout`: how long the group waits for a
        /// silent member before its partitions go to the others.
        public init(log: KafkaLog, group: String, sessionTimeout: Double = 6) throws {
            for o in log.endpoint.options where o.key == "partition.assignment.strategy" && o.value != "range" {
                throw KafkaError(
                    "partition.assignment.strategy=\(o.value): Cardwatch's consumers use range, the assignor that keeps "
                        + "partition p of transactions and of labels on one member (the others place each topic's "
                        + "partitions on their own, and a partition's labels must reach the member that holds its "
                        + "transactions)")
            }
            self.log = log
            self.group = group
            let box = CallbackBox()
            handle = try KafkaHandle(
                log.endpoint, consumer: true,
                settings: [
                    ("group.id", group), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
                    ("auto.offset.reset", "earliest"), ("partition.assignment.strategy", "range"),
                    ("session.timeout.ms", String(Int(sessionTimeout * 1000))),
                    ("heartbeat.interval.ms", String(max(100, Int(sessionTimeout * 1000 / 6)))),
                    ("fetch.wait.max.ms", "1"), ("enable.partition.eof", "false"),
                ]
            ) { conf in
                rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
                rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(box).toOpaque())
            }
            offsetCommits = KafkaOffsetCommits(handle: handle, log: log)
            handle.keepAlive = box  // until the handle is destroyed: callbacks may run until then
            box.consumer = self
            rd_kafka_poll_set_consumer(handle.rk)
            self.box = box
        }
        private var box: CallbackBox?

        deinit {
            // Not closed: leave without telling the listener (it may be gone), then the handle goes.
            if subscribed && !closed {
                listener = nil
                closed = true
                offsetCommits.stop()
                _ = rd_kafka_consumer_close(handle.rk)
            }
            box?.consumer = nil
        }

        public var assignment: [Int] { held.sorted() }

        public func subscribe(_ topics: [Topic], listener: any RebalanceListener) throws {
            guard !subscribed else { throw ConsumerGroupError("this consumer already subscribed to group \(group)") }
            self.topics = topics
            self.listener = listener
            let list = PartitionList(capacity: topics.count)
            for t in topics { list.add(log.endpoint.name(t), Int(RD_KAFKA_PARTITION_UA)) }
            try check(rd_kafka_subscribe(handle.rk, list.list), "subscribing group \(group) to \(topics.map(\.rawValue))")
            subscribed = true
        }

        public func poll(maxRecords: Int) throws -> [LogRecord] {
            guard subscribed, !closed else { throw ConsumerGroupError("poll before subscribe, or after close") }
            try retryUnrestored()
            // First what librdkafka has ready (its callbacks run here), into the waiting queues:
            // always, even when records wait already, or a partition whose runtime waits for a
            // record of its other topic would be given the same records again and again.
            var timeout: Int32 = pending.values.allSatisfy(\.isEmpty) && maxRecords > 0 ? 10 : 0
            var fetchedNow = 0
            while fetchedNow < max(1, maxRecords) {
                guard let msg = rd_kafka_consumer_poll(handle.rk, timeout) else { break }
                timeout = 0
                defer { rd_kafka_message_destroy(msg) }
                // Kept in the queues on a failure: nothing is returned, nothing lost.
                guard let record = try accept(msg) else {
                    if let error = callbackError {
                        callbackError = nil
                        throw error
                    }
                    continue
                }
                pending[TopicPartition(topic: record.topic, partition: record.partition), default: []].append(record)
                fetchedNow += 1
            }
            if let error = callbackError {
                callbackError = nil
                throw error
            }
            guard maxRecords > 0 else { return [] }
            // Then from the queues: an even share per topic-partition first, whatever room is
            // left to the ones with more (like the in-process group's consumer), starting at a
            // different one each time.
            let waiting = pending.keys.filter { held.contains($0.partition) && !unrestored.contains($0.partition) }
                .sorted { ($0.partition, $0.topic.rawValue) < ($1.partition, $1.topic.rawValue) }
            guard !waiting.isEmpty else { return [] }
            turn = (turn + 1) % waiting.count
            var out: [LogRecord] = []
            var returned: [TopicPartition: [LogRecord]] = [:]
            let share = max(1, maxRecords / waiting.count)
            for round in 0..<2 {
                for i in 0..<waiting.count {
                    let tp = waiting[(turn + i) % waiting.count]
                    let room = min(maxRecords - out.count, round == 0 ? share : .max)
                    guard room > 0, var queue = pending[tp], !queue.isEmpty else { continue }
                    let taken = Array(queue.prefix(room))
                    queue.removeFirst(taken.count)
                    pending[tp] = queue.isEmpty ? nil : queue
                    out += taken
                    returned[tp, default: []] += taken
                }
            }
            for (tp, records) in returned {
                delivered[tp] = records
                position[tp] = records.last!.offset + 1
            }
            return out
        }

        /// A polled message as a record of a held partition (nil: an event, or a record the
        /// runtime does not want: of a partition not held or not restored, or before its position).
        private func accept(_ msg: UnsafeMutablePointer<rd_kafka_message_t>) throws -> LogRecord? {
            let m = msg.pointee
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                // Brokers away, a partition's end: librdkafka retries by itself. A fatal error fences this member.
                var reason = [CChar](repeating: 0, count: 512)
                if rd_kafka_fatal_error(handle.rk, &reason, reason.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw ConsumerGroupError("group \(group): \(text(reason))")
                }
                return nil
            }
            guard let rkt = m.rkt, let topic = log.endpoint.topic(named: String(cString: rd_kafka_topic_name(rkt))) else {
                return nil
            }
            let p = Int(m.partition)
            let tp = TopicPartition(topic: topic, partition: p)
            guard held.contains(p), !unrestored.contains(p), let next = fetched[tp], m.offset >= next else { return nil }
            fetched[tp] = m.offset + 1
            return KafkaLog.record(msg, topic: topic)
        }

        public func seek(_ topic: Topic, partition: Int, to offset: Int64) throws {
            let tp = TopicPartition(topic: topic, partition: partition)
            guard topics.contains(topic) else {
                throw ConsumerGroupError("seek in \(topic.rawValue)[\(partition)], which this member does not read")
            }
            if starting != nil {
                starting![tp] = offset
                return
            }
            guard held.contains(partition) else {
                throw ConsumerGroupError("seek in \(topic.rawValue)[\(partition)], which this member does not hold")
            }
            guard position[tp] != offset else { return }
            position[tp] = offset
            let window = (delivered[tp] ?? []) + (pending[tp] ?? [])
            if let first = window.first, first.offset <= offset, offset <= fetched[tp] ?? -1 {
                // Within what was fetched: served again from memory.
                delivered[tp] = window.filter { $0.offset < offset }
                let again = window.filter { $0.offset >= offset }
                pending[tp] = again.isEmpty ? nil : again
                return
            }
            delivered[tp] = nil
            pending[tp] = nil
            fetched[tp] = offset
            guard !unrestored.contains(partition) else { return }
            try seekFetcher([tp: offset])
        }

        /// librdkafka's fetch positions moved (its prefetched records of these partitions dropped).
        private func seekFetcher(_ offsets: [TopicPartition: Int64]) throws {
            let list = PartitionList(capacity: offsets.count)
            for (tp, offset) in offsets { list.add(log.endpoint.name(tp.topic), tp.partition, offset: offset) }
            try check(rd_kafka_seek_partitions(handle.rk, list.list, 10_000), "seeking in group \(group)")
            for e in PartitionList.entries(list.list) { try check(e.error, "seeking \(e.name)[\(e.partition)]") }
        }

        public func close() throws {
            guard subscribed, !closed else { return }
            closed = true
            offsetCommits.stop()
            let code = rd_kafka_consumer_close(handle.rk)  // the revoke callback runs here
            held = []
            if let error = callbackError {
                callbackError = nil
                throw error
            }
            try check(code, "leaving group \(group)")
        }

        // MARK: Rebalancing

        fileprivate func rebalance(_ code: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
            let cooperative = isCooperative(handle.rk)
            let entries = PartitionList.entries(list)
            let partitions = Set(entries.map(\.partition)).sorted()
            switch code {
            case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                for p in partitions { held.insert(p) }
                starting = [:]
                var failure: (any Error)?
                if closed {
                    failure = ConsumerGroupError("closing")
                } else if !partitions.isEmpty {  // the incremental protocol's rounds may add nothing
                    do {
                        try admit?(held.sorted())
                        try listener?.assigned(partitions)
                    } catch { failure = error }
                }
                let offsets = starting ?? [:]
                starting = nil
                for e in entries {
                    guard let topic = log.endpoint.topic(named: e.name) else { continue }
                    let tp = TopicPartition(topic: topic, partition: e.partition)
                    let at = offsets[tp] ?? 0
                    list!.pointee.elems[entries.firstIndex { $0.name == e.name && $0.partition == e.partition }!].offset = at
                    position[tp] = at
                    fetched[tp] = at
                    pending[tp] = nil
                    delivered[tp] = nil
                }
                let assigned = assign(list, cooperative: cooperative)
                if assigned != RD_KAFKA_RESP_ERR_NO_ERROR {
                    callbackError = callbackError ?? KafkaError("assigning \(partitions) to \(group)", assigned)
                }
                if !partitions.isEmpty { onRebalance?(partitions, []) }
                if let failure {
                    // Kept, but not fetched, until the listener takes them (at the next poll).
                    unrestored.formUnion(partitions)
                    _ = rd_kafka_pause_partitions(handle.rk, list)
                    if !closed && !(failure is AdmissionPending) { callbackError = callbackError ?? failure }
                }
            case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
                let restored = partitions.filter { !unrestored.contains($0) }
                if !restored.isEmpty {
                    do { try listener?.revoked(restored) } catch { callbackError = callbackError ?? error }
                }
                forget(partitions)
                if !partitions.isEmpty { onRebalance?([], partitions) }
                _ = unassign(handle.rk, list, cooperative: cooperative)
            default:
                // Not a rebalance the group can go on from: everything given up.
                let lost = held.sorted()
                if !lost.isEmpty { try? listener?.revoked(lost) }
                forget(lost)
                _ = unassign(handle.rk, list, cooperative: cooperative)
                callbackError = callbackError ?? KafkaError("rebalance of group \(group)", code)
            }
        }

        private func forget(_ partitions: [Int]) {
            for p in partitions {
                held.remove(p)
                unrestored.remove(p)
                for t in Topic.allCases {
                    let tp = TopicPartition(topic: t, partition: p)
                    position[tp] = nil
                    fetched[tp] = nil
                    pending[tp] = nil
                    delivered[tp] = nil
                }
            }
        }

        /// Partitions assigned while the listener failed: given to it again, then fetched from
        /// where it seeks.
        private func retryUnrestored() throws {
            guard !unrestored.isEmpty else { return }
            let partitions = unrestored.sorted()
            starting = [:]
            defer { starting = nil }
            do { try admit?(held.sorted()) } catch is AdmissionPending { return }
            try listener?.assigned(partitions)
            var offsets: [TopicPartition: Int64] = [:]
            for p in partitions {
                for t in topics {
                    offsets[TopicPartition(topic: t, partition: p)] = starting?[.init(topic: t, partition: p)] ?? 0
                }
            }
            let list = PartitionList(capacity: offsets.count)
            for tp in offsets.keys { list.add(log.endpoint.name(tp.topic), tp.partition) }
            unrestored = []
            for (tp, at) in offsets {
                position[tp] = at
                fetched[tp] = at
            }
            try check(rd_kafka_resume_partitions(handle.rk, list.list), "resuming \(partitions)")
            try seekFetcher(offsets)
        }
    }

    /// Thrown by `KafkaConsumer.admit` to hold new partitions back without failing the poll:
    /// they are asked about again at the next one.
    public struct AdmissionPending: Error {
        public init() {}
    }

    /// Commits the sink's offsets to the group (asynchronously), so that `kcat`, Burrow and
    /// kafka-exporter see its progress; nothing once the consumer closes.
    /// `@unchecked Sendable`: librdkafka's commit is thread-safe, and `stopped` is used under `lock`.
    public final class KafkaOffsetCommits: @unchecked Sendable {
        private let handle: KafkaHandle
        private let log: KafkaLog
        private let lock = NSLock()
        private var stopped = false

        init(handle: KafkaHandle, log: KafkaLog) {
            self.handle = handle
            self.log = log
        }

        /// The offsets each consumed range moved its partition to.
        public func commit(_ consumed: [ConsumedRange]) {
            guard !consumed.isEmpty else { return }
            let list = PartitionList(capacity: consumed.count * 2)
            for range in consumed {
                list.add(log.endpoint.name(.transactions), range.partition, offset: range.to.transactions)
                list.add(log.endpoint.name(.labels), range.partition, offset: range.to.labels)
            }
            lock.withLock {
                guard !stopped else { return }
                _ = rd_kafka_commit(handle.rk, list.list, 1)
            }
        }

        func stop() { lock.withLock { stopped = true } }
    }

    /// What the C callback reaches the consumer through (the consumer itself is not retained).
    private final class CallbackBox {
        weak var consumer: KafkaConsumer?
    }

    extension KafkaConsumer {
        fileprivate func assign(
            _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, cooperative: Bool
        ) -> rd_kafka_resp_err_t {
            guard cooperative else { return rd_kafka_assign(handle.rk, list) }
            guard let e = rd_kafka_incremental_assign(handle.rk, list) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
            defer { rd_kafka_error_destroy(e) }
            return rd_kafka_error_code(e)
        }
    }

    /// Gives up `list` (the incremental protocol) or everything (the eager one).
    private func unassign(
        _ rk: OpaquePointer?, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, cooperative: Bool
    ) -> rd_kafka_resp_err_t {
        guard cooperative else { return rd_kafka_assign(rk, nil) }
        guard let e = rd_kafka_incremental_unassign(rk, list) else { return RD_KAFKA_RESP_ERR_NO_ERROR }
        defer { rd_kafka_error_destroy(e) }
        return rd_kafka_error_code(e)
    }

    private func isCooperative(_ rk: OpaquePointer?) -> Bool {
        String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    }

    /// librdkafka's rebalance callback: runs on the thread in `poll`/`close`, which is the consumer's.
    private let rebalanceCallback:
        @convention(c) (
            OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
            UnsafeMutableRawPointer?
        ) -> Void = { rk, code, list, opaque in
            guard let opaque, let consumer = Unmanaged<CallbackBox>.fromOpaque(opaque).takeUnretainedValue().consumer else {
                // The consumer is going (its deinit closes the handle): nothing is taken, everything given up.
                _ = unassign(rk, list, cooperative: isCooperative(rk))
                return
            }
            consumer.rebalance(code, list)
        }
#endif
