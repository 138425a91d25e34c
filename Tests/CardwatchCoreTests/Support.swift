import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

// Shared generators and helpers of the CardwatchCore tests.

// MARK: - Random values

/// Random pieces of transactions. Every function takes any random number generator, so the
/// property checks' seeded generator (reproducible with `.fixedSeed`) drives them.
enum Rand {
    static let specials: [Unicode.Scalar] = [",", "\"", "\\", " ", "/", "'", "{", "}", ":", "[", "]"]

    /// One Unicode scalar that an identifier may hold: mostly ASCII, often a character that CSV
    /// or JSON must quote or escape, sometimes from the rest of Unicode.
    static func idScalar<R: RandomNumberGenerator>(using rng: inout R) -> Unicode.Scalar {
        let range: ClosedRange<UInt32>
        switch Int.random(in: 0..<20, using: &rng) {
        case 0..<9: range = 0x21...0x7E
        case 9..<13: return specials.randomElement(using: &rng)!
        case 13..<15: range = 0xA0...0x2FF
        case 15: range = 0x300...0x36F  // combining marks
        case 16..<18: range = 0x4E00...0x9FFF
        case 18: range = 0x1F300...0x1FAFF
        default: range = 0x2000...0xFFFD
        }
        while true {
            if let u = Unicode.Scalar(UInt32.random(in: range, using: &rng)) { return u }
        }
    }

    /// A valid identifier: 1 to `maxLength` scalars, often short, sometimes at the limit; in
    /// NFC (the form the validator keeps) and not blank.
    static func identifier<R: RandomNumberGenerator>(using rng: inout R, maxLength: Int = 64) -> String {
        while true {
            let length: Int
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: length = maxLength
            case 1: length = 1
            default: length = Int.random(in: 1...min(16, maxLength), using: &rng)
            }
            var s = String.UnicodeScalarView()
            for _ in 0..<length { s.append(idScalar(using: &rng)) }
            let id = String(s).precomposedStringWithCanonicalMapping
            if id.unicodeScalars.count <= maxLength && !id.unicodeScalars.allSatisfy(\.properties.isWhitespace) {
                return id
            }
        }
    }

    /// A valid amount in (0, 1e9]: cents, uniform, log-uniform, any representable value, or an edge.
    static func amount<R: RandomNumberGenerator>(using rng: inout R) -> Double {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return Double(Int.random(in: 1...100_000_000_000, using: &rng)) / 100
        case 1: return max(Double.random(in: 0...1e9, using: &rng), .leastNonzeroMagnitude)
        case 2: return min(1e9, max(pow(10, Double.random(in: -320...9, using: &rng)), .leastNonzeroMagnitude))
        case 3: return Double(bitPattern: UInt64.random(in: 1...(1e9).bitPattern, using: &rng))
        default:
            return [1e9, (1e9).nextDown, 0.01, 1, 0.1, .leastNonzeroMagnitude, .leastNormalMagnitude]
                .randomElement(using: &rng)!
        }
    }

    /// A coordinate in `-limit...limit`: micro-degrees, any representable value, or an edge.
    static func coordinate<R: RandomNumberGenerator>(limit: Double, using rng: inout R) -> Double {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:
            let micro = Int(limit) * 1_000_000
            return Double(Int.random(in: -micro...micro, using: &rng)) / 1_000_000
        case 1:
            let magnitude = Double(bitPattern: UInt64.random(in: 0...limit.bitPattern, using: &rng))
            return Bool.random(using: &rng) ? -magnitude : magnitude
        case 2: return Double.random(in: -limit...limit, using: &rng)
        default: return [limit, -limit, 0, -0.0, limit.nextDown].randomElement(using: &rng)!
        }
    }

    /// An instant in years 0001 to 9999: whole seconds, milliseconds or microseconds.
    static func timestamp<R: RandomNumberGenerator>(using rng: inout R) -> Timestamp {
        let micros = Int64.random(in: Timestamp.minMicroseconds...Timestamp.maxMicroseconds, using: &rng)
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return Timestamp(microseconds: micros - micros.floorMod(1_000_000))
        case 1: return Timestamp(microseconds: micros - micros.floorMod(1_000))
        default: return Timestamp(microseconds: micros)
        }
    }

    static func merchantCategory<R: RandomNumberGenerator>(using rng: inout R) -> String {
        if Bool.random(using: &rng) {
            let mcc = Int.random(in: 0...9999, using: &rng)
            return String(String(mcc + 10_000).dropFirst())  // four digits, leading zeros kept
        }
        return "cat " + identifier(using: &rng, maxLength: 60)
    }

    /// A random transaction that schema v1 accepts.
    static func transaction<R: RandomNumberGenerator>(using rng: inout R) -> Transaction {
        var t = Transaction(
            transactionID: identifier(using: &rng), cardID: identifier(using: &rng),
            amount: amount(using: &rng), timestamp: timestamp(using: &rng),
            merchantID: identifier(using: &rng))
        if Bool.random(using: &rng) { t.merchantCategory = merchantCategory(using: &rng) }
        if Bool.random(using: &rng) { t.currency = Codes.currencies.randomElement(using: &rng)! }
        t.amount = max(t.amount, ISOCodes.minorUnit(t.currency))  // smaller is no payment
        if Bool.random(using: &rng) {
            t.location = GeoPoint(
                latitude: coordinate(limit: 90, using: &rng), longitude: coordinate(limit: 180, using: &rng))
        }
        if Bool.random(using: &rng) { t.country = Codes.countries.randomElement(using: &rng)! }
        if Bool.random(using: &rng) { t.channel = Channel.allCases.randomElement(using: &rng)! }
        if Bool.random(using: &rng) { t.customerID = identifier(using: &rng) }
        if Bool.random(using: &rng) {
            let fraud = Bool.random(using: &rng)
            t.isFraud = fraud
            if fraud, Bool.random(using: &rng) { t.fraudPattern = identifier(using: &rng) }
        }
        return t
    }
}

