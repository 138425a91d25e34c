import Foundation

/// Schema v1 checks: a `RawRecord` becomes a `Transaction`, or a `RecordError`
/// listing every problem of the record, field by field.
public enum TransactionValidator {
    public static let maxIDLength = 64
    public static let maxAmount = 1_000_000_000.0

    /// `policy`: the PAN key and the wall-clock bounds of event times (none by default), and
    /// whether the record comes from outside or back from the log (`IngestPolicy.Mode`).
    public static func validate(
        _ r: RawRecord, in buffer: UnsafeRawBufferPointer, policy: IngestPolicy = .offline
    ) -> Result<Transaction, RecordError> {
        let strict = policy.mode == .ingest
        var v = FieldReader(record: r, buffer: buffer, strict: strict)
        for f in r.repeated { v.issue(f, "given more than once") }

        let id = v.identifier(.transactionID, required: true)
        let withPAN = strict && v.present(.cardNumber)
        var card = v.identifier(.cardID, required: !withPAN)
        if withPAN, let derived = v.cardNumber(key: policy.panKey) {
            if let given = card, given != derived {
                v.issue(
                    .cardID,
                    "differs from the card id derived from card_number (HMAC-SHA256 with this server's PAN secret); "
                        + "send card_number alone")
            }
            card = derived
        }
        let merchant = v.identifier(.merchantID, required: true)
        let customer = v.identifier(.customerID, required: false)

        var amount = v.number(.amount, required: true)
        if let a = amount, !(a > 0 && a <= maxAmount) {
            v.issue(.amount, a <= 0 ? "must be greater than 0, got \(a)" : "must be at most 1000000000, got \(shown(a))")
            amount = nil
        }

        var timestamp: Timestamp?
        if var text = v.text(.timestamp, required: true, expecting: "an RFC 3339 date-time string") {
            timestamp = text.withUTF8 { Timestamp.parse(UnsafeRawBufferPointer($0)) }
            if timestamp == nil {
                v.issue(.timestamp, "\(quoted(text)) is not an RFC 3339 date-time (e.g. 2026-03-01T12:30:00Z)")
            } else if let bounds = policy.eventTimes, let problem = bounds.problem(timestamp!, now: Timestamp.now.microseconds) {
                v.issue(.timestamp, problem)
                timestamp = nil
            }
        }

        var category = v.text(.merchantCategory, required: false, expecting: "a string")
        if let c = category {
            if c.utf8.allSatisfy({ $0 &- 48 < 10 }) && c.utf8.count != 4 {
                v.issue(.merchantCategory, "\(quoted(c)) is not a 4-digit ISO 18245 MCC")
                category = nil
            } else {
                switch checkedIdentifier(c, strict: strict) {
                case .success(let name): category = name
                case .failure(let problem):
                    v.issue(.merchantCategory, problem.description)
                    category = nil
                }
            }
        }

        var currency = v.text(.currency, required: false, expecting: "an ISO 4217 code string")
        if let c = currency, !ISOCodes.isCurrency(c.utf8) {
            v.issue(.currency, "\(quoted(c)) is not an ISO 4217 currency code (three upper-case letters, e.g. USD)")
            currency = nil
        } else if strict, let a = amount, a < 1 {
            // Below the minor unit no such payment exists (5e-324 is a float, not an amount);
            // no minor unit is more than 1, so most amounts need no look-up.
            let code = currency ?? "USD"
            if a < ISOCodes.minorUnit(code) {
                v.issue(.amount, "\(a) is below the smallest unit of \(code), \(ISOCodes.minorUnitText(code))")
                amount = nil
            }
        }

        var country = v.text(.country, required: false, expecting: "an ISO 3166-1 alpha-2 code string")
        if let c = country, !ISOCodes.isCountry(c.utf8) {
            v.issue(.country, "\(quoted(c)) is not an ISO 3166-1 alpha-2 country code (e.g. US)")
            country = nil
        }

        var channel: Channel?
        if let c = v.text(.channel, required: false, expecting: "one of pos, online, atm") {
            channel = Channel(rawValue: c)
            if channel == nil { v.issue(.channel, "unknown channel \(quoted(c)); expected one of pos, online, atm") }
        }

        var location: GeoPoint?
        let lat = v.number(.latitude, required: false)
        let lon = v.number(.longitude, required: false)
        var coordinatesOK = true
        if let lat, !(-90...90).contains(lat) {
            v.issue(.latitude, "must be between -90 and 90, got \(shown(lat))")
            coordinatesOK = false
        }
        if let lon, !(-180...180).contains(lon) {
            v.issue(.longitude, "must be between -180 and 180, got \(shown(lon))")
            coordinatesOK = false
        }
        switch (lat, lon, v.present(.latitude), v.present(.longitude)) {
        case (let la?, let lo?, _, _): if coordinatesOK { location = GeoPoint(latitude: la, longitude: lo) }
        case (_, nil, true, false): v.issue(.longitude, "missing: latitude is given, so longitude is required")
        case (nil, _, false, true): v.issue(.latitude, "missing: longitude is given, so latitude is required")
        default: break
        }

        let isFraud = v.flag(.isFraud)
        // Free text: each source names its own kinds of fraud (the generator writes four).
        let pattern = v.identifier(.fraudPattern, required: false)
        if pattern != nil && isFraud != true && v.issues.allSatisfy({ $0.field != TransactionField.isFraud.name }) {
            v.issue(.fraudPattern, "given for a transaction whose is_fraud is not 1")
        }

        guard v.issues.isEmpty, let id, let card, let merchant, let amount, let timestamp else {
            return .failure(RecordError(issues: v.issues))
        }
        return .success(
            Transaction(
                transactionID: id, cardID: card, amount: amount, timestamp: timestamp, merchantID: merchant,
                merchantCategory: category, currency: currency ?? "USD", location: location, country: country,
                channel: channel, customerID: customer, isFraud: isFraud, fraudPattern: pattern))
    }

