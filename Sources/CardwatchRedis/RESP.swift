public import NIOCore

/// A reply of Redis's protocol (RESP2), as the server sends it.
public enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    /// nil: the null bulk string (a missing value).
    case bulk([UInt8]?)
    /// nil: the null array (e.g. a blocking read that timed out).
    case array([RESPValue]?)

    /// The bulk or simple string's text.
    public var string: String? {
        switch self {
        case .simple(let s): s
        case .bulk(let b?): String(decoding: b, as: UTF8.self)
        default: nil
        }
    }
}

/// A reply that breaks the protocol, or one bigger than a profile store ever sends.
public struct RESPError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The reply decoder: whole replies out of the bytes read so far; an incomplete one waits for
/// more. Bounded, since a reply is held whole in memory: a bulk string of at most 64 MiB, an
/// array of at most 1,000,000 elements, nested at most 8 deep.
struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    static let maxBulk = 64 << 20
    static let maxElements = 1_000_000
    static let maxDepth = 8

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var copy = buffer
        guard let value = try Self.value(&copy, depth: 0) else { return .needMoreData }
        buffer = copy
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// One value from the front of `buffer`, or nil (and `buffer` in an unspecified state) when
    /// its bytes have not all arrived.
    static func value(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = try Self.line(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simple(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let n = Int64(line) else { throw RESPError("an integer reply that is not one: \(line.prefix(40))") }
            return .integer(n)
        case UInt8(ascii: "$"):
            guard let n = Int(line), n >= -1, n <= maxBulk else {
                throw RESPError("a bulk length out of bounds: \(line.prefix(40))")
            }
            if n == -1 { return .bulk(nil) }
            guard buffer.readableBytes >= n + 2, let bytes = buffer.readBytes(length: n) else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPError("a bulk string not ended by CRLF") }
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let n = Int(line), n >= -1, n <= maxElements else {
                throw RESPError("an array length out of bounds: \(line.prefix(40))")
            }
            if n == -1 { return .array(nil) }
            guard depth < maxDepth else { throw RESPError("arrays nested deeper than \(maxDepth)") }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(n, 1024))
            for _ in 0..<n {
                guard let e = try value(&buffer, depth: depth + 1) else { return nil }
                elements.append(e)
            }
            return .array(elements)
        default:
            throw RESPError("an unknown reply type byte \(type)")
        }
    }

    /// The text up to CRLF (at most 64 KiB), or nil before the CRLF has arrived.
    static func line(_ buffer: inout ByteBuffer) throws -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.prefix(65_537).firstIndex(of: 0x0D) else {
            if view.count > 65_536 { throw RESPError("a reply line longer than 64 KiB") }
            return nil
        }
        let next = view.index(after: cr)
        guard next < view.endIndex else { return nil }
        let text = String(decoding: view[view.startIndex..<cr], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: cr - view.startIndex + 2)
        return text
    }

    /// A command as RESP sends it: an array of bulk strings.
    static func encode(_ command: [[UInt8]], into out: inout ByteBuffer) {
        out.writeString("*\(command.count)\r\n")
        for arg in command {
            out.writeString("$\(arg.count)\r\n")
            out.writeBytes(arg)
            out.writeStaticString("\r\n")
        }
    }
}

/// Commands written straight into a buffer in RESP (arrays of bulk strings), for writes of many
/// commands: no array per argument.
public struct RESPWriter {
    public private(set) var buffer = ByteBufferAllocator().buffer(capacity: 64 * 1024)
    public private(set) var count = 0
    public init() {}

    /// Starts a command of `arguments` arguments (its name included).
    public mutating func command(_ arguments: Int) {
        buffer.writeString("*\(arguments)\r\n")
        count += 1
    }

    public mutating func argument(_ text: String) {
        buffer.writeString("$\(text.utf8.count)\r\n")
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    public mutating func argument(_ bytes: [UInt8]) {
        buffer.writeString("$\(bytes.count)\r\n")
        buffer.writeBytes(bytes)
        buffer.writeStaticString("\r\n")
    }

    public mutating func clear() {
        buffer.clear()
        count = 0
    }
}
