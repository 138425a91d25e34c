import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

// MARK: - Naive references

func isLeapYear(_ y: Int) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }

func naiveDaysInMonth(_ year: Int, _ month: Int) -> Int {
    [31, isLeapYear(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
}

/// Days from 1970-01-01 to a proleptic Gregorian date, counted one year and one month at a time.
func naiveDays(year: Int, month: Int, day: Int) -> Int {
    var days = 0
    if year >= 1970 {
        for y in 1970..<year { days += isLeapYear(y) ? 366 : 365 }
    } else {
        for y in year..<1970 { days -= isLeapYear(y) ? 366 : 365 }
    }
    for m in 1..<month { days += naiveDaysInMonth(year, m) }
    return days + day - 1
}

let naiveMinMicros = Int64(naiveDays(year: 1, month: 1, day: 1)) * 86_400_000_000
let naiveMaxMicros = Int64(naiveDays(year: 10_000, month: 1, day: 1)) * 86_400_000_000 - 1

func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}

/// The fields of an RFC 3339 date-time, to build its text and compute its instant independently.
struct DateTimeFields: Sendable, CustomStringConvertible {
    var year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0
    var fraction = ""  // digits after the point; empty for none
    var offsetMinutes: Int? = nil  // nil for "Z"
    var lowercase = false

    var text: String {
        var s = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))\(lowercase ? "t" : "T")"
        s += "\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
        if !fraction.isEmpty { s += "." + fraction }
        if let o = offsetMinutes {
            s += "\(o < 0 ? "-" : "+")\(pad(abs(o) / 60, 2)):\(pad(abs(o) % 60, 2))"
        } else {
            s += lowercase ? "z" : "Z"
        }
        return s
    }

    /// The instant by hand: whole days, seconds of the day, less the offset, plus six fraction digits;
    /// nil for a date or time that does not exist.
    var expectedMicros: Int64? {
        guard (1...12).contains(month), (1...naiveDaysInMonth(year, month)).contains(day), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let seconds =
            Int64(naiveDays(year: year, month: month, day: day)) * 86_400
            + Int64(hour * 3600 + minute * 60 + second) - Int64((offsetMinutes ?? 0) * 60)
        let micros = Int64((fraction + "000000").prefix(6))!
        let value = seconds * 1_000_000 + micros
        return (naiveMinMicros...naiveMaxMicros).contains(value) ? value : nil
    }

    var description: String { text }
}

let dateTimeFields = Generator<DateTimeFields, Shrink.None<DateTimeFields>> { rng in
    var f = DateTimeFields()
    f.year = Int.random(in: 1...9999, using: &rng)
    if Int.random(in: 0..<5, using: &rng) == 0 {
        // Now and then a field at or just past its limit: month 13, February 29 in a common year, second 60...
        f.year = [1900, 2000, 2023, 2024, 2100, f.year].randomElement(using: &rng)!
        f.month = [0, 2, 2, 2, 4, 13, Int.random(in: 1...12, using: &rng)].randomElement(using: &rng)!
        f.day = [0, 28, 29, 30, 31, 32, Int.random(in: 1...28, using: &rng)].randomElement(using: &rng)!
        f.hour = Int.random(in: 0...24, using: &rng)
        f.minute = Int.random(in: 0...60, using: &rng)
        f.second = Int.random(in: 0...60, using: &rng)
    } else {
        f.month = Int.random(in: 1...12, using: &rng)
        f.day = Int.random(in: 1...naiveDaysInMonth(f.year, f.month), using: &rng)
        f.hour = Int.random(in: 0...23, using: &rng)
        f.minute = Int.random(in: 0...59, using: &rng)
        f.second = Int.random(in: 0...59, using: &rng)
    }
    let digits = [0, 0, 1, 3, 6, 6, 9].randomElement(using: &rng)!
    f.fraction = String((0..<digits).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
    if Bool.random(using: &rng) { f.offsetMinutes = Int.random(in: -(23 * 60 + 59)...(23 * 60 + 59), using: &rng) }
    f.lowercase = Int.random(in: 0..<4, using: &rng) == 0
    return f
}

let anyInstant = Generator<Timestamp, Shrink.None<Timestamp>> { rng in Rand.timestamp(using: &rng) }

func parse(_ text: String) -> Timestamp? { Timestamp(rfc3339: text) }

/// Foundation's parser, correct from the Gregorian reform on (it is Julian before 1582-10-15).
func foundationSeconds(_ text: String) -> Int64? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text).map { Int64($0.timeIntervalSince1970.rounded(.down)) }
}

