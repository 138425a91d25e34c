/// Schema v1 checks: a `RawRecord` becomes a `Transaction`, or a `RecordError`
/// listing every problem of the record, field by field.
public enum TransactionValidator {
    public static let maxIDLength = 64
    public static let maxAmount = 1_000_000_000.0

    public static func validate(_ r: RawRecord, in buffer: UnsafeRawBufferPointer) -> Result<Transaction, RecordError> {
        var v = FieldReader(record: r, buffer: buffer)
        for f in r.repeated { v.issue(f, "given more than once") }

        let id = v.identifier(.transactionID, required: true)
        let card = v.identifier(.cardID, required: true)
        let merchant = v.identifier(.merchantID, required: true)
        let customer = v.identifier(.customerID, required: false)

        var amount = v.number(.amount, required: true)
        if let a = amount, !(a > 0 && a <= maxAmount) {
            v.issue(.amount, a <= 0 ? "must be greater than 0, got \(a)" : "must be at most 1000000000, got \(a)")
            amount = nil
        }

        var timestamp: Timestamp?
        if var text = v.text(.timestamp, required: true, expecting: "an RFC 3339 date-time string") {
            timestamp = text.withUTF8 { Timestamp.parse(UnsafeRawBufferPointer($0)) }
            if timestamp == nil {
                v.issue(.timestamp, "\(quoted(text)) is not an RFC 3339 date-time (e.g. 2026-03-01T12:30:00Z)")
            }
        }

        var category = v.text(.merchantCategory, required: false, expecting: "a string")
        if let c = category {
            if c.utf8.allSatisfy({ $0 &- 48 < 10 }) && c.utf8.count != 4 {
                v.issue(.merchantCategory, "\(quoted(c)) is not a 4-digit ISO 18245 MCC")
                category = nil
            } else if let problem = identifierProblem(c) {
                v.issue(.merchantCategory, problem)
                category = nil
            }
        }

        var currency = v.text(.currency, required: false, expecting: "an ISO 4217 code string")
        if let c = currency, !ISOCodes.isCurrency(c.utf8) {
            v.issue(.currency, "\(quoted(c)) is not an ISO 4217 currency code (three upper-case letters, e.g. USD)")
            currency = nil
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
            v.issue(.latitude, "must be between -90 and 90, got \(lat)")
            coordinatesOK = false
        }
        if let lon, !(-180...180).contains(lon) {
            v.issue(.longitude, "must be between -180 and 180, got \(lon)")
            coordinatesOK = false
        }
        switch (lat, lon, v.present(.latitude), v.present(.longitude)) {
        case (let la?, let lo?, _, _): if coordinatesOK { location = GeoPoint(latitude: la, longitude: lo) }
        case (_, nil, true, false): v.issue(.longitude, "missing: latitude is given, so longitude is required")
        case (nil, _, false, true): v.issue(.latitude, "missing: longitude is given, so latitude is required")
        default: break
        }

        let isFraud = v.flag(.isFraud)
        var pattern: FraudPattern?
        if let p = v.text(.fraudPattern, required: false, expecting: "a fraud pattern name") {
            pattern = FraudPattern(rawValue: p)
            if pattern == nil {
                let known = FraudPattern.allCases.map(\.rawValue).joined(separator: ", ")
                v.issue(.fraudPattern, "unknown pattern \(quoted(p)); expected one of \(known)")
            } else if isFraud != true && v.issues.allSatisfy({ $0.field != TransactionField.isFraud.name }) {
                v.issue(.fraudPattern, "given for a transaction whose is_fraud is not 1")
            }
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
        if s.isEmpty { return "must not be empty" }
        var count = 0
        for u in s.unicodeScalars {
            // C0, DEL and C1 (U+0080–U+009F, e.g. NEL): Unicode's control characters.
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) { return "contains a control character" }
            count += 1
        }
        return count > maxIDLength ? "is \(count) characters long; at most \(maxIDLength) are allowed" : nil
    }

    /// A value quoted for an error message, shortened so one bad field cannot flood the log.
    static func quoted(_ s: String) -> String {
        let limit = 40
        let shown = s.unicodeScalars.count > limit ? String(String.UnicodeScalarView(s.unicodeScalars.prefix(limit))) + "…" : s
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
    let record: RawRecord
    let buffer: UnsafeRawBufferPointer
    var issues: [FieldIssue] = []

    mutating func issue(_ f: TransactionField, _ problem: String) {
        issues.append(FieldIssue(field: f.name, problem: problem))
    }

    /// Null and (in CSV) an empty cell mean "not given".
    func present(_ f: TransactionField) -> Bool {
        switch record[f] {
        case .missing, .null: return false
        case .string(let s) where record.isText: return s.count > 0
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
        switch record[f] {
        case .string(let s): return String(decoding: bytes(s), as: UTF8.self)
        case .unescaped(let s): return s
        case let other:
            issue(f, "expected \(expecting), got \(describe(other))")
            return nil
        }
    }

    mutating func identifier(_ f: TransactionField, required: Bool) -> String? {
        guard let s = text(f, required: required, expecting: "a string") else { return nil }
        if let problem = TransactionValidator.identifierProblem(s) {
            issue(f, problem)
            return nil
        }
        return s
    }

    mutating func number(_ f: TransactionField, required: Bool) -> Double? {
        guard present(f) else {
            if required { issue(f, "missing (required)") }
            return nil
        }
        let value: Double?
        switch record[f] {
        case .number(let d): value = d
        case .string(let s) where record.isText:
            value = JSONNumber.parse(bytes(s))
            if value == nil {
                issue(f, "\(TransactionValidator.quoted(String(decoding: bytes(s), as: UTF8.self))) is not a number")
                return nil
            }
        case .unescaped(let s) where record.isText:
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
        switch record[f] {
        case .bool(let b): return b
        case .number(let d) where d == 0 || d == 1: return d == 1
        case .string(let s) where record.isText:
            switch String(decoding: bytes(s), as: UTF8.self) {
            case "0", "false": return false
            case "1", "true": return true
            case let t: issue(f, "expected 0, 1, true or false, got \(TransactionValidator.quoted(t))")
            }
        case .number(let d): issue(f, "expected 0, 1, true or false, got \(d)")
        case let other: issue(f, "expected 0, 1, true or false, got \(describe(other))")
        }
        return nil
    }
}
