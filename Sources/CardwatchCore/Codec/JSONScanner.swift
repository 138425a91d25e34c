/// Receives the members of a flat JSON object as the scanner finds them.
public protocol JSONFieldSink {
    /// One member: its key's raw UTF-8 (escape-free keys only) and its value.
    mutating func member(key: UnsafeRawBufferPointer, value: RawValue)
    /// Where the member just given lies: from its key's opening quote to the end of its value, and the value alone.
    mutating func memberBytes(_ member: Range<Int>, value: Range<Int>)
}

extension JSONFieldSink {
    public mutating func memberBytes(_ member: Range<Int>, value: Range<Int>) {}
}

/// A hand-written scanner for one flat JSON object per line (JSON Lines).
///
/// Foundation's JSONDecoder builds an intermediate tree and boxes every value;
/// measured in BENCHMARKS.md, this scanner is several times faster and allocates
/// only for strings with escapes. Nested values are accepted (and skipped) only
/// under keys the sink does not know; the scanner never trusts lengths it has not
/// checked, so random bytes can only produce an error, never a crash.
public struct JSONScanner {
    let b: UnsafeRawBufferPointer
    var i = 0
    static let maxDepth = 64

    public init(_ bytes: UnsafeRawBufferPointer) { self.b = bytes }

    /// Scans the whole buffer as one object, feeding each member to `sink`.
    public static func scanObject<S: JSONFieldSink>(_ bytes: UnsafeRawBufferPointer, into sink: inout S)
        throws(RecordError)
    {
        var p = JSONScanner(bytes)
        p.skipSpace()
        guard p.i < p.b.count else { throw RecordError(record: "empty line: expected a JSON object") }
        guard p.b[p.i] == UInt8(ascii: "{") else {
            throw p.error("expected a JSON object starting with '{'")
        }
        p.i += 1
        p.skipSpace()
        if p.peek == UInt8(ascii: "}") {
            p.i += 1
        } else {
            while true {
                p.skipSpace()
                guard p.peek == UInt8(ascii: "\"") else { throw p.error("expected a quoted field name") }
                let memberStart = p.i
                let keyStart = p.i + 1
                let key = try p.string()
                let keyBytes: UnsafeRawBufferPointer
                switch key {
                case .string(let span):
                    keyBytes = UnsafeRawBufferPointer(rebasing: p.b[span.start..<span.start + span.count])
                default:
                    // Escaped keys never name a schema field; pass an impossible key.
                    keyBytes = UnsafeRawBufferPointer(rebasing: p.b[keyStart..<keyStart])
                }
                p.skipSpace()
                guard p.peek == UInt8(ascii: ":") else { throw p.error("expected ':' after a field name") }
                p.i += 1
                p.skipSpace()
                let valueStart = p.i
                let value = try p.value(depth: 1)
                sink.member(key: keyBytes, value: value)
                sink.memberBytes(memberStart..<p.i, value: valueStart..<p.i)
                if try p.endOfItem(closing: UInt8(ascii: "}"), in: "object") { break }
            }
        }
        try p.expectEnd(after: "object")
    }

    var peek: UInt8? { i < b.count ? b[i] : nil }

    func error(_ what: String, at position: Int? = nil) -> RecordError {
        RecordError(record: "malformed JSON at byte \((position ?? i) + 1): \(what)")
    }

    mutating func skipSpace() {
        while i < b.count {
            let c = b[i]
            guard c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A else { return }
            i += 1
        }
    }

    /// A scalar value, or a skipped composite one.
    mutating func value(depth: Int) throws(RecordError) -> RawValue {
        guard let c = peek else { throw error("expected a value") }
        switch c {
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            try skipComposite(depth: depth)
            return .composite(c == UInt8(ascii: "{") ? "an object" : "an array")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            let n = JSONNumber.scan(b, from: start)
            guard n.end > start, let v = n.value ?? JSONNumber.slowParse(b, start..<n.end) else {
                throw error("invalid number")
            }
            i = n.end
            return .number(v)
        default:
            throw error("unexpected character '\(Self.printable(c))'")
        }
    }

    static func printable(_ c: UInt8) -> String {
        (0x20..<0x7F).contains(c) ? String(UnicodeScalar(c)) : "\\u{\(String(c, radix: 16))}"
    }

