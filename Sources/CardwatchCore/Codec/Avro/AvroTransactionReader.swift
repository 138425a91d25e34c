// Avro binary (Apache Avro 1.11 specification, "Binary Encoding") → a schema v1 JSON record,
// which the JSON decoder then validates: an Avro record gets exactly the checks, messages and
// dead-letter reasons of a JSON one. The writer's record is matched to schema v1 by field
// name (Avro's schema resolution for records), so a writer may order its fields as it likes,
// add fields (read and skipped) and leave optional ones out; the type of each value is checked
// by the validator, as it is for JSON.

/// Reads Avro-encoded transactions written with a record schema.
public enum AvroTransactionReader {
    /// The schema v1 fields, by name: a value of a type schema v1 cannot hold (an array, a
    /// map, a record) in one of these is an error, in any other field it is skipped.
    static let knownFields: Set<String> = Set(TransactionField.allCases.map(\.name))

    /// The record in `body`, written with `schema`, as one JSON object (no newline).
    public static func json(_ body: ArraySlice<UInt8>, writer schema: AvroSchema) throws(AvroError) -> [UInt8] {
        guard case .record(let name, let fields) = schema.kind else {
            throw AvroError("the writer's schema is a \(schema.typeName), not a record")
        }
        var input = AvroInput(body)
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for field in fields {
            let known = knownFields.contains(field.name)
            let start = out.count
            if !first { out.append(UInt8(ascii: ",")) }
            TransactionEncoder.appendJSONString(field.name, to: &out)
            out.append(UInt8(ascii: ":"))
            let wrote: Bool
            do {
                wrote = try value(field.type, &input, &out, known: known, depth: 0)
            } catch {
                throw AvroError("field \(field.name) of \(name): \(error.description)")
            }
            if wrote { first = false } else { out.removeSubrange(start...) }
        }
        guard input.isAtEnd else {
            throw AvroError("\(input.remaining) bytes follow the record: it was not written with this schema")
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Reads one value; writes it as JSON when it is a scalar schema v1 can hold (returns false
    /// for a null or a skipped value, which leaves the member out).
    static func value(
        _ schema: AvroSchema, _ input: inout AvroInput, _ out: inout [UInt8], known: Bool, depth: Int
    ) throws(AvroError) -> Bool {
        guard depth < AvroSchema.maxDepth else { throw AvroError("values nest deeper than \(AvroSchema.maxDepth)") }
        switch schema.kind {
        case .null:
            return false
        case .boolean:
            let b = try input.byte()
            guard b <= 1 else { throw AvroError("a boolean byte is \(b), not 0 or 1") }
            out.append(contentsOf: (b == 1 ? "true" : "false").utf8)
        case .int, .long:
            let v = try input.long()
            switch schema.logical {
            case .timestampMillis:
                let (micros, overflow) = v.multipliedReportingOverflow(by: 1000)
                guard !overflow else { throw AvroError("timestamp-millis \(v) is out of range") }
                try writeInstant(micros, &out)
            case .timestampMicros: try writeInstant(v, &out)
            case .decimal(let scale): TransactionEncoder.appendNumber(Double(v) / pow10(scale), to: &out)
            case nil: out.append(contentsOf: String(v).utf8)
            }
        case .float:
            try writeDouble(Double(Float(bitPattern: UInt32(truncatingIfNeeded: input.fixedWidth(4)))), &out)
        case .double:
            try writeDouble(Double(bitPattern: input.fixedWidth(8)), &out)
        case .string:
            let bytes = try input.bytes()
            guard let s = String(validating: bytes, as: UTF8.self) else { throw AvroError("a string is not UTF-8") }
            TransactionEncoder.appendJSONString(s, to: &out)
        case .bytes:
            let bytes = try input.bytes()
            return try unscaled(bytes, schema, &out, known: known)
        case .fixed(_, let size):
            let bytes = try input.take(size)
            return try unscaled(bytes, schema, &out, known: known)
        case .enumeration(let name, let symbols):
            let i = try input.long()
            guard i >= 0, i < symbols.count else { throw AvroError("enum \(name) has no symbol \(i)") }
            TransactionEncoder.appendJSONString(symbols[Int(i)], to: &out)
        case .union(let branches):
            let i = try input.long()
            guard i >= 0, i < branches.count else { throw AvroError("the union has no branch \(i)") }
            return try value(branches[Int(i)], &input, &out, known: known, depth: depth + 1)
        case .record(let name, let fields):
            if known { throw AvroError("a record (\(name)) where schema v1 has a scalar") }
            for f in fields { _ = try skip(f.type, &input, depth: depth + 1) }
            return false
        case .array(let items):
            if known { throw AvroError("an array where schema v1 has a scalar") }
            try blocks(&input, depth: depth) { (input: inout AvroInput) throws(AvroError) in
                try skip(items, &input, depth: depth + 1)
            }
            return false
        case .map(let values):
            if known { throw AvroError("a map where schema v1 has a scalar") }
            try blocks(&input, depth: depth) { (input: inout AvroInput) throws(AvroError) in
                _ = try input.bytes()
                try skip(values, &input, depth: depth + 1)
            }
            return false
        }
        return true
    }

    /// Reads and drops a value (a field schema v1 does not know).
    static func skip(_ schema: AvroSchema, _ input: inout AvroInput, depth: Int) throws(AvroError) {
        var sink: [UInt8] = []
        _ = try value(schema, &input, &sink, known: false, depth: depth)
    }

    /// The items of an array or a map: blocks of a count (negative: followed by the block's size
    /// in bytes), ending with a block of 0.
    static func blocks(
        _ input: inout AvroInput, depth: Int, item: (inout AvroInput) throws(AvroError) -> Void
    ) throws(AvroError) {
        while true {
            var count = try input.long()
            if count == 0 { return }
            if count < 0 {
                guard count != .min else { throw AvroError("a block count is out of range") }
                count = -count
                _ = try input.long()
            }
            // A count beyond the bytes left is refused before looping on it (a hostile count
            // would spin for ever): only arrays of nulls or empty records could be that long.
            guard count <= Int64(input.remaining) else {
                throw AvroError("a block of \(count) items in \(input.remaining) bytes")
            }
            for _ in 0..<count { try item(&input) }
        }
    }

    /// Bytes or fixed: a decimal's two's-complement big-endian unscaled value; anything else is
    /// not a value schema v1 holds.
    static func unscaled(
        _ bytes: ArraySlice<UInt8>, _ schema: AvroSchema, _ out: inout [UInt8], known: Bool
    ) throws(AvroError) -> Bool {
        guard case .decimal(let scale) = schema.logical else {
            if known { throw AvroError("\(schema.typeName) where schema v1 has a scalar") }
            return false
        }
        guard bytes.count <= 8 else { throw AvroError("a decimal of \(bytes.count) bytes (at most 8 are read)") }
        var v: Int64 = bytes.first.map { $0 >= 0x80 ? -1 : 0 } ?? 0
        for b in bytes { v = (v << 8) | Int64(b) }
        TransactionEncoder.appendNumber(Double(v) / pow10(scale), to: &out)
        return true
    }

    static func pow10(_ scale: Int) -> Double {
        var p = 1.0
        for _ in 0..<scale { p *= 10 }
        return p
    }

    /// An instant as RFC 3339; one outside the years 1–9999 (which RFC 3339 cannot write) is an error.
    static func writeInstant(_ micros: Int64, _ out: inout [UInt8]) throws(AvroError) {
        guard micros >= Timestamp.minMicroseconds, micros <= Timestamp.maxMicroseconds else {
            throw AvroError("the instant \(micros) µs since 1970 is outside the years 1–9999")
        }
        out.append(UInt8(ascii: "\""))
        Timestamp(microseconds: micros).write(to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// JSON has no NaN or infinity: they are written as strings, which the validator refuses as
    /// not a number (the record's dead letter then names the field).
    static func writeDouble(_ v: Double, _ out: inout [UInt8]) throws(AvroError) {
        if v.isFinite {
            TransactionEncoder.appendNumber(v, to: &out)
        } else {
            TransactionEncoder.appendJSONString(v.isNaN ? "NaN" : v > 0 ? "Infinity" : "-Infinity", to: &out)
        }
    }
}

/// A cursor over Avro binary data; every read checks what is left.
struct AvroInput {
    let data: ArraySlice<UInt8>
    var at: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.data = bytes
        self.at = bytes.startIndex
    }

    var remaining: Int { data.endIndex - at }
    var isAtEnd: Bool { at == data.endIndex }

    mutating func byte() throws(AvroError) -> UInt8 {
        guard at < data.endIndex else { throw AvroError("the record ends early") }
        defer { at += 1 }
        return data[at]
    }

    /// A zig-zag variable-length long (ints are the same encoding, shorter).
    mutating func long() throws(AvroError) -> Int64 {
        var raw: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64, shift < 63 || b & 0x7f <= 1 else { throw AvroError("a variable-length integer is too long") }
            raw |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { break }
            shift += 7
        }
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// `width` bytes, little-endian.
    mutating func fixedWidth(_ width: Int) throws(AvroError) -> UInt64 {
        let b = try take(width)
        var v: UInt64 = 0
        for (i, byte) in b.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
        return v
    }

    mutating func take(_ n: Int) throws(AvroError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw AvroError("the record ends early (\(n) bytes wanted, \(remaining) left)") }
        defer { at += n }
        return data[at..<at + n]
    }

    /// A length-prefixed byte string.
    mutating func bytes() throws(AvroError) -> ArraySlice<UInt8> {
        let n = try long()
        guard n >= 0, n <= Int64(remaining) else { throw AvroError("a length of \(n) with \(remaining) bytes left") }
        return try take(Int(n))
    }
}