    /// Why `s` is not a usable identifier, or nil when it is.
    public static func identifierProblem(_ s: String) -> String? {
        if case .failure(let problem) = checkedIdentifier(s, strict: true) { return problem.description }
        return nil
    }

    /// Why an identifier is refused.
    public struct IdentifierProblem: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// An identifier checked and in the form it is kept in: NFC, so that canonically
    /// equivalent spellings (é as one code point, or e and a combining accent) are one id in
    /// the log, in duplicate detection and in answers alike. ASCII, the usual case, is NFC
    /// already and costs no more than the checks. `strict` (records from outside) also
    /// refuses blank ids and ids that read as card numbers.
    public static func checkedIdentifier(_ s: String, strict: Bool = true) -> Result<String, IdentifierProblem> {
        if s.isEmpty { return .failure(IdentifierProblem(description: "must not be empty")) }
        // ASCII, the usual case, byte by byte: a scalar is a byte and NFC holds already.
        switch s.utf8.withContiguousStorageIfAvailable({ checkASCII(UnsafeRawBufferPointer($0), strict: strict) }) {
        case .valid?: return .success(s)
        case .refused(let problem)?: return .failure(problem)
        case .notASCII?, nil: break  // nil: a bridged string, checked scalar by scalar
        }
        var count = 0
        var blank = true
        for u in s.unicodeScalars {
            let c = u.value
            // C0, DEL and C1 (U+0080–U+009F, e.g. NEL): Unicode's control characters.
            if c < 0x20 || (0x7F...0x9F).contains(c) { return .failure(controlCharacter) }
            count += 1
            if blank && !u.properties.isWhitespace { blank = false }
        }
        if count > maxIDLength { return .failure(tooLong(count)) }
        if strict && blank { return .failure(blankID) }
        let nfc = s.precomposedStringWithCanonicalMapping
        let nfcCount = nfc.unicodeScalars.count
        return nfcCount > maxIDLength ? .failure(tooLong(nfcCount)) : .success(nfc)
    }