    mutating func literal(_ word: StaticString) throws(RecordError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw error("invalid literal") }
        let w = word.utf8Start
        for k in 0..<n where b[i + k] != w[k] { throw error("invalid literal") }
        i += n
    }

    /// A string value: a span into the input when it has no escapes.
    mutating func string() throws(RecordError) -> RawValue {
        let start = i
        i += 1
        var ascii = true
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let span = Span(start: start + 1, count: i - start - 1)
                i += 1
                if !ascii {
                    let raw = UnsafeRawBufferPointer(rebasing: b[span.start..<span.start + span.count])
                    guard String(validating: raw, as: UTF8.self) != nil else {
                        throw error("string is not valid UTF-8", at: start)
                    }
                }
                return .string(span)
            }
            if c == UInt8(ascii: "\\") { return try escapedString(from: start) }
            if c < 0x20 { throw error("control character inside a string") }
            if c >= 0x80 { ascii = false }
            i += 1
        }
        throw error("unterminated string", at: start)
    }

    private mutating func escapedString(from start: Int) throws(RecordError) -> RawValue {
        var out: [UInt8] = Array(b[(start + 1)..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw error("string is not valid UTF-8", at: start)
                }
                return .unescaped(s)
            }
            if c < 0x20 { throw error("control character inside a string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            guard i + 1 < b.count else { break }
            let e = b[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: String(Character(u)).utf8)
            default:
                throw error("invalid escape '\\\(Self.printable(e))'", at: i - 2)
            }
        }
        throw error("unterminated string", at: start)
    }

    private mutating func hex4() throws(RecordError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - 87
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - 55
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    /// Skips an object or array, checking its syntax, up to `maxDepth` deep.
    private mutating func skipComposite(depth: Int) throws(RecordError) {
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
        let isObject = b[i] == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        i += 1
        skipSpace()
        if peek == close {
            i += 1
            return
        }
        while true {
            skipSpace()
            if isObject {
                guard peek == UInt8(ascii: "\"") else { throw error("expected a quoted field name") }
                _ = try string()
                skipSpace()
                guard peek == UInt8(ascii: ":") else { throw error("expected ':' after a field name") }
                i += 1
                skipSpace()
            }
            _ = try value(depth: depth + 1)
            if try endOfItem(closing: close, in: isObject ? "object" : "array") { return }
        }
    }

    /// After a member or an element: true at the closing bracket, false after a comma (both consumed).
    @inline(__always) mutating func endOfItem(closing close: UInt8, in what: StaticString) throws(RecordError) -> Bool {
        skipSpace()
        guard let c = peek else { throw error("unterminated \(what): expected ',' or '\(Self.printable(close))'") }
        i += 1
        if c == close { return true }
        guard c == UInt8(ascii: ",") else {
            throw error("expected ',' or '\(Self.printable(close))' after a value", at: i - 1)
        }
        return false
    }

    /// After the top-level value: only blank space is left.
    mutating func expectEnd(after what: StaticString) throws(RecordError) {
        skipSpace()
        guard i == b.count else { throw error("unexpected text after the \(what)") }
    }
}

extension JSONScanner {
    /// The byte range of each element of a JSON array (the whole buffer, blank space around
    /// it allowed), checked for syntax like any value, each up to `maxDepth` deep. Elements
    /// stay in the buffer: a request of N bytes costs N bytes plus one span per element, not
    /// a tree of boxed values.
    public static func arrayElements(_ bytes: UnsafeRawBufferPointer) throws(RecordError) -> [Span] {
        var p = JSONScanner(bytes)
        p.skipSpace()
        guard p.peek == UInt8(ascii: "[") else { throw p.error("expected a JSON array starting with '['") }
        p.i += 1
        p.skipSpace()
        var spans: [Span] = []
        if p.peek == UInt8(ascii: "]") {
            p.i += 1
        } else {
            while true {
                p.skipSpace()
                let start = p.i
                _ = try p.value(depth: 1)
                spans.append(Span(start: start, count: p.i - start))
                if try p.endOfItem(closing: UInt8(ascii: "]"), in: "array") { break }
            }
        }
        try p.expectEnd(after: "array")
        return spans
    }

    /// The names given more than once among a JSON object's own members (escapes resolved),
    /// in the order their repeats appear. Throws when the buffer is not one JSON object.
    public static func repeatedMembers(_ bytes: UnsafeRawBufferPointer) throws(RecordError) -> [String] {
        var p = JSONScanner(bytes)
        p.skipSpace()
        guard p.peek == UInt8(ascii: "{") else { throw p.error("expected a JSON object starting with '{'") }
        p.i += 1
        p.skipSpace()
        var seen = Set<String>()
        var repeated: [String] = []
        if p.peek == UInt8(ascii: "}") {
            p.i += 1
        } else {
            while true {
                p.skipSpace()
                guard p.peek == UInt8(ascii: "\"") else { throw p.error("expected a quoted field name") }
                let name: String
                switch try p.string() {
                case .string(let span):
                    name = String(
                        decoding: UnsafeRawBufferPointer(rebasing: p.b[span.start..<span.start + span.count]), as: UTF8.self)
                case .unescaped(let s): name = s
                default: name = ""
                }
                if !seen.insert(name).inserted && !repeated.contains(name) { repeated.append(name) }
                p.skipSpace()
                guard p.peek == UInt8(ascii: ":") else { throw p.error("expected ':' after a field name") }
                p.i += 1
                p.skipSpace()
                _ = try p.value(depth: 1)
                if try p.endOfItem(closing: UInt8(ascii: "}"), in: "object") { break }
            }
        }
        try p.expectEnd(after: "object")
        return repeated
    }
}
