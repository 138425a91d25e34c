import CardwatchCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public struct SnapshotError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Snapshot and restore of the whole engine state, for checkpoints.
///
/// The format is compact binary: a header (magic `CWFE`, format and feature schema
/// versions, the config), then each table's keys and its flat arrays copied as raw
/// little-endian bytes. Slots are kept as they are, so a restored engine continues
/// exactly as the original would have. Restoring checks every length it reads.
extension FeatureEngine {
    static let magic: [UInt8] = Array("CWFE".utf8)
    static let formatVersion: UInt32 = 1

    public func snapshot() -> [UInt8] {
        var w = SnapshotWriter()
        w.bytes.append(contentsOf: Self.magic)
        w.put(Self.formatVersion)
        w.put(UInt32(Feature.schemaVersion))
        w.put(config.allowedLateness)
        w.put(config.idleTTL)
        w.put(config.labelDelay)
        w.put(config.smallAmount)
        w.put(maxTime)
        w.put(nextSweep)
        for v in [
            stats.processed, stats.lateWithinAllowance, stats.lateBeyondAllowance, stats.labelsApplied, stats.evictedCards,
            stats.evictedMerchants,
        ] { w.put(Int64(v)) }

        w.putKeys(cards.index.keys, free: cards.index.free)
        w.putArray(cards.scalars)
        for e in cards.events { w.putArray(e) }
        w.putArray(cards.dayCount)
        w.putArray(cards.daySum)
        w.putArray(cards.merchants)
        w.putArray(cards.merchantDay)

        w.putKeys(merchants.index.keys, free: merchants.index.free)
        w.putArray(merchants.scalars)
        w.putArray(merchants.hours.count)
        w.putArray(merchants.hours.fraud)
        w.putArray(merchants.days.count)
        w.putArray(merchants.days.fraud)
        w.putArray(merchants.cache)
        return w.bytes
    }

    /// About what `snapshot()` returns, in bytes, without building it: the arrays' contents
    /// (the keys counted at 16 bytes each).
    public var snapshotSizeEstimate: Int {
        func size<T>(_ a: [T]) -> Int { a.count * MemoryLayout<T>.stride }
        var n = size(cards.scalars) + size(cards.dayCount) + size(cards.daySum) + size(cards.merchants)
        n += size(cards.merchantDay) + 16 * cards.index.keys.count + 12 * cards.events.count
        for e in cards.events { n += size(e) }
        n += size(merchants.scalars) + size(merchants.hours.count) + size(merchants.hours.fraud)
        n += size(merchants.days.count) + size(merchants.days.fraud) + size(merchants.cache)
        return n + 16 * merchants.index.keys.count
    }

    /// Rebuilds an engine from `snapshot()` output; refuses anything else with a reason.
    public init(snapshot bytes: [UInt8]) throws(SnapshotError) {
        var r = SnapshotReader(bytes: bytes)
        guard Array(try r.take(4)) == Self.magic else { throw SnapshotError("not a feature-engine snapshot (bad magic)") }
        let version: UInt32 = try r.get()
        guard version == Self.formatVersion else {
            throw SnapshotError("snapshot format \(version), expected \(Self.formatVersion)")
        }
        let schema: UInt32 = try r.get()
        guard schema == Feature.schemaVersion else {
            throw SnapshotError("snapshot of feature schema \(schema), this engine computes schema \(Feature.schemaVersion)")
        }
        var config = FeatureConfig()
        config.allowedLateness = try r.get()
        config.idleTTL = try r.get()
        config.labelDelay = try r.get()
        config.smallAmount = try r.get()
        do { try self.init(config: config) } catch { throw SnapshotError("snapshot holds an invalid config: \(error)") }
        maxTime = try r.get()
        nextSweep = try r.get()
        var s = [Int](repeating: 0, count: 6)
        for i in s.indices { s[i] = Int(try r.get() as Int64) }
        stats = FeatureEngineStats(
            processed: s[0], lateWithinAllowance: s[1], lateBeyondAllowance: s[2], labelsApplied: s[3], evictedCards: s[4],
            evictedMerchants: s[5])

        (cards.index.keys, cards.index.free) = try r.getKeys()
        let n = cards.index.keys.count
        cards.scalars = try r.getArray(count: n)
        cards.events = []
        cards.events.reserveCapacity(n)
        for _ in 0..<n { cards.events.append(try r.getArray()) }
        cards.dayCount = try r.getArray(count: n * cards.days)
        cards.daySum = try r.getArray(count: n * cards.days)
        cards.merchants = try r.getArray(count: n * CardTable.recentMerchants)
        cards.merchantDay = try r.getArray(count: n * CardTable.recentMerchants)
        cards.index.slots = try Self.slots(cards.index.keys)

        (merchants.index.keys, merchants.index.free) = try r.getKeys()
        let m = merchants.index.keys.count
        merchants.scalars = try r.getArray(count: m)
        merchants.hours.count = try r.getArray(count: m * merchants.hours.width)
        merchants.hours.fraud = try r.getArray(count: m * merchants.hours.width)
        merchants.days.count = try r.getArray(count: m * merchants.days.width)
        merchants.days.fraud = try r.getArray(count: m * merchants.days.width)
        merchants.cache = try r.getArray(count: m * MerchantTable.windows)
        merchants.index.slots = try Self.slots(merchants.index.keys)
        guard r.offset == bytes.count else {
            throw SnapshotError("\(bytes.count - r.offset) unexpected bytes after the snapshot")
        }
    }

