/// A partition's feature state as of its offsets.
public struct PartitionCheckpoint: Sendable, Equatable {
    public var partition: Int
    public var offsets: PartitionOffsets
    public var state: [UInt8]
    public init(partition: Int, offsets: PartitionOffsets, state: [UInt8]) {
        self.partition = partition
        self.offsets = offsets
        self.state = state
    }
}

/// Per-partition checkpoints of the feature state. A runtime assigned a partition restores
/// its latest checkpoint and replays from there to the sink's offsets; so a checkpoint may
/// lag (it is written every so many batches) but must never be ahead of the sink.
public protocol CheckpointStore: Sendable {
    /// Keeps `checkpoint` as the group's latest for its partition (replacing older ones).
    func save(_ checkpoint: PartitionCheckpoint, group: String) throws
    /// The group's latest checkpoint of a partition, nil when there is none.
    func latest(group: String, partition: Int) throws -> PartitionCheckpoint?
}
