import CardwatchCore
import Testing

/// The scanner's array spans and repeated members (issue 14, item 4): what the HTTP API
/// uses instead of Foundation's JSONSerialization, which keeps one of two repeated members
/// silently and builds a tree of boxed values for every element.
@Suite struct JSONSpanTests {
    static func elements(_ text: String) throws -> [String] {
        let bytes = Array(text.utf8)
        let spans = try bytes.withUnsafeBytes { raw throws(RecordError) in try JSONScanner.arrayElements(raw) }
        return spans.map { String(decoding: bytes[$0.start..<$0.start + $0.count], as: UTF8.self) }
    }

    @Test func elementsAreTheirBytesAsSent() throws {
        #expect(try Self.elements("[]") == [])
        #expect(try Self.elements("  [ ]\n") == [])
        #expect(try Self.elements(#"[{"a":1}, {"b":[1,{"c":"]"}]} ,{}]"#) == [#"{"a":1}"#, #"{"b":[1,{"c":"]"}]}"#, "{}"])
        #expect(try Self.elements("[1, \"x\", null, true, [2]]") == ["1", "\"x\"", "null", "true", "[2]"])
        let twice = #"{"amount": 1, "amount": 2}"#
        #expect(try Self.elements("[\(twice)]") == [twice], "a repeated member is left for the decoder to refuse")
    }

    @Test(arguments: ["", "[", "[1,", "[1 2]", "[1,]", "{}", "[] x", "[\"a]", "[{\"a\":}]", String(repeating: "[", count: 100)])
    func malformedArraysAreErrors(_ text: String) {
        #expect(throws: RecordError.self) { try Self.elements(text) }
    }

    @Test func repeatedMembersAreNamedOnce() throws {
        func repeated(_ text: String) throws -> [String] {
            try Array(text.utf8).withUnsafeBytes { raw throws(RecordError) in try JSONScanner.repeatedMembers(raw) }
        }
        #expect(try repeated(#"{"a":1,"b":2}"#) == [])
        #expect(try repeated(#"{"a":1,"b":{"a":2},"a":3,"a":4,"b":5}"#) == ["a", "b"])
        #expect(try repeated(#"{"amount":1,"amo\u0075nt":2}"#) == ["amount"], "escapes resolved")
        #expect(throws: RecordError.self) { try repeated("[1]") }
    }
}