    /// The identifier checks on an identifier's bytes when they are all ASCII (`notASCII`
    /// otherwise: `checkedIdentifier` then checks its scalars and normalises it).
    static func checkASCII(_ bytes: UnsafeRawBufferPointer, strict: Bool) -> ASCIICheck {
        var blank = true
        var digits = 0
        var numeric = true  // digits, spaces and dashes only
        for c in bytes {
            if c >= 0x80 { return .notASCII }
            if c < 0x20 || c == 0x7F { return .refused(controlCharacter) }
            if c != 0x20 { blank = false }
            if c &- 48 < 10 {
                digits += 1
            } else if c != 0x20 && c != 0x2D {
                numeric = false
            }
        }
        if bytes.isEmpty { return .refused(IdentifierProblem(description: "must not be empty")) }
        if bytes.count > maxIDLength { return .refused(tooLong(bytes.count)) }
        if strict {
            if blank { return .refused(blankID) }
            if numeric && CardNumber.lookalikeLengths.contains(digits) && CardNumber.looksLikeCardNumber(bytes) {
                return .refused(cardNumberID)
            }
        }
        return .valid
    }

    enum ASCIICheck {
        case valid
        case refused(IdentifierProblem)
        case notASCII
    }

    static let controlCharacter = IdentifierProblem(description: "contains a control character")
    static let blankID = IdentifierProblem(description: "must not be blank (it is only white space)")
    static let cardNumberID = IdentifierProblem(
        description: "looks like a card number; send it as card_number (only a keyed hash of it is kept, as card_id)")

    static func tooLong(_ count: Int) -> IdentifierProblem {
        IdentifierProblem(description: "is \(count) characters long; at most \(maxIDLength) are allowed")
    }

    /// A number for an error message; one of 13 or more integer digits is not written out
    /// (it could be a card number sent in the wrong field).
    static func shown(_ d: Double) -> String { abs(d) < 1e12 ? "\(d)" : "a number of 13 or more digits" }

    /// A value quoted for an error message, shortened so one bad field cannot flood the log,
    /// with anything that reads as a card number masked (messages reach logs and answers).
    static func quoted(_ s: String) -> String {
        let text = CardNumber.masked(text: s)
        let limit = 40
        let shown =
            text.unicodeScalars.count > limit
            ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit))) + "…" : text
        var out = "'"
        for u in shown.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out + "'"
    }
}

/// Reads typed values out of a raw record, collecting the problems it meets.
struct FieldReader {
    /// The record's values and kind, not the record: a copy of it would retain its every list.
    let values: [RawValue]
    let isText: Bool
    let buffer: UnsafeRawBufferPointer
    /// A record from outside (`IngestPolicy.Mode.ingest`): every rule applies.
    var strict = true
    var issues: [FieldIssue] = []

    init(record: RawRecord, buffer: UnsafeRawBufferPointer, strict: Bool = true) {
        values = record.values
        isText = record.isText
        self.buffer = buffer
        self.strict = strict
    }

    subscript(_ f: TransactionField) -> RawValue { values[f.rawValue] }

    mutating func issue(_ f: TransactionField, _ problem: String) {
        issues.append(FieldIssue(field: f.name, problem: problem))
    }

    /// Null and (in CSV) an empty cell mean "not given".
    func present(_ f: TransactionField) -> Bool {
        switch self[f] {
        case .missing, .null: return false
        case .string(let s) where isText: return s.count > 0
        default: return true
        }
    }

    func describe(_ v: RawValue) -> String {
        switch v {
        case .missing: "nothing"
        case .null: "null"
        case .string, .unescaped: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .composite(let kind): "\(kind)"
        }
    }