enum Codes {
    static let currencies = ISOCodes.currencies.split(separator: " ").map(String.init)
    static let countries = ISOCodes.countries.split(separator: " ").map(String.init)
}

/// Random valid transactions for property checks.
let transactions = Generator<Transaction, Shrink.None<Transaction>> { rng in Rand.transaction(using: &rng) }

// MARK: - Decoding helpers

func decodeJSON(_ line: String) -> Result<Transaction, RecordError> {
    var decoder = TransactionJSONDecoder()
    return decoder.decode(line)
}

func decodeJSON(_ bytes: [UInt8]) -> Result<Transaction, RecordError> {
    var decoder = TransactionJSONDecoder()
    return bytes.withUnsafeBytes { decoder.decode($0) }
}

/// The CSV header of every schema column, without its newline.
let csvHeaderLine = String(TransactionEncoder.csvHeader.dropLast())

func csvDecoder(header: String = csvHeaderLine) -> TransactionCSVDecoder {
    var header = header
    return header.withUTF8 { TransactionCSVDecoder(header: UnsafeRawBufferPointer($0)) }
}

func jsonBytes(_ t: Transaction) -> [UInt8] {
    var out: [UInt8] = []
    TransactionEncoder.appendJSONLine(t, to: &out)
    return out
}

func csvBytes(_ t: Transaction) -> [UInt8] {
    var out: [UInt8] = []
    TransactionEncoder.appendCSVRow(t, to: &out)
    return out
}

/// The issues of a failed decode; records a test failure when it succeeded.
func issues(
    _ result: Result<Transaction, RecordError>, sourceLocation: SourceLocation = #_sourceLocation
) -> [FieldIssue] {
    switch result {
    case .success(let t):
        Issue.record("expected a failure, decoded \(t)", sourceLocation: sourceLocation)
        return []
    case .failure(let e):
        return e.issues
    }
}

// MARK: - Files

