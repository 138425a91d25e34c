#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An instant in event time: microseconds since 1970-01-01T00:00:00Z.
///
/// Integer microseconds keep windows exact and comparisons cheap; RFC 3339 text is
/// parsed and written by hand because Foundation's date formatters allocate and
/// are an order of magnitude slower than the budget allows.
public struct Timestamp: Hashable, Comparable, Sendable {
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }
    public init(seconds: Double) { self.microseconds = Int64((seconds * 1_000_000).rounded()) }

    public var seconds: Double { Double(microseconds) / 1_000_000 }

    /// The wall clock, now.
    public static var now: Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }

    public static func + (t: Timestamp, seconds: Double) -> Timestamp {
        Timestamp(microseconds: t.microseconds + Int64((seconds * 1_000_000).rounded()))
    }

    /// Seconds from `other` to `self` (positive when `self` is later).
    public func seconds(since other: Timestamp) -> Double {
        Double(microseconds - other.microseconds) / 1_000_000
    }

    /// Parses an RFC 3339 date-time such as `2026-03-01T12:30:05.250Z` or
    /// `2026-03-01T14:30:05+02:00`; returns nil when `text` is not one.
    public init?(rfc3339 text: String) {
        var text = text
        let parsed = text.withUTF8 { Timestamp.parse(UnsafeRawBufferPointer($0)) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// The RFC 3339 text in UTC, with milliseconds or microseconds only when needed.
    public var rfc3339: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(27)
        write(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Calendar arithmetic (proleptic Gregorian, UTC)

extension Timestamp {
    /// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    @inlinable
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    @inlinable
    public static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Hour of day (0–23) in UTC shifted by `offsetSeconds` (a time zone, or solar time).
    public func hourOfDay(offsetSeconds: Int64 = 0) -> Int {
        let s = microseconds.floorDiv(1_000_000) + offsetSeconds
        return Int(s.floorMod(86_400) / 3_600)
    }

    /// Day of week, 0 = Monday … 6 = Sunday, in UTC shifted by `offsetSeconds`.
    public func dayOfWeek(offsetSeconds: Int64 = 0) -> Int {
        let s = microseconds.floorDiv(1_000_000) + offsetSeconds
        let days = s.floorDiv(86_400)
        return Int((days + 3).floorMod(7))  // 1970-01-01 was a Thursday
    }
}

extension Int64 {
    @inlinable func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
    @inlinable func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}

// MARK: - RFC 3339 parsing and writing

extension Timestamp {
    /// Earliest and latest instants accepted: years 0001 to 9999.
    static let minMicroseconds = Int64(daysFromCivil(year: 1, month: 1, day: 1)) * 86_400_000_000
    static let maxMicroseconds = Int64(daysFromCivil(year: 10_000, month: 1, day: 1)) * 86_400_000_000 - 1

    /// Parses `YYYY-MM-DD(T|t)hh:mm:ss[.fraction](Z|z|±hh:mm)` from raw UTF-8.
    /// Leap seconds (`:60`) are refused: no downstream clock can represent them.
    public static func parse(_ b: UnsafeRawBufferPointer) -> Timestamp? {
        let n = b.count
        guard n >= 20 else { return nil }
        @inline(__always) func digit(_ i: Int) -> Int? {
            let c = b[i] &- 48
            return c < 10 ? Int(c) : nil
        }
        @inline(__always) func two(_ i: Int) -> Int? {
            guard let h = digit(i), let l = digit(i + 1) else { return nil }
            return h * 10 + l
        }
        guard let y1 = two(0), let y2 = two(2), b[4] == 0x2D, let month = two(5), b[7] == 0x2D,
            let day = two(8), b[10] == 0x54 || b[10] == 0x74, let hour = two(11), b[13] == 0x3A,
            let minute = two(14), b[16] == 0x3A, let second = two(17)
        else { return nil }
        let year = y1 * 100 + y2
        guard year >= 1, (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month),
            hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19
        var micros = 0
        if b[i] == 0x2E {  // fraction: at least one digit, keep six, ignore the rest
            i += 1
            var digits = 0
            while i < n, let d = digit(i) {
                if digits < 6 { micros = micros * 10 + d }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            var k = digits
            while k < 6 {
                micros *= 10
                k += 1
            }
        }
        guard i < n else { return nil }
        var offsetSeconds = 0
        switch b[i] {
        case 0x5A, 0x7A:
            i += 1
        case 0x2B, 0x2D:
            guard i + 6 == n, let oh = two(i + 1), b[i + 3] == 0x3A, let om = two(i + 4), oh < 24, om < 60
            else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == n else { return nil }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        let value = secs * 1_000_000 + Int64(micros)
        guard value >= minMicroseconds, value <= maxMicroseconds else { return nil }
        return Timestamp(microseconds: value)
    }

    /// Appends the UTC RFC 3339 form; fraction digits only when the instant has them.
    @inlinable
    public func write(to out: inout [UInt8]) {
        let secs = microseconds.floorDiv(1_000_000)
        let micros = Int(microseconds - secs * 1_000_000)
        let days = Int(secs.floorDiv(86_400))
        let sod = Int(secs - Int64(days) * 86_400)
        let (y, mo, d) = Timestamp.civilFromDays(days)
        @inline(__always) func put2(_ v: Int) {
            out.append(UInt8(48 + v / 10))
            out.append(UInt8(48 + v % 10))
        }
        put2(y / 100)
        put2(y % 100)
        out.append(0x2D)
        put2(mo)
        out.append(0x2D)
        put2(d)
        out.append(0x54)
        put2(sod / 3600)
        out.append(0x3A)
        put2(sod / 60 % 60)
        out.append(0x3A)
        put2(sod % 60)
        if micros != 0 {
            out.append(0x2E)
            var v = micros
            var width = 6
            if v % 1000 == 0 {
                v /= 1000
                width = 3
            }
            var div = width == 3 ? 100 : 100_000
            while div > 0 {
                out.append(UInt8(48 + v / div % 10))
                div /= 10
            }
        }
        out.append(0x5A)
    }
}
