// The consumer side of the log, shaped like Kafka's consumer so that librdkafka can sit
// behind it unchanged: a group member subscribes to topics, partitions are assigned to it
// and revoked from it as members come and go, and it polls batches from the positions it
// holds (seeking where its state says it must resume).

/// Told by a consumer, inside `poll` and on the polling thread (Kafka's rule), which
/// partitions it gained and lost. Partition numbers are shared by every subscribed topic
/// (topics are co-partitioned: partition p of `labels` goes with partition p of `transactions`).
public protocol RebalanceListener: AnyObject {
    /// Called before any record of these partitions is returned; seek here.
    func assigned(_ partitions: [Int]) throws
    /// Called after the last record of these partitions was returned, before another member
    /// may take them: commit or checkpoint here.
    func revoked(_ partitions: [Int]) throws
}

/// One member of a consumer group. Used from one thread.
public protocol LogConsumer: AnyObject {
    /// Joins the group for `topics`; assignments reach `listener` from `poll`.
    func subscribe(_ topics: [Topic], listener: any RebalanceListener) throws
    /// Up to `maxRecords` records of the assigned partitions, each topic-partition's in
    /// offset order (none when nothing is new). Rebalances happen here.
    func poll(maxRecords: Int) throws -> [LogRecord]
    /// The next offset `poll` returns from a topic-partition this member holds.
    func seek(_ topic: Topic, partition: Int, to offset: Int64) throws
    /// The partitions this member holds, in order.
    var assignment: [Int] { get }
    /// Leaves the group: its partitions are revoked (listener called) and go to the others.
    func close() throws
}

/// A consumer that was fenced out of its group (it was taken for dead, or the group is gone).
public struct ConsumerGroupError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "consumer group: \(message)" }
}
