/// How a log chooses a record's partition from its key. A log records its partitioner when it
/// is created and keeps it for life (a key must stay in the partition it was first written to).
public enum KeyPartitioner: String, Sendable, Equatable, CaseIterable {
    /// Kafka's default for keyed records: murmur2 of the key's UTF-8 bytes, sign bit cleared,
    /// modulo the partition count — the Java client's `Utils.toPositive(Utils.murmur2(key)) %
    /// partitions` and librdkafka's `murmur2_random` for a non-null key. A record keyed by
    /// `card_id` from any Kafka client lands where Cardwatch's own producer puts it. New logs.
    case murmur2
    /// FNV-1a 64 modulo the partition count: logs created before the Kafka-compatible one.
    case fnv1a64

    /// The partition, in `0..<partitions`, of a key.
    public func partition(forKey key: String, partitions: Int) -> Int {
        precondition(partitions > 0, "a log has at least one partition")
        switch self {
        case .murmur2: return Int(UInt32(bitPattern: KeyHash.murmur2(key.utf8)) & 0x7fff_ffff) % partitions
        case .fnv1a64: return KeyHash.partition(forKey: key, partitions: partitions)
        }
    }
}

extension KeyHash {
    /// MurmurHash2, 32 bits, with Kafka's seed (0x9747b28c), as `org.apache.kafka.common.utils.Utils.murmur2`
    /// computes it over a key's bytes (little-endian 4-byte blocks, then the tail). Written by
    /// hand: none of the packages this project may use has it.
    public static func murmur2(_ bytes: some Collection<UInt8>) -> Int32 {
        let m: UInt32 = 0x5bd1_e995
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: bytes.count)
        var block: UInt32 = 0
        var filled = 0
        for byte in bytes {
            block |= UInt32(byte) << (8 * UInt32(filled))
            filled += 1
            guard filled == 4 else { continue }
            var k = block &* m
            k ^= k >> 24
            k = k &* m
            h = (h &* m) ^ k
            block = 0
            filled = 0
        }
        if filled > 0 {
            h ^= block
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }
}