    func bytes(_ s: Span) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[s.start..<s.start + s.count])
    }

    mutating func text(_ f: TransactionField, required: Bool, expecting: String) -> String? {
        guard present(f) else {
            if required { issue(f, "missing (required)") }
            return nil
        }
        switch self[f] {
        case .string(let s): return String(decoding: bytes(s), as: UTF8.self)
        case .unescaped(let s): return s
        case let other:
            issue(f, "expected \(expecting), got \(describe(other))")
            return nil
        }
    }

    mutating func identifier(_ f: TransactionField, required: Bool) -> String? {
        if case .string(let span) = self[f], span.count > 0 {
            // The usual case, checked on the input's bytes before any String exists.
            let raw = bytes(span)
            switch TransactionValidator.checkASCII(raw, strict: strict) {
            case .valid: return String(decoding: raw, as: UTF8.self)
            case .refused(let problem):
                issue(f, problem.description)
                return nil
            case .notASCII: break
            }
        }
        guard let s = text(f, required: required, expecting: "a string") else { return nil }
        switch TransactionValidator.checkedIdentifier(s, strict: strict) {
        case .success(let id): return id
        case .failure(let problem):
            issue(f, problem.description)
            return nil
        }
    }

    /// The card id a `card_number` derives with `key`; the value itself is never quoted.
    mutating func cardNumber(key: PANKey?) -> String? {
        let digits: Result<[UInt8], CardNumber.Problem>
        switch self[.cardNumber] {
        case .string(let s): digits = CardNumber.digits(bytes(s))
        case .unescaped(let s): digits = CardNumber.digits(s.utf8)
        case .number:
            issue(.cardNumber, "must be a string of digits (as a JSON number a card number loses digits)")
            return nil
        case let other:
            issue(.cardNumber, "expected a string of digits, got \(describe(other))")
            return nil
        }
        switch digits {
        case .failure(let problem):
            issue(.cardNumber, problem.description)
            return nil
        case .success(let d):
            guard let key else {
                issue(
                    .cardNumber,
                    "cannot be accepted: no PAN secret is configured (--pan-secret-file or the "
                        + "\(PANKey.environmentVariable) variable), and a card number is only accepted to derive card_id "
                        + "by a keyed hash")
                return nil
            }
            return key.cardID(digits: d)
        }
    }

    mutating func number(_ f: TransactionField, required: Bool) -> Double? {
        guard present(f) else {
            if required { issue(f, "missing (required)") }
            return nil
        }
        let value: Double?
        switch self[f] {
        case .number(let d): value = d
        case .string(let s) where isText:
            value = JSONNumber.parse(bytes(s))
            if value == nil {
                issue(f, "\(TransactionValidator.quoted(String(decoding: bytes(s), as: UTF8.self))) is not a number")
                return nil
            }
        case .unescaped(let s) where isText:
            value = s.utf8.withContiguousStorageIfAvailable { JSONNumber.parse(UnsafeRawBufferPointer($0)) } ?? nil
            if value == nil {
                issue(f, "\(TransactionValidator.quoted(s)) is not a number")
                return nil
            }
        case let other:
            issue(f, "expected a number, got \(describe(other))")
            return nil
        }
        guard let v = value, v.isFinite else {
            issue(f, "must be a finite number")
            return nil
        }
        return v
    }

    /// 0/1 or a boolean; in CSV also the words true/false.
    mutating func flag(_ f: TransactionField) -> Bool? {
        guard present(f) else { return nil }
        switch self[f] {
        case .bool(let b): return b
        case .number(let d) where d == 0 || d == 1: return d == 1
        case .string(let s) where isText:
            switch String(decoding: bytes(s), as: UTF8.self) {
            case "0", "false": return false
            case "1", "true": return true
            case let t: issue(f, "expected 0, 1, true or false, got \(TransactionValidator.quoted(t))")
            }
        case .number(let d): issue(f, "expected 0, 1, true or false, got \(TransactionValidator.shown(d))")
        case let other: issue(f, "expected 0, 1, true or false, got \(describe(other))")
        }
        return nil
    }
}
