import Crypto

/// Card numbers (PANs). Cardwatch accepts one only to derive `card_id` by a keyed hash
/// (`PANKey`) and never keeps it: the log stores the record without it, dead letters and
/// messages show it masked (first six and last four digits), and anything else that reads
/// as a card number — a Luhn-valid run of 13–19 digits — is refused as an identifier and
/// masked in dead-lettered text.
public enum CardNumber {
    /// How many digits a card number has (ISO/IEC 7812).
    public static let lengths = 12...19
    /// Luhn-valid runs of this many digits, not starting with 0 (no issuer's card number
    /// does; zero-padded ids do), are taken for card numbers wherever they appear.
    public static let lookalikeLengths = 13...19

    /// Why a value is not a card number; the texts never quote the value.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case notDigits
        case length(Int)
        case checkDigit

        public var description: String {
            switch self {
            case .notDigits: "is not a card number: only digits, with spaces or dashes between them, are allowed"
            case .length(let n): "is not a card number: it has \(n) digits; a card number has 12 to 19"
            case .checkDigit: "is not a card number: its check digit is wrong (Luhn)"
            }
        }
    }

    /// The digits (ASCII) of a card number written with optional single spaces or dashes
    /// between digits, checked for length and the Luhn check digit.
    public static func digits(_ text: some Collection<UInt8>) -> Result<[UInt8], Problem> {
        var digits: [UInt8] = []
        digits.reserveCapacity(19)
        var previousWasDigit = false
        for c in text {
            if c &- 48 < 10 {
                digits.append(c)
                previousWasDigit = true
            } else if (c == UInt8(ascii: " ") || c == UInt8(ascii: "-")) && previousWasDigit {
                previousWasDigit = false
            } else {
                return .failure(.notDigits)
            }
        }
        guard previousWasDigit || digits.isEmpty else { return .failure(.notDigits) }
        guard lengths.contains(digits.count) else { return .failure(.length(digits.count)) }
        guard luhn(digits) else { return .failure(.checkDigit) }
        return .success(digits)
    }

    /// The Luhn (mod 10) check over ASCII digits.
    public static func luhn(_ digits: some BidirectionalCollection<UInt8>) -> Bool {
        var sum = 0
        var double = false
        for c in digits.reversed() {
            var d = Int(c &- 48)
            if double {
                d *= 2
                if d > 9 { d -= 9 }
            }
            sum += d
            double.toggle()
        }
        return sum % 10 == 0
    }

    /// The digits shown as PCI DSS allows: the first six and the last four, the rest `*`
    /// (`411111******1111`); fewer than 13 digits show only the last four.
    public static func masked(_ digits: [UInt8]) -> String {
        let n = digits.count
        let head = n >= 13 ? 6 : 0
        var out = [UInt8](repeating: UInt8(ascii: "*"), count: n)
        for i in 0..<n where i < head || i >= n - 4 { out[i] = digits[i] }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a whole value reads as a card number: 13–19 digits (single spaces or dashes
    /// between them allowed), the first not 0, with a valid Luhn check digit.
    public static func looksLikeCardNumber(_ text: some Collection<UInt8>) -> Bool {
        guard case .success(let d) = digits(text) else { return false }
        return lookalikeLengths.contains(d.count) && d[0] != UInt8(ascii: "0")
    }

    /// Masks, in place and keeping the length, every Luhn-valid run of 13–19 digits in
    /// `range` (groups of digits joined by single spaces or dashes count as one run, so
    /// `4111 1111 1111 1111` is found; a run is also found among more groups around it).
    /// Digits other than the first six and last four become `*`. Digits of a decimal
    /// fraction or exponent (`1.4111111111111111`) are a number's, not a card's, and stay.
    /// With `json`, a card number written as a bare JSON number becomes `null` (padded with
    /// spaces), so the text stays valid JSON. Returns whether anything was masked.
    @discardableResult
    public static func maskLookalikes(in bytes: inout [UInt8], range: Range<Int>? = nil, json: Bool = false) -> Bool {
        let range = range ?? bytes.indices
        var masked = false
        var inString = false
        var i = range.lowerBound
        while i < range.upperBound {
            let c = bytes[i]
            if json && inString && c == UInt8(ascii: "\\") {
                i += 2
                continue
            }
            if json && c == UInt8(ascii: "\"") { inString.toggle() }
            guard c &- 48 < 10 else {
                i += 1
                continue
            }
            // A maximal run of digit groups joined by single separators.
            var groups: [Range<Int>] = []
            var j = i
            while j < range.upperBound {
                let start = j
                while j < range.upperBound, bytes[j] &- 48 < 10 { j += 1 }
                groups.append(start..<j)
                guard j + 1 < range.upperBound, bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: "-"),
                    bytes[j + 1] &- 48 < 10
                else { break }
                j += 1
            }
            defer { i = j }
            if groups.count == 1 && !lookalikeLengths.contains(groups[0].count) { continue }
            if partOfDecimal(bytes, groups[0].lowerBound, groups[groups.count - 1].upperBound, range) { continue }
            if json && !inString {
                // A bare number (the record parsed, so a single group): the whole token goes.
                let run = groups[0]
                guard run.count <= lookalikeLengths.upperBound, bytes[run.lowerBound] != UInt8(ascii: "0"), luhn(bytes[run])
                else { continue }
                let start =
                    run.lowerBound > range.lowerBound && bytes[run.lowerBound - 1] == UInt8(ascii: "-")
                    ? run.lowerBound - 1 : run.lowerBound
                for (k, p) in (start..<run.upperBound).enumerated() {
                    bytes[p] = k < 4 ? Array("null".utf8)[k] : UInt8(ascii: " ")
                }
                masked = true
                continue
            }
            var first = 0
            while first < groups.count {
                if bytes[groups[first].lowerBound] == UInt8(ascii: "0") {
                    first += 1
                    continue
                }
                var total = 0
                var matched = false
                for last in first..<groups.count {
                    total += groups[last].count
                    if total > lookalikeLengths.upperBound { break }
                    if lookalikeLengths.contains(total) && luhn(groups[first...last].flatMap { bytes[$0] }) {
                        mask(&bytes, groups[first...last], total: total)
                        masked = true
                        matched = true
                        first = last + 1
                        break
                    }
                }
                if !matched { first += 1 }
            }
        }
        return masked
    }

    /// `text` with every card-number look-alike masked (for messages).
    public static func masked(text: String) -> String {
        var bytes = Array(text.utf8)
        return maskLookalikes(in: &bytes) ? String(decoding: bytes, as: UTF8.self) : text
    }

    /// Whether the digits in `start..<end` belong to a decimal number's fraction or exponent
    /// (`1.4111…`, `2e+4111…`), or are the integer part of a number with a fraction or an
    /// exponent (`4111….5`, `4111…e3`). A dot or a letter after a word is no number's.
    static func partOfDecimal(_ b: [UInt8], _ start: Int, _ end: Int, _ range: Range<Int>) -> Bool {
        func digit(_ k: Int) -> Bool { range.contains(k) && b[k] &- 48 < 10 }
        func exponentMark(_ k: Int) -> Bool { range.contains(k) && (b[k] == UInt8(ascii: "e") || b[k] == UInt8(ascii: "E")) }
        var k = start - 1
        if range.contains(k) && (b[k] == UInt8(ascii: "+") || b[k] == UInt8(ascii: "-")) && exponentMark(k - 1) { k -= 1 }
        if range.contains(k) && (b[k] == UInt8(ascii: ".") || exponentMark(k)) && digit(k - 1) { return true }
        if range.contains(end) && b[end] == UInt8(ascii: ".") && digit(end + 1) { return true }
        return exponentMark(end)
            && (digit(end + 1)
                || (range.contains(end + 1) && (b[end + 1] == UInt8(ascii: "+") || b[end + 1] == UInt8(ascii: "-"))
                    && digit(end + 2)))
    }

    static func mask(_ bytes: inout [UInt8], _ groups: ArraySlice<Range<Int>>, total: Int) {
        var k = 0
        for g in groups {
            for p in g {
                if k >= 6 && k < total - 4 { bytes[p] = UInt8(ascii: "*") }
                k += 1
            }
        }
    }

    /// A rejected record's text as a dead letter may keep it: the value of every
    /// `card_number` member masked (first six and last four digits, whatever else it
    /// holds), and every other card-number look-alike masked.
    public static func deadLetterText(_ raw: some Collection<UInt8>) -> [UInt8] {
        var bytes = Array(raw)
        maskCardNumberMembers(&bytes)
        maskLookalikes(in: &bytes)
        return bytes
    }

    /// Masks the value after each `card_number` key (JSON, whether or not the record parses).
    static func maskCardNumberMembers(_ bytes: inout [UInt8]) {
        let key = Array("card_number".utf8)
        var from = 0
        while let at = find(key, in: bytes, from: from) {
            from = at + key.count
            var i = from
            if i < bytes.count, bytes[i] == UInt8(ascii: "\"") { i += 1 }
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { continue }
            i += 1
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
            guard i < bytes.count else { return }
            let quoted = bytes[i] == UInt8(ascii: "\"")
            let start = quoted ? i + 1 : i
            var end = start
            var escaped = false
            while end < bytes.count {
                let c = bytes[end]
                if quoted {
                    if c == UInt8(ascii: "\\") {
                        escaped = true
                        end += 2
                        continue
                    }
                    if c == UInt8(ascii: "\"") { break }
                } else if !(c &- 48 < 10 || c == UInt8(ascii: " ") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")) {
                    break
                }
                end += 1
            }
            end = min(end, bytes.count)
            maskValue(&bytes, start..<end, escaped: escaped)
            from = end
        }
    }

    /// Keeps the first six and last four digits of a value (the last four only when it has
    /// fewer than 13), every other character of it `*`; a value with escapes is masked whole.
    static func maskValue(_ bytes: inout [UInt8], _ range: Range<Int>, escaped: Bool) {
        let digitCount = bytes[range].reduce(0) { $0 + ($1 &- 48 < 10 ? 1 : 0) }
        let head = digitCount >= 13 ? 6 : 0
        var k = 0
        for p in range {
            let isDigit = bytes[p] &- 48 < 10
            if !escaped && isDigit && (k < head || k >= digitCount - 4) {
                k += 1
                continue
            }
            if isDigit { k += 1 }
            if escaped || isDigit || (bytes[p] != UInt8(ascii: " ") && bytes[p] != UInt8(ascii: "-")) {
                bytes[p] = UInt8(ascii: "*")
            }
        }
    }

    /// Masks every run of at least `minimum` digits (single spaces or dashes between them
    /// allowed) as `maskValue` does, Luhn-valid or not.
    static func maskDigitRuns(_ bytes: inout [UInt8], atLeast minimum: Int) {
        var i = 0
        while i < bytes.count {
            guard bytes[i] &- 48 < 10 else {
                i += 1
                continue
            }
            var j = i
            var digits = 0
            while j < bytes.count {
                if bytes[j] &- 48 < 10 {
                    digits += 1
                } else if !((bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: "-")) && j + 1 < bytes.count
                    && bytes[j + 1] &- 48 < 10)
                {
                    break
                }
                j += 1
            }
            if digits >= minimum { maskValue(&bytes, i..<j, escaped: false) }
            i = j
        }
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var i = from
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && bytes[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

/// The secret key that turns a card number into its `card_id`: the lower-case hex of
/// HMAC-SHA256(secret, the PAN's digits). The same secret gives the same card ids in
/// every process and run; without the secret a card id reveals nothing of the PAN.
public struct PANKey: Sendable {
    /// Secrets shorter than this are refused (128 bits).
    public static let minimumBytes = 16
    /// The variable a secret can come from when no file is given.
    public static let environmentVariable = "CARDWATCH_PAN_SECRET"

    private let key: SymmetricKey

    public struct SecretError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A key from the secret's bytes (a trailing line break, as an editor leaves it, is not part of it).
    public init(secret: some Collection<UInt8>) throws(SecretError) {
        var bytes = Array(secret)
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard bytes.count >= Self.minimumBytes else {
            throw SecretError(
                description: "the PAN secret has \(bytes.count) bytes; at least \(Self.minimumBytes) are needed "
                    + "(e.g. `head -c 32 /dev/urandom | base64 > pan.secret`)")
        }
        key = SymmetricKey(data: bytes)
    }

    /// The card id of a card number given as its ASCII digits.
    public func cardID(digits: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: digits, using: key)
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in code {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
