/// What the validating readers apply beyond the schema's own rules: the key that turns a
/// card number into a card id, and how far from the wall clock an event time may be.
///
/// The schema rules hold everywhere; the wall-clock bounds belong where records enter the
/// live log (HTTP, `cardwatch import`), not to tools that read history (`validate`,
/// `features`, `train`, `evaluate`), which see data sets from any year.
public struct IngestPolicy: Sendable {
    public enum Mode: Sendable, Equatable {
        /// A record arriving from outside: every rule.
        case ingest
        /// A record read back from the transactions log, accepted by the rules of its day:
        /// rules added since (blank ids, card-number look-alikes, amounts below the minor
        /// unit) and `card_number` (never stored) are not applied again, so a log written
        /// before them still replays.
        case log
    }

    public var mode: Mode
    /// Without a key a record with a `card_number` is refused (and dead-lettered).
    public var panKey: PANKey?
    /// nil: any event time the timestamp format allows.
    public var eventTimes: EventTimeBounds?

    public init(mode: Mode = .ingest, panKey: PANKey? = nil, eventTimes: EventTimeBounds? = nil) {
        self.mode = mode
        self.panKey = panKey
        self.eventTimes = eventTimes
    }

    /// Every rule of the schema, no PAN key, no wall-clock bound: files of history.
    public static let offline = IngestPolicy()
    /// How the processor reads the log back.
    public static let log = IngestPolicy(mode: .log)
}

/// How far an event time may be from the wall clock when a record enters the live log.
public struct EventTimeBounds: Sendable, Equatable {
    /// Microseconds an event may lie ahead of the wall clock; nil: no bound.
    public var ahead: Int64?
    /// Microseconds an event may lie behind the wall clock; nil: no bound.
    public var behind: Int64?
    /// The settings that change the bounds, named in the refusal.
    public var aheadSetting: String
    public var behindSetting: String

    public static let day: Int64 = 86_400_000_000
    /// The defaults of the live log: at most 1 day ahead (terminal clocks and time-zone
    /// mistakes stay inside), at most 30 days behind (the longest window of the
    /// features; an older record cannot be scored in context).
    public static let live = EventTimeBounds(ahead: day, behind: 30 * day)

    public init(
        ahead: Int64?, behind: Int64?, aheadSetting: String = "--max-event-lead",
        behindSetting: String = "--max-event-age"
    ) {
        self.ahead = ahead
        self.behind = behind
        self.aheadSetting = aheadSetting
        self.behindSetting = behindSetting
    }

    /// Why `time` is refused at wall-clock time `now` (both µs since 1970), or nil.
    public func problem(_ time: Timestamp, now: Int64) -> String? {
        let t = time.microseconds
        if let ahead, t > now &+ ahead {
            return "\(time.rfc3339) is \(Self.describe(t &- now)) ahead of the wall clock "
                + "(\(Timestamp(microseconds: now).rfc3339)); at most \(Self.describe(ahead)) ahead is accepted "
                + "(\(aheadSetting))"
        }
        if let behind, t < now &- behind {
            return "\(time.rfc3339) is \(Self.describe(now &- t)) behind the wall clock "
                + "(\(Timestamp(microseconds: now).rfc3339)); at most \(Self.describe(behind)) behind is accepted "
                + "(\(behindSetting); a historical import lifts it: cardwatch import --max-event-age none)"
        }
        return nil
    }

    /// Whether an issue is a refusal by these bounds (as `problem` words it).
    public static func isBoundIssue(_ issue: FieldIssue) -> Bool {
        issue.field == TransactionField.timestamp.name && issue.problem.contains(" the wall clock (")
    }

    /// A duration for people: days, hours, minutes or seconds, whichever reads best.
    public static func describe(_ micros: Int64) -> String {
        let s = Double(micros) / 1e6
        func amount(_ v: Double, _ unit: String) -> String {
            let text = v >= 100 || v == v.rounded() ? String(Int64(v.rounded())) : String((v * 10).rounded() / 10)
            return "\(text) \(unit)\(text == "1" ? "" : "s")"
        }
        if s >= 86_400 { return amount(s / 86_400, "day") }
        if s >= 3_600 { return amount(s / 3_600, "hour") }
        if s >= 60 { return amount(s / 60, "minute") }
        return amount(s, "second")
    }

    /// Parses a duration setting: `90s`, `15m`, `12h`, `30d` (a bare number is seconds),
    /// or `none` (nil: no bound). Throws a message naming the setting.
    public static func parseDuration(_ text: String, setting: String) throws(DurationError) -> Int64? {
        if text.lowercased() == "none" { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let u = units[last] {
            unit = u
            number = number.dropLast()
        }
        guard let v = Double(number), v.isFinite, v >= 0, v * unit <= 1e6 * 86_400 else {
            throw DurationError(
                description: "\(setting) '\(text)' is not a duration: write e.g. 90s, 15m, 12h, 30d, or none")
        }
        return Int64((v * unit * 1e6).rounded())
    }

    public struct DurationError: Error, CustomStringConvertible {
        public var description: String
    }
}