@Suite struct TimestampTests {
    @Test func writtenTextParsesBackToTheSameInstant() async {
        await propertyCheck(count: 1000, input: anyInstant) { t in
            var bytes: [UInt8] = []
            t.write(to: &bytes)
            let back = bytes.withUnsafeBytes { Timestamp.parse($0) }
            #expect(back == t, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(Timestamp(rfc3339: t.rfc3339) == t)
            // Fraction digits only when needed: none, 3 or 6.
            let micros = t.microseconds.floorMod(1_000_000)
            let expectedLength = micros == 0 ? 20 : micros % 1000 == 0 ? 24 : 27
            #expect(bytes.count == expectedLength, "\(t.rfc3339)")
        }
    }

    @Test func parseAgreesWithAHandComputation() async {
        await propertyCheck(count: 1000, input: dateTimeFields) { f in
            #expect(parse(f.text)?.microseconds == f.expectedMicros, "\(f.text)")
        }
    }

    @Test func parseAndWriteAgreeWithFoundationAfterTheGregorianReform() async {
        let modern = dateTimeFields.filter { $0.expectedMicros != nil }.map { f -> DateTimeFields in
            var f = f
            f.year = 1583 + f.year % (9999 - 1583)
            f.day = min(f.day, naiveDaysInMonth(f.year, f.month))
            f.fraction = ""
            f.lowercase = false
            return f
        }
        await propertyCheck(count: 300, input: modern) { f in
            guard let reference = foundationSeconds(f.text) else {
                Issue.record("Foundation refused \(f.text)")
                return
            }
            let t = parse(f.text)
            #expect(t?.microseconds == reference * 1_000_000, "\(f.text)")
            // Written back in UTC, the text is what Foundation writes for the same instant.
            if let t, reference >= Int64(naiveDays(year: 1583, month: 1, day: 1)) * 86_400 {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime]
                #expect(t.rfc3339 == formatter.string(from: Date(timeIntervalSince1970: Double(reference))))
            }
        }
    }

    @Test func offsetsConvertToUTC() {
        #expect(parse("2026-03-01T17:30:00+05:30") == parse("2026-03-01T12:00:00Z"))
        #expect(parse("2026-02-28T20:00:00-08:00") == parse("2026-03-01T04:00:00Z"))
        #expect(parse("2026-03-01T00:15:00.5+00:30") == parse("2026-02-28T23:45:00.5Z"))
        #expect(parse("2026-03-01T12:00:00-00:00") == parse("2026-03-01T12:00:00Z"))
        let utc = parse("2026-03-01T12:00:00Z")!
        #expect(parse("2026-03-01T17:30:00+05:30")!.seconds(since: utc) == 0)
        #expect(parse("2026-03-01T12:00:00+05:30")!.seconds(since: utc) == -5.5 * 3600)
        #expect(parse("2026-03-01T12:00:00-08:00")!.seconds(since: utc) == 8 * 3600)
    }

    @Test func lowercaseSeparatorAndZoneAreAccepted() {
        #expect(parse("2026-03-01t12:30:00z") == parse("2026-03-01T12:30:00Z"))
        #expect(parse("2026-03-01t12:30:00.25Z") == parse("2026-03-01T12:30:00.250z"))
        #expect(parse("2026-03-01t12:30:00z") != nil)
    }

    @Test func extraFractionDigitsAreTruncatedToMicroseconds() {
        let t = parse("2026-03-01T12:30:00.123456789Z")
        #expect(t == parse("2026-03-01T12:30:00.123456Z"))
        #expect(t?.microseconds.floorMod(1_000_000) == 123_456)
        #expect(parse("2026-03-01T12:30:00.1Z")?.microseconds.floorMod(1_000_000) == 100_000)
    }

    @Test func theWholeRangeOfYearsIsAccepted() {
        #expect(parse("0001-01-01T00:00:00Z")?.microseconds == naiveMinMicros)
        #expect(parse("9999-12-31T23:59:59.999999Z")?.microseconds == naiveMaxMicros)
        #expect(parse("2024-02-29T00:00:00Z") != nil)
        #expect(parse("2000-02-29T00:00:00Z") != nil)
        #expect(parse("1970-01-01T00:00:00Z")?.microseconds == 0)
    }

    @Test(arguments: [
        "2026-03-01T12:30:00",  // missing zone
        "2026-03-01T12:30:00.250",  // missing zone after a fraction
        "2026-13-01T12:00:00Z",  // month 13
        "2026-00-10T12:00:00Z",  // month 0
        "2026-02-30T12:00:00Z",  // February 30
        "2026-04-31T12:00:00Z",  // April 31
        "2026-03-00T12:00:00Z",  // day 0
        "2023-02-29T12:00:00Z",  // not a leap year
        "1900-02-29T12:00:00Z",  // century, not a leap year
        "2026-03-01T24:00:00Z",  // hour 24
        "2026-03-01T12:60:00Z",  // minute 60
        "2016-12-31T23:59:60Z",  // leap second
        "2026-03-01T12:00:00.Z",  // empty fraction
        "2026-03-01T12:00:00Zjunk",  // trailing garbage
        "2026-03-01T12:00:00Z ",
        " 2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00+05:30x",
        "2026-03-01T12:00:00+0530",
        "2026-03-01T12:00:00+05",
        "2026-03-01T12:00:00+24:00",
        "2026-03-01T12:00:00+05:60",
        "2026-03-01T12:00:00 +05:30",
        "2026-03-01",  // too short
        "2026-03-01T12:00Z",
        "",
        "2026-03-01 12:00:00Z",
        "2026/03/01T12:00:00Z",
        "2026-3-01T12:00:00Z",
        "0000-01-01T00:00:00Z",  // year 0
        "0001-01-01T00:30:00+01:00",  // before year 1 in UTC
        "9999-12-31T23:30:00-01:00",  // after year 9999 in UTC
        "２０２６-03-01T12:00:00Z",
        "2026-03-01T12:00:00.12a4Z",
    ])
    func rejectsInvalidText(_ text: String) {
        #expect(parse(text) == nil)
    }

    @Test func everyProperPrefixOfAValidTextIsRejected() async {
        await propertyCheck(count: 200, input: dateTimeFields.filter { $0.expectedMicros != nil }) { f in
            let text = Array(f.text.utf8)
            for n in 0..<text.count {
                let prefix = Array(text[..<n])
                #expect(prefix.withUnsafeBytes { Timestamp.parse($0) } == nil, "\(String(decoding: prefix, as: UTF8.self))")
            }
        }
    }

    @Test func randomAndMutatedBytesNeverCrashTheParser() async {
        let mutatedTexts = Generator<[UInt8], Shrink.None<[UInt8]>> { rng in
            var bytes: [UInt8]
            if Bool.random(using: &rng) {
                bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                    Array("0123456789-:.TtZz+ ".utf8).randomElement(using: &rng)!
                }
            } else {
                bytes = Array(Rand.timestamp(using: &rng).rfc3339.utf8)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            return bytes
        }
        await propertyCheck(count: 3000, input: mutatedTexts) { bytes in
            guard let t = bytes.withUnsafeBytes({ Timestamp.parse($0) }) else { return }
            #expect((naiveMinMicros...naiveMaxMicros).contains(t.microseconds))
            #expect(Timestamp(rfc3339: t.rfc3339) == t)
        }
    }

    @Test func hourAndDayOfWeekAgreeWithFoundation() async {
        let cases = zip(anyInstant, Gen.int(in: -18 * 60...18 * 60)).filter { t, _ in
            t.microseconds > Int64(naiveDays(year: 1583, month: 1, day: 3)) * 86_400_000_000
        }
        await propertyCheck(count: 500, input: cases) { t, offset in
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(secondsFromGMT: offset * 60)!
            let date = Date(timeIntervalSince1970: Double(t.microseconds.floorDiv(1_000_000)))
            let c = calendar.dateComponents([.hour, .weekday], from: date)
            #expect(t.hourOfDay(offsetSeconds: Int64(offset * 60)) == c.hour)
            #expect(t.dayOfWeek(offsetSeconds: Int64(offset * 60)) == (c.weekday! + 5) % 7)  // Sunday 1 → 6
        }
    }

    @Test func arithmeticInSeconds() async {
        await propertyCheck(count: 500, input: anyInstant, Gen.int64(in: -1_000_000_000_000...1_000_000_000_000)) {
            t, delta in
            let later = t + Double(delta) / 1_000_000
            #expect(later.microseconds == t.microseconds + delta)
            #expect(later.seconds(since: t) == Double(delta) / 1_000_000)
            #expect((later > t) == (delta > 0))
        }
        #expect(Timestamp(seconds: 1.5).microseconds == 1_500_000)
        #expect(Timestamp(microseconds: -2_500_000).seconds == -2.5)
    }
}