    static func slots(_ keys: [String]) throws(SnapshotError) -> [String: Int32] {
        var slots: [String: Int32] = [:]
        for (i, k) in keys.enumerated() where !k.isEmpty {
            guard slots.updateValue(Int32(i), forKey: k) == nil else { throw SnapshotError("key '\(k)' appears twice") }
        }
        return slots
    }
}

struct SnapshotWriter {
    var bytes: [UInt8] = []

    mutating func put<T: BitwiseCopyable>(_ v: T) {
        withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
    }

    /// A count, the element size (so a reader on another layout refuses), then the raw elements.
    mutating func putArray<T: BitwiseCopyable>(_ a: [T]) {
        put(UInt64(a.count))
        put(UInt32(MemoryLayout<T>.stride))
        a.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    mutating func putKeys(_ keys: [String], free: [Int32]) {
        put(UInt64(keys.count))
        for k in keys {
            put(UInt32(k.utf8.count))
            bytes.append(contentsOf: k.utf8)
        }
        putArray(free)
    }
}

struct SnapshotReader {
    let bytes: [UInt8]
    var offset = 0

    mutating func take(_ n: Int) throws(SnapshotError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else { throw SnapshotError("snapshot truncated at byte \(offset)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func get<T: BitwiseCopyable>() throws(SnapshotError) -> T {
        let raw = try take(MemoryLayout<T>.size)
        return raw.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    mutating func getArray<T: BitwiseCopyable>(count expected: Int? = nil) throws(SnapshotError) -> [T] {
        let count64: UInt64 = try get()
        let stride: UInt32 = try get()
        guard stride == MemoryLayout<T>.stride else {
            throw SnapshotError("element size \(stride), expected \(MemoryLayout<T>.stride) (snapshot from another build?)")
        }
        guard count64 <= UInt64(bytes.count), let expectedCount = Optional(Int(count64)) else {
            throw SnapshotError("implausible array length \(count64)")
        }
        if let expected, expected != expectedCount {
            throw SnapshotError("array of \(expectedCount) elements where \(expected) belong")
        }
        let raw = try take(expectedCount * MemoryLayout<T>.stride)
        return [T](unsafeUninitializedCapacity: expectedCount) { buffer, initialized in
            raw.withUnsafeBytes { src in
                if expectedCount > 0 { _ = memcpy(UnsafeMutableRawPointer(buffer.baseAddress!), src.baseAddress!, src.count) }
            }
            initialized = expectedCount
        }
    }

    mutating func getKeys() throws(SnapshotError) -> ([String], [Int32]) {
        let n: UInt64 = try get()
        guard n <= UInt64(bytes.count) else { throw SnapshotError("implausible key count \(n)") }
        var keys: [String] = []
        keys.reserveCapacity(Int(n))
        for _ in 0..<n {
            let len: UInt32 = try get()
            let raw = try take(Int(len))
            guard let k = String(validating: raw, as: UTF8.self) else { throw SnapshotError("a key is not UTF-8") }
            keys.append(k)
        }
        let free: [Int32] = try getArray()
        guard free.allSatisfy({ $0 >= 0 && Int($0) < keys.count && keys[Int($0)].isEmpty }) else {
            throw SnapshotError("free list names a slot in use")
        }
        return (keys, free)
    }
}
