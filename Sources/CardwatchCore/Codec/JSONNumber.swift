/// Decimal number text → Double, exactly as `strtod` rounds it.
///
/// The common case (at most 15 significant digits, a power of ten within 10^±22)
/// is Clinger's fast path: both operands are exact doubles, so one multiply or
/// divide is correctly rounded. Anything else goes to the standard library.
public enum JSONNumber {
    static let powersOfTen: [Double] = (0...22).map { e in
        var v = 1.0
        for _ in 0..<e { v *= 10 }
        return v
    }

    /// Scans the JSON number grammar from `start`. `end == start` means no number;
    /// `value == nil` with a valid `end` means the slow path must parse it.
    public static func scan(_ b: UnsafeRawBufferPointer, from start: Int) -> (end: Int, value: Double?) {
        var i = start
        let n = b.count
        var negative = false
        if i < n, b[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var scale = 0
        guard i < n, b[i] &- 48 < 10 else { return (start, nil) }
        if b[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < n, b[i] &- 48 < 10 {
                if digits < 19 { mantissa = mantissa * 10 + UInt64(b[i] - 48) } else { scale += 1 }
                if mantissa != 0 { digits += 1 }
                i += 1
            }
        }
        if i < n, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < n, b[i] &- 48 < 10 else { return (start, nil) }
            while i < n, b[i] &- 48 < 10 {
                if digits < 19 {
                    mantissa = mantissa * 10 + UInt64(b[i] - 48)
                    scale -= 1
                    if mantissa != 0 { digits += 1 }
                }
                i += 1
            }
        }
        if i < n, b[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            var expNegative = false
            if i < n, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                expNegative = b[i] == UInt8(ascii: "-")
                i += 1
            }
            guard i < n, b[i] &- 48 < 10 else { return (start, nil) }
            var e = 0
            while i < n, b[i] &- 48 < 10 {
                if e < 100_000 { e = e * 10 + Int(b[i] - 48) }
                i += 1
            }
            scale += expNegative ? -e : e
        }
        guard digits <= 15, scale >= -22, scale <= 22 else { return (i, mantissa == 0 ? (negative ? -0.0 : 0) : nil) }
        var v = Double(mantissa)
        v = scale < 0 ? v / powersOfTen[-scale] : v * powersOfTen[scale]
        return (i, negative ? -v : v)
    }

    /// The standard library's correctly rounded parse, for what the fast path declines.
    public static func slowParse(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Double? {
        Double(String(decoding: UnsafeRawBufferPointer(rebasing: b[range]), as: UTF8.self))
    }

    /// Parses a whole text cell (CSV) as a JSON-grammar number.
    public static func parse(_ b: UnsafeRawBufferPointer) -> Double? {
        let r = scan(b, from: 0)
        guard r.end == b.count, r.end > 0 else { return nil }
        return r.value ?? slowParse(b, 0..<r.end)
    }
}
