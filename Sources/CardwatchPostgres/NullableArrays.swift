import NIOCore
import PostgresNIO

/// A `float8[]` parameter whose NaN elements are sent as NULL: postgres-nio encodes arrays of
/// non-optional elements only, and `NULLIF(x, 'NaN')` on each of silver's 29 feature columns
/// cost the server a third of the insert. The array's binary format: dimensions, a null flag,
/// the element type, the length and lower bound, then each element's length (-1: NULL) and bytes.
struct NaNAsNullFloat8Array: PostgresNonThrowingEncodable {
    var values: [Double]
    static var psqlType: PostgresDataType { .float8Array }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(
        into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        buffer.writeInteger(Int32(1))  // dimensions
        buffer.writeInteger(Int32(values.contains { $0.isNaN } ? 1 : 0))
        buffer.writeInteger(PostgresDataType.float8.rawValue)
        buffer.writeInteger(Int32(values.count))
        buffer.writeInteger(Int32(1))  // lower bound
        for v in values {
            if v.isNaN {
                buffer.writeInteger(Int32(-1))
            } else {
                buffer.writeInteger(Int32(8))
                buffer.writeInteger(v.bitPattern)
            }
        }
    }
}

/// A `text[]` parameter with NULL elements (nil), in the array's binary format.
struct NullableTextArray: PostgresNonThrowingEncodable {
    var values: [String?]
    static var psqlType: PostgresDataType { .textArray }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(
        into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        buffer.writeInteger(Int32(1))
        buffer.writeInteger(Int32(values.contains(nil) ? 1 : 0))
        buffer.writeInteger(PostgresDataType.text.rawValue)
        buffer.writeInteger(Int32(values.count))
        buffer.writeInteger(Int32(1))
        for v in values {
            if let v {
                buffer.writeInteger(Int32(v.utf8.count))
                buffer.writeString(v)
            } else {
                buffer.writeInteger(Int32(-1))
            }
        }
    }
}
