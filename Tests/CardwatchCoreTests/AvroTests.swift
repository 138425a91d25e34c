import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

/// The shipped schema v1, as producers register it.
let shippedAvroSchema: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return try! String(contentsOf: root.appendingPathComponent("schemas/transaction-v1.avsc"), encoding: .utf8)
}()

/// A reference Avro writer, field by field, as the specification's binary encoding says
/// (the naive side of the comparison: no schema walking, every field written by hand).
struct AvroWriter {
    var out: [UInt8] = []

    mutating func long(_ v: Int64) {
        var z = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        repeat {
            let b = UInt8(z & 0x7f)
            z >>= 7
            out.append(z == 0 ? b : b | 0x80)
        } while z != 0
    }
    mutating func string(_ s: String) {
        long(Int64(s.utf8.count))
        out += Array(s.utf8)
    }
    mutating func double(_ v: Double) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt64(i)))) }
    }
    mutating func bool(_ b: Bool) { out.append(b ? 1 : 0) }
    /// A `["null", T]` union: branch 0 for nil, else branch 1 and the value.
    mutating func optional<T>(_ v: T?, _ write: (inout AvroWriter, T) -> Void) {
        guard let v else { return long(0) }
        long(1)
        write(&self, v)
    }

    /// A transaction written with the shipped schema, framed with `id`.
    static func shipped(_ t: Transaction, id: Int32) -> [UInt8] {
        var w = AvroWriter()
        w.out = [0] + withUnsafeBytes(of: UInt32(bitPattern: id).bigEndian) { Array($0) }
        w.string(t.transactionID)
        w.string(t.cardID)
        w.double(t.amount)
        w.long(t.timestamp.microseconds)
        w.string(t.merchantID)
        w.optional(t.merchantCategory) { $0.string($1) }
        w.optional(t.currency) { $0.string($1) }
        w.optional(t.location?.latitude) { $0.double($1) }
        w.optional(t.location?.longitude) { $0.double($1) }
        w.optional(t.country) { $0.string($1) }
        w.optional(t.channel) { $0.long(Int64(Channel.allCases.firstIndex(of: $1)!)) }
        w.optional(t.customerID) { $0.string($1) }
        w.optional(t.isFraud) { $0.bool($1) }
        w.optional(t.fraudPattern) { $0.string($1) }
        return w.out
    }
}

/// Writer schemas by id, from memory; ids listed in `down` fail as an unreachable registry does.
struct SchemasInMemory: WriterSchemaSource {
    var schemas: [Int32: String]
    var down: Set<Int32> = []
    let asked = Locked(0)
    func schemaText(id: Int32) throws -> String {
        asked.withLock { $0 += 1 }
        if down.contains(id) { throw SchemaLookupFailure(unknown: false, "the registry is down") }
        guard let s = schemas[id] else { throw SchemaLookupFailure(unknown: true, "schema id \(id) is not in the registry") }
        return s
    }
}

/// A writer's schema that differs from v1 as producers' do: fields in another order, fields v1
/// does not know (of every complex type), the amount as a decimal, milliseconds for the time.
let foreignAvroSchema = """
    {"type": "record", "name": "Payment", "namespace": "bank.events", "fields": [
      {"name": "trace", "type": {"type": "array", "items": {"type": "record", "name": "Hop", "fields": [
        {"name": "at", "type": "long"}, {"name": "via", "type": ["null", "Hop"]}]}}},
      {"name": "card_id", "type": "string"},
      {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
      {"name": "attributes", "type": {"type": "map", "values": "string"}},
      {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "transaction_id", "type": "string"},
      {"name": "checksum", "type": {"type": "fixed", "name": "Sum", "size": 4}},
      {"name": "merchant_id", "type": "string"},
      {"name": "channel", "type": ["null", {"type": "enum", "name": "Channel", "symbols": ["atm", "online", "pos"]}]},
      {"name": "currency", "type": "string"}
    ]}
    """

@Suite struct AvroTests {
    func decoder(_ schemas: [Int32: String], down: Set<Int32> = []) -> (ConfluentAvroDecoder, SchemasInMemory) {
        let source = SchemasInMemory(schemas: schemas, down: down)
        return (ConfluentAvroDecoder(source: source), source)
    }

    func decode(_ avro: ConfluentAvroDecoder, _ payload: [UInt8]) throws -> Result<Transaction, RecordError> {
        try avro.json(payload).flatMap { decodeJSON($0) }
    }

