import PropertyBased
import Testing

@testable import CardwatchCore

func parseNumber(_ text: String) -> Double? {
    Array(text.utf8).withUnsafeBytes { JSONNumber.parse($0) }
}

func writeNumber(_ v: Double) -> String {
    var out: [UInt8] = []
    TransactionEncoder.appendNumber(v, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// Any finite double, drawn by its bit pattern so every exponent is as likely as every other.
let finiteDoubles = Generator<Double, Shrink.None<Double>> { rng in
    while true {
        let v = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng))
        if v.isFinite { return v }
    }
}

/// Doubles that the encoder writes in fixed point: amounts and coordinates with up to six decimals.
let decimalDoubles = Generator<Double, Shrink.None<Double>> { rng in
    let scale = [1.0, 10, 100, 1000, 1_000_000].randomElement(using: &rng)!
    let units = Int64.random(in: -9_000_000_000_000_000...9_000_000_000_000_000, using: &rng)
    return Double(units >> Int64.random(in: 0...50, using: &rng)) / scale
}

/// Random JSON number text: sign, up to 20 integer digits, up to 20 fraction digits, an exponent.
let decimalTexts = Generator<String, Shrink.None<String>> { rng in
    func digits(_ count: Int) -> String {
        String((0..<count).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
    }
    var s = Bool.random(using: &rng) ? "-" : ""
    let intDigits = Int.random(in: 0...20, using: &rng)
    s += intDigits == 0 ? "0" : String(Int.random(in: 1...9, using: &rng)) + digits(intDigits - 1)
    if Bool.random(using: &rng) { s += "." + digits(Int.random(in: 1...20, using: &rng)) }
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: break
    case 1: s += ["e", "E"].randomElement(using: &rng)! + String(Int.random(in: -25...25, using: &rng))
    case 2: s += "e" + ["", "+", "-"].randomElement(using: &rng)! + digits(Int.random(in: 1...3, using: &rng))
    default: s += "e" + String(Int.random(in: -400...400, using: &rng))
    }
    return s
}

/// Texts within the fast path's reach (at most 15 digits, small exponents) and just past it.
let fastPathTexts = Generator<String, Shrink.None<String>> { rng in
    let mantissa = UInt64.random(in: 0...(Bool.random(using: &rng) ? 999_999_999_999_999 : 99_999_999_999_999_999), using: &rng)
    return "\(mantissa)e\(Int.random(in: -24...24, using: &rng))"
}

/// Random strings over the characters of numbers, mostly not numbers at all.
let numberishTexts = Generator<String, Shrink.None<String>> { rng in
    let alphabet = Array("0123456789+-.eE")
    return String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
}

