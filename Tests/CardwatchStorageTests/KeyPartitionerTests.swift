import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Testing

/// Kafka's murmur2, written the way `org.apache.kafka.common.utils.Utils.murmur2` is: whole
/// 4-byte blocks by index, then the tail by a falling-through switch, in signed 32-bit
/// arithmetic. The reference the streaming implementation is checked against.
private func javaMurmur2(_ data: [UInt8]) -> Int32 {
    let length = data.count
    let m: Int32 = 0x5bd1_e995
    var h: Int32 = Int32(bitPattern: 0x9747_b28c) ^ Int32(length)
    for i in 0..<(length / 4) {
        let i4 = i * 4
        var k =
            Int32(data[i4]) | Int32(data[i4 + 1]) << 8 | Int32(data[i4 + 2]) << 16 | Int32(bitPattern: UInt32(data[i4 + 3]) << 24)
        k = k &* m
        k ^= Int32(bitPattern: UInt32(bitPattern: k) >> 24)
        k = k &* m
        h = h &* m
        h ^= k
    }
    let tail = length & ~3
    switch length % 4 {
    case 3:
        h ^= Int32(data[tail + 2]) << 16
        h ^= Int32(data[tail + 1]) << 8
        h ^= Int32(data[tail])
        h = h &* m
    case 2:
        h ^= Int32(data[tail + 1]) << 8
        h ^= Int32(data[tail])
        h = h &* m
    case 1:
        h ^= Int32(data[tail])
        h = h &* m
    default: break
    }
    h ^= Int32(bitPattern: UInt32(bitPattern: h) >> 13)
    h = h &* m
    h ^= Int32(bitPattern: UInt32(bitPattern: h) >> 15)
    return h
}

@Suite struct KeyPartitionerTests {
    /// The values Kafka's own tests (UtilsTest.testMurmur2) and other clients' check against.
    @Test func murmur2GivesKafkasValues() {
        let expected: [(String, Int32)] = [
            ("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107), ("1", -1_993_445_489), ("12", 126_087_238), ("123", -267_702_483),
            ("1234", -1_614_185_708), ("12345", -1_188_365_604),
        ]
        for (key, hash) in expected {
            #expect(KeyHash.murmur2(key.utf8) == hash, "\(key)")
            #expect(javaMurmur2(Array(key.utf8)) == hash, "the reference itself, \(key)")
        }
    }

    /// Every length's tail, and bytes with the high bit set, against the index-by-index reference.
    @Test func murmur2EqualsTheReferenceOnRandomBytes() {
        var rng = SplitMix(seed: 12)
        for trial in 0..<2_000 {
            let bytes = (0..<Int(rng.next() % 70)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(KeyHash.murmur2(bytes) == javaMurmur2(bytes), "trial \(trial): \(bytes)")
        }
    }

    /// The partition is the hash with its sign bit cleared, modulo the count (Java's
    /// `Utils.toPositive(hash) % partitions`), and covers every partition.
    @Test func partitionIsKafkasToPositiveModulo() {
        var seen = Set<Int>()
        for i in 0..<2_000 {
            let key = "card-\(i)"
            let hash = javaMurmur2(Array(key.utf8))
            let partition = KeyPartitioner.murmur2.partition(forKey: key, partitions: 12)
            #expect(partition == Int(hash & 0x7fff_ffff) % 12)
            seen.insert(partition)
        }
        #expect(seen == Set(0..<12))
        // Sign bit cleared, not the absolute value: they differ for negative hashes.
        #expect(KeyPartitioner.murmur2.partition(forKey: "21", partitions: 1000) == Int(-973_932_308 & 0x7fff_ffff) % 1000)
    }

    /// A new log partitions by murmur2 and says so for life; a log written before the
    /// partitioner was recorded keeps FNV-1a, so its cards stay where they are.
    @Test func newLogsUseMurmur2AndOlderLogsKeepTheirHash() throws {
        try withDataDirectory { dir in
            let keys = ["card-1", "card-2", "card-000042", "ünïcödé", "card"]
            do {
                let log = try SQLiteEventLog(directory: dir, partitions: 4)
                #expect(log.partitioner == .murmur2)
                for key in keys {
                    let positions = try log.append(.transactions, [(key, []), (key, [])])
                    #expect(Set(positions.map(\.partition)) == [KeyPartitioner.murmur2.partition(forKey: key, partitions: 4)])
                }
            }
            #expect(try SQLiteEventLog(directory: dir).partitioner == .murmur2)
        }
        try withDataDirectory { dir in
            _ = try SQLiteEventLog(directory: dir, partitions: 4)
            // What a log from before this change holds: a partition count and no partitioner.
            // The log just dropped may still be closing on its background threads: wait for its locks.
            var config = Configuration()
            config.busyMode = .timeout(10)
            let queue = try DatabaseQueue(
                path: URL(fileURLWithPath: dir).appendingPathComponent(SQLiteEventLog.fileName).path, configuration: config)
            try queue.write { try $0.execute(sql: "DELETE FROM meta WHERE key = 'partitioner'") }
            try queue.close()
            let log = try SQLiteEventLog(directory: dir)
            #expect(log.partitioner == .fnv1a64 && log.partitions == 4)
            #expect(log.partition(forKey: "foobar") == KeyHash.partition(forKey: "foobar", partitions: 4))
            #expect(try SQLiteEventLog(directory: dir).partitioner == .fnv1a64)
        }
    }
}