    @Test func theShippedSchemaNamesEveryFieldOfSchemaV1() throws {
        let schema = try AvroSchema.parse(shippedAvroSchema)
        guard case .record(let name, let fields) = schema.kind else {
            Issue.record("the shipped schema is not a record")
            return
        }
        #expect(name == "io.cardwatch.v1.Transaction")
        #expect(fields.map(\.name) == TransactionField.written.map(\.name))
    }

    /// Every transaction written with the shipped schema by the reference writer reads back as
    /// the transaction its JSON line reads as.
    @Test func recordsOfTheShippedSchemaReadAsTheirJSON() async throws {
        let (avro, source) = decoder([7: shippedAvroSchema])
        await propertyCheck(count: 1000, input: transactions) { t in
            let result = try? decode(avro, AvroWriter.shipped(t, id: 7))
            #expect(result == decodeJSON(TransactionEncoder.jsonLine(t)))
            #expect(result == .success(t))
        }
        #expect(source.asked.withLock { $0 } == 1, "the schema is fetched once")
    }

    @Test func aForeignWriterIsReadByFieldName() throws {
        let (avro, _) = decoder([42: foreignAvroSchema])
        var w = AvroWriter()
        w.out = [0, 0, 0, 0, 42]
        // trace: one block of two hops, the second nested in the first's "via".
        w.long(2)
        w.long(1)
        w.long(1)
        w.long(2)
        w.long(0)
        w.long(3)
        w.long(0)
        w.long(0)
        w.string("card-9")
        w.long(2)
        w.out += [0x30, 0x39]  // decimal 12345, scale 2: 123.45
        w.long(-1)  // a map block given with its size in bytes
        w.long(6)
        w.string("k")
        w.string("vvv")
        w.long(0)
        w.long(1_700_000_000_123)
        w.string("tx-1")
        w.out += [1, 2, 3, 4]
        w.string("m-1")
        w.long(1)
        w.long(1)  // "online" in this writer's order
        w.string("EUR")
        let t = try decode(avro, w.out).get()
        #expect(t.transactionID == "tx-1" && t.cardID == "card-9" && t.merchantID == "m-1")
        #expect(t.amount == 123.45)
        #expect(t.timestamp.microseconds == 1_700_000_000_123_000)
        #expect(t.channel == .online && t.currency == "EUR")
    }