@Suite struct JSONNumberTests {
    func expectSameAsStandardLibrary(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = Double(text)
        let parsed = parseNumber(text)
        #expect(parsed != nil, "\(text)", sourceLocation: sourceLocation)
        #expect(
            parsed?.bitPattern == expected?.bitPattern,
            "\(text): \(String(describing: parsed)) vs \(String(describing: expected))", sourceLocation: sourceLocation)
    }

    @Test func shortestTextOfAnyDoubleParsesBitForBit() async {
        await propertyCheck(count: 2000, input: finiteDoubles) { v in
            let text = v.description  // shortest round-trip form, e.g. 1e-07 or -1.5e+300
            expectSameAsStandardLibrary(text)
            #expect(parseNumber(text)?.bitPattern == v.bitPattern)
        }
    }

    @Test func randomDecimalTextsParseLikeTheStandardLibrary() async {
        await propertyCheck(count: 3000, input: decimalTexts) { text in
            #expect(isJSONNumber(text))
            expectSameAsStandardLibrary(text)
        }
    }

    @Test func fastPathBoundaryParsesLikeTheStandardLibrary() async {
        await propertyCheck(count: 3000, input: fastPathTexts) { text in
            expectSameAsStandardLibrary(text)
        }
    }

    @Test func randomMantissasAndExponentsParseLikeTheStandardLibrary() async {
        let texts = zip(Gen.uint64(in: 0...UInt64.max), Gen.int(in: -350...330)).map { m, e in "\(m)e\(e)" }
        await propertyCheck(count: 2000, input: texts) { text in
            expectSameAsStandardLibrary(text)
        }
    }

    @Test func acceptsExactlyTheJSONGrammar() async {
        await propertyCheck(count: 5000, input: numberishTexts) { text in
            let parsed = parseNumber(text)
            #expect((parsed != nil) == isJSONNumber(text), "\(text)")
            if let parsed { #expect(parsed.bitPattern == Double(text)?.bitPattern, "\(text)") }
        }
    }

    @Test(arguments: [
        "", "-", "+1", "1.", ".5", "-.5", "1e", "1e+", "1E-", "01", "-01", "00", "1.e5", "0x10", "1 ", " 1",
        "inf", "-inf", "NaN", "nan", "Infinity", "1e5.0", "--1", "1_000", "1,5", "١", "1f", "0b1", "1..2", "e5",
    ])
    func rejectsTextOutsideTheGrammar(_ text: String) {
        #expect(!isJSONNumber(text))
        #expect(parseNumber(text) == nil)
    }

    @Test func edgeValues() {
        for text in [
            "0", "-0", "0.0", "-0.0", "0e-400", "-0e999", "1e-400", "1e400", "-1e400", "5e-324", "2.4703282292062327e-324",
            "2.4703282292062328e-324", "1.7976931348623157e308", "1.7976931348623158e308", "9007199254740993",
            "0.1", "0.30000000000000004", "123456789012345e22", "1234567890123456e22", "1e22", "1e23",
            "0.000000000000000000000000000001", String(repeating: "9", count: 400),
            "1" + String(repeating: "0", count: 30) + "e-30",
        ] {
            expectSameAsStandardLibrary(text)
        }
        #expect(parseNumber("-0")?.sign == .minus)
    }

    @Test func scanStopsAtTheEndOfTheNumber() {
        let bytes = Array("12.5e3,".utf8)
        let r = bytes.withUnsafeBytes { JSONNumber.scan($0, from: 0) }
        #expect(r.end == 6)
        let inside = Array("x:-7}".utf8)
        let s = inside.withUnsafeBytes { JSONNumber.scan($0, from: 2) }
        #expect(s.end == 4 && s.value == -7)
        let none = Array("x".utf8).withUnsafeBytes { JSONNumber.scan($0, from: 0) }
        #expect(none.end == 0)
    }
}

@Suite struct NumberWritingTests {
    func expectRoundTrip(_ v: Double, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = writeNumber(v)
        #expect(isJSONNumber(text), "\(v) written as \(text)", sourceLocation: sourceLocation)
        #expect(Double(text)?.bitPattern == v.bitPattern, "\(v) written as \(text)", sourceLocation: sourceLocation)
        #expect(parseNumber(text)?.bitPattern == v.bitPattern, "\(v) written as \(text)", sourceLocation: sourceLocation)
    }

    @Test func anyFiniteDoubleRoundTrips() async {
        await propertyCheck(count: 3000, input: finiteDoubles) { v in expectRoundTrip(v) }
    }

    @Test func decimalValuesRoundTrip() async {
        await propertyCheck(count: 3000, input: decimalDoubles) { v in expectRoundTrip(v) }
    }

    @Test func amountsAndCoordinatesRoundTrip() async {
        let values = Generator<Double, Shrink.None<Double>> { rng in
            Bool.random(using: &rng) ? Rand.amount(using: &rng) : Rand.coordinate(limit: 180, using: &rng)
        }
        await propertyCheck(count: 3000, input: values) { v in expectRoundTrip(v) }
    }

    @Test func edgeValuesRoundTrip() {
        for v in [
            0, -0.0, 1, -1, 0.1, 0.000001, 0.0000001, 1e9, 1e9.nextDown, 9_007_199_254.740991, 9_007_199_254.740992,
            123456.789, -179.999999, 1e15, 1e16, 1e22, 1e300, .leastNonzeroMagnitude, .leastNormalMagnitude,
            .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 0.5, 2.5e-7,
        ] as [Double] {
            expectRoundTrip(v)
        }
    }

    @Test func fixedPointIsUsedForShortDecimals() {
        // Amounts and degrees read as people write them, not in exponent form.
        for (cents, text) in [(1250, "12.5"), (100, "1"), (5, "0.05"), (100_000_000_000, "1000000000")] {
            #expect(writeNumber(Double(cents) / 100) == text)
        }
        #expect(writeNumber(-33.868_8) == "-33.8688")
        #expect(writeNumber(0.000_001) == "0.000001")
    }

    @Test func integersAreWrittenInDecimal() async {
        await propertyCheck(count: 1000, input: Gen.int64(in: 0...Int64.max)) { v in
            var out: [UInt8] = []
            TransactionEncoder.appendInteger(v, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(v))
        }
    }
}