/// Writes `bytes` to a fresh temporary file, runs `body` with its path, then removes it.
func withTempFile<T>(_ bytes: [UInt8], suffix: String, _ body: (String) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("cardwatch-core-tests-\(UUID().uuidString)\(suffix)")
    try Data(bytes).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

/// One outcome of `TransactionFileReader`, copied out of the reader's buffer.
struct ReadOutcome {
    var line: Int
    var result: Result<Transaction, RecordError>
    var raw: [UInt8]
}

func readTransactions(path: String, format: RecordFormat? = nil) throws -> [ReadOutcome] {
    var reader = try TransactionFileReader(path: path, format: format)
    defer { reader.close() }
    var outcomes: [ReadOutcome] = []
    try reader.forEachRecord { line, outcome in
        switch outcome {
        case .valid(let t, _): outcomes.append(ReadOutcome(line: line, result: .success(t), raw: []))
        case .invalid(let e, let raw): outcomes.append(ReadOutcome(line: line, result: .failure(e), raw: Array(raw)))
        }
    }
    return outcomes
}

// MARK: - Checks

/// What schema v1 promises about any transaction a decoder accepts, checked without the validator.
func expectSchemaValid(_ t: Transaction, sourceLocation: SourceLocation = #_sourceLocation) {
    func idOK(_ s: String) -> Bool {
        let scalars = s.unicodeScalars
        return !scalars.isEmpty && scalars.count <= 64
            && !scalars.contains { $0.properties.generalCategory == .control }
    }
    #expect(idOK(t.transactionID), sourceLocation: sourceLocation)
    #expect(idOK(t.cardID), sourceLocation: sourceLocation)
    #expect(idOK(t.merchantID), sourceLocation: sourceLocation)
    #expect(t.customerID.map(idOK) ?? true, sourceLocation: sourceLocation)
    if let c = t.merchantCategory {
        let digitsOnly = c.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        #expect(idOK(c) && (!digitsOnly || c.utf8.count == 4), sourceLocation: sourceLocation)
    }
    #expect(t.amount > 0 && t.amount <= 1e9, sourceLocation: sourceLocation)
    #expect(Codes.currencies.contains(t.currency), sourceLocation: sourceLocation)
    #expect(t.country.map(Codes.countries.contains) ?? true, sourceLocation: sourceLocation)
    if let p = t.location {
        #expect(abs(p.latitude) <= 90 && abs(p.longitude) <= 180, sourceLocation: sourceLocation)
    }
    if t.fraudPattern != nil { #expect(t.isFraud == true, sourceLocation: sourceLocation) }
    #expect(
        t.timestamp.microseconds >= Timestamp.minMicroseconds
            && t.timestamp.microseconds <= Timestamp.maxMicroseconds, sourceLocation: sourceLocation)
}

/// A decode result is acceptable input handling: a schema-valid transaction, or a failure whose
/// every issue names a field and says what is wrong.
func expectWellFormed(
    _ result: Result<Transaction, RecordError>, input: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
) {
    switch result {
    case .success(let t):
        expectSchemaValid(t, sourceLocation: sourceLocation)
    case .failure(let e):
        #expect(!e.issues.isEmpty, "no issue for \(input)", sourceLocation: sourceLocation)
        for issue in e.issues {
            #expect(!issue.field.isEmpty && !issue.problem.isEmpty, "\(input)", sourceLocation: sourceLocation)
        }
    }
}

// MARK: - A reference for the JSON number grammar

/// RFC 8259's number grammar, written out directly: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
func isJSONNumber(_ text: String) -> Bool {
    var chars = Array(text.utf8)[...]
    func digits() -> Int {
        var n = 0
        while let c = chars.first, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            chars.removeFirst()
            n += 1
        }
        return n
    }
    if chars.first == UInt8(ascii: "-") { chars.removeFirst() }
    if chars.first == UInt8(ascii: "0") {
        chars.removeFirst()
    } else if digits() == 0 {
        return false
    }
    if chars.first == UInt8(ascii: ".") {
        chars.removeFirst()
        if digits() == 0 { return false }
    }
    if chars.first == UInt8(ascii: "e") || chars.first == UInt8(ascii: "E") {
        chars.removeFirst()
        if chars.first == UInt8(ascii: "+") || chars.first == UInt8(ascii: "-") { chars.removeFirst() }
        if digits() == 0 { return false }
    }
    return chars.isEmpty
}