    @Test func whatCannotBeReadSaysWhy() throws {
        let (avro, _) = decoder([
            1: shippedAvroSchema,
            2: #"{"type": "record", "name": "R", "fields": [{"name": "amount", "type": {"type": "array", "items": "int"}}]}"#,
            3: "{not json",
        ])
        let t = Transaction(
            transactionID: "t", cardID: "c", amount: 5, timestamp: Timestamp(microseconds: 1_700_000_000_000_000), merchantID: "m"
        )
        let good = AvroWriter.shipped(t, id: 1)
        func problem(_ payload: [UInt8]) throws -> String {
            switch try decode(avro, payload) {
            case .success(let t): return "decoded \(t)"
            case .failure(let e): return e.description
            }
        }
        #expect(try problem(Array(good.dropLast())).contains("ends early"))
        #expect(try problem(good + [0]).contains("bytes follow the record"))
        #expect(try problem([0, 0, 0, 0, 9] + good.dropFirst(5)).contains("schema id 9 is not in the registry"))
        #expect(try problem([0, 0, 0, 0, 2, 2, 2, 0]).contains("an array where schema v1 has a scalar"))
        #expect(try problem([0, 0, 0, 0, 3]).contains("schema id 3 is not a schema Cardwatch reads"))
        #expect(try problem([0, 0, 1]).contains("not the Confluent wire format"))
        // A valid Avro record whose values schema v1 refuses: the validator's own reasons.
        var invalid = t
        invalid.amount = -5
        #expect(try problem(AvroWriter.shipped(invalid, id: 1)).contains("amount"))
        for micros in [Int64.max, Int64.min, -1] {
            var far = t
            far.timestamp = Timestamp(microseconds: micros)
            #expect(try problem(AvroWriter.shipped(far, id: 1)).contains("timestamp"), "\(micros)")
        }
        let none = ConfluentAvroDecoder(source: nil)
        #expect(
            try none.json(good)
                == .failure(
                    ConfluentAvroDecoder.issue("schema id 1: Avro records need a schema registry (--schema-registry URL)")))
    }

    @Test func anUnreachableRegistryFailsTheCallRatherThanTheRecord() throws {
        let (avro, source) = decoder([1: shippedAvroSchema], down: [1])
        let t = Transaction(
            transactionID: "t", cardID: "c", amount: 5, timestamp: Timestamp(microseconds: 1_700_000_000_000_000), merchantID: "m"
        )
        #expect(throws: SchemaLookupFailure.self) { try avro.json(AvroWriter.shipped(t, id: 1)) }
        #expect(throws: SchemaLookupFailure.self) { try avro.json(AvroWriter.shipped(t, id: 1)) }
        #expect(source.asked.withLock { $0 } == 2, "a failure that may pass is not cached")
    }

    @Test func unknownIdsAreAskedAgainOnlyAfterAMinute() throws {
        let clock = Locked<Int64>(0)
        let source = SchemasInMemory(schemas: [:])
        let avro = ConfluentAvroDecoder(source: source) { clock.withLock { $0 } }
        for _ in 0..<5 { _ = try avro.json([0, 0, 0, 0, 5, 1]) }
        #expect(source.asked.withLock { $0 } == 1)
        clock.withLock { $0 = 61_000_000 }
        _ = try avro.json([0, 0, 0, 0, 5, 1])
        #expect(source.asked.withLock { $0 } == 2)
    }

    /// A producer writing records with ever new schema ids that nobody registered holds no
    /// memory without bound: the decoder forgets the unreadable ones beyond its limit.
    @Test func unknownSchemaIdsAreRememberedWithinABound() throws {
        let (avro, source) = decoder([1: shippedAvroSchema])
        let t = Transaction(
            transactionID: "t", cardID: "c", amount: 5, timestamp: Timestamp(microseconds: 1_700_000_000_000_000),
            merchantID: "m")
        _ = try avro.json(AvroWriter.shipped(t, id: 1))
        for id in Int32(2)...Int32(ConfluentAvroDecoder.maxEntries * 3) {
            _ = try avro.json([0] + withUnsafeBytes(of: UInt32(bitPattern: id).bigEndian) { Array($0) } + [1])
        }
        #expect(avro.cache.withLock { $0.count } <= ConfluentAvroDecoder.maxEntries)
        let asked = source.asked.withLock { $0 }
        #expect(try avro.json(AvroWriter.shipped(t, id: 1)).flatMap { decodeJSON($0) } == .success(t))
        #expect(source.asked.withLock { $0 } == asked, "a registered schema is kept")
    }

    /// Hostile bytes: any mutation or truncation of a valid record, and random tails, either
    /// decode or fail with a reason; nothing traps, loops or allocates beyond the input.
    @Test func randomBytesNeverTrap() async throws {
        let (avro, _) = decoder([1: shippedAvroSchema, 2: foreignAvroSchema])
        let cases = Generator<([UInt8], Int32), Shrink.None<([UInt8], Int32)>> { rng in
            let t = Rand.transaction(using: &rng)
            var bytes = AvroWriter.shipped(t, id: 1)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 5..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 1: bytes = Array(bytes.prefix(Int.random(in: 5...bytes.count, using: &rng)))
            default:
                bytes =
                    Array(bytes.prefix(5))
                    + (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            return (bytes, Int32.random(in: 1...2, using: &rng))
        }
        await propertyCheck(count: 3000, input: cases) { input in
            var (bytes, id) = input
            bytes[4] = UInt8(id)
            _ = try? decode(avro, bytes)
        }
    }

    @Test func schemasThatCannotBeParsedSayWhy() {
        func why(_ text: String) -> String {
            do {
                _ = try AvroSchema.parse(text)
                return "parsed"
            } catch { return error.description }
        }
        #expect(
            why(#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Missing"}]}"#).contains(
                "'Missing' is not defined"))
        #expect(why(#"{"type": "enum", "name": "E", "symbols": []}"#).contains("no symbols"))
        #expect(why(#"[]"#).contains("no branches"))
        let deep = String(repeating: #"{"type": "array", "items": "#, count: 40) + #""int""# + String(repeating: "}", count: 40)
        #expect(why(deep).contains("deeper than"))
        // A record that refers to itself parses (and reads, through its union).
        #expect(why(#"{"type": "record", "name": "L", "fields": [{"name": "next", "type": ["null", "L"]}]}"#) == "parsed")
    }
}
