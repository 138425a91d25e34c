import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

/// Random and damaged input lines.
enum Fuzz {
    static let tokens: [[UInt8]] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "\t", "\r", "\"transaction_id\"", "\"card_id\"", "\"amount\"",
        "\"timestamp\"", "\"merchant_id\"", "\"latitude\"", "\"longitude\"", "\"is_fraud\"", "\"fraud_pattern\"",
        "\"currency\"", "1", "0", "-0.5e3", "1e999", "01", "-", "1.", "true", "false", "null", "tru",
        "\"2026-03-01T12:00:00Z\"", "\"x\"", "\\u00e9", "\\ud83d\\ude00", "\\ud800", "\\u12", "\\n", "é", "😀",
        "\"geo_jump\"", "\"USD\"", "2026-03-01T12:00:00Z", "12.5", "pos",
    ].map { Array($0.utf8) }

    static let structural = Array("\"{}[],:\\".utf8)

    /// A random line: raw bytes, or a soup of JSON and CSV tokens.
    static func line<R: RandomNumberGenerator>(using rng: inout R, newlines: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = []
        if Bool.random(using: &rng) {
            for _ in 0..<Int.random(in: 0...120, using: &rng) { bytes.append(UInt8.random(in: 0...255, using: &rng)) }
        } else {
            for _ in 0..<Int.random(in: 0...40, using: &rng) { bytes += tokens.randomElement(using: &rng)! }
        }
        if !newlines { bytes.removeAll { $0 == UInt8(ascii: "\n") } }
        return bytes
    }

    /// `line` with one to four random byte flips, deletions and insertions of JSON's structural characters.
    static func mutate<R: RandomNumberGenerator>(_ line: [UInt8], using rng: inout R) -> [UInt8] {
        var bytes = line
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let i = Int.random(in: 0...bytes.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0 where i < bytes.count: bytes[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 1 where i < bytes.count: bytes[i] = UInt8.random(in: 0...255, using: &rng)
            case 2 where i < bytes.count:
                bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...4, using: &rng)))
            case 3: bytes.insert(structural.randomElement(using: &rng)!, at: i)
            default: bytes.insert(contentsOf: tokens.randomElement(using: &rng)!, at: i)
            }
        }
        return bytes
    }
}

/// Why a decode result is not acceptable handling of `input`, or nil when it is.
func fuzzViolation(_ result: Result<Transaction, RecordError>) -> String? {
    switch result {
    case .success(let t):
        // Anything accepted must survive its own round trip.
        if decodeJSON(jsonBytes(t)) != .success(t) { return "accepted \(t) does not round-trip" }
        if !(t.amount > 0 && t.amount <= 1e9) { return "accepted amount \(t.amount)" }
        return nil
    case .failure(let e):
        if e.issues.isEmpty { return "a failure without issues" }
        if let bad = e.issues.first(where: { $0.problem.isEmpty || $0.field.isEmpty }) { return "empty issue \(bad)" }
        return nil
    }
}

/// Feeds `line` to both decoders; returns the violations found.
func fuzzBoth(_ line: [UInt8], json: inout TransactionJSONDecoder, csv: inout TransactionCSVDecoder) -> [String] {
    let fromJSON = line.withUnsafeBytes { json.decode($0) }
    let fromCSV = line.withUnsafeBytes { csv.decode($0) }
    return [fuzzViolation(fromJSON), fuzzViolation(fromCSV)].compactMap { $0 }
}

let lineBatches = Generator<[[UInt8]], Shrink.None<[[UInt8]]>> { rng in
    (0..<1000).map { _ in Fuzz.line(using: &rng) }
}

let mutatedBatches = Generator<[[UInt8]], Shrink.None<[[UInt8]]>> { rng in
    var lines: [[UInt8]] = []
    while lines.count < 1000 {
        let t = Rand.transaction(using: &rng)
        for valid in [withoutNewline(jsonBytes(t)), withoutNewline(csvBytes(t))] {
            for _ in 0..<5 { lines.append(Fuzz.mutate(valid, using: &rng)) }
        }
    }
    return lines
}

@Suite struct FuzzTests {
    static let batches = 12  // of 1000 lines, for random lines and for mutated lines alike

    @Test func randomLinesGiveAnOutcomeWithReasons() async {
        await propertyCheck(count: Self.batches, input: lineBatches) { lines in
            var json = TransactionJSONDecoder()
            var csv = csvDecoder()
            for line in lines {
                let violations = fuzzBoth(line, json: &json, csv: &csv)
                #expect(violations.isEmpty, "\(violations) for \(line)")
            }
        }
    }

    @Test func mutatedValidLinesGiveAnOutcomeWithReasons() async {
        await propertyCheck(count: Self.batches, input: mutatedBatches) { lines in
            var json = TransactionJSONDecoder()
            var csv = csvDecoder()
            for line in lines {
                let violations = fuzzBoth(line, json: &json, csv: &csv)
                #expect(violations.isEmpty, "\(violations) for \(String(decoding: line, as: UTF8.self))")
            }
        }
    }

    @Test func truncationsOfValidLinesAreRefusedWithReasons() async {
        let batches = Generator<[Transaction], Shrink.None<[Transaction]>> { rng in
            (0..<10).map { _ in Rand.transaction(using: &rng) }
        }
        var total = 0
        await propertyCheck(count: 4, input: batches) { batch in
            var json = TransactionJSONDecoder()
            var csv = csvDecoder()
            for t in batch {
                // The closing brace comes last: no proper prefix of a JSON line is a whole record.
                let line = withoutNewline(jsonBytes(t))
                for n in 0..<line.count {
                    let result = Array(line[..<n]).withUnsafeBytes { json.decode($0) }
                    #expect(fuzzViolation(result) == nil)
                    if case .success = result { Issue.record("prefix accepted: \(line[..<n])") }
                    total += 1
                }
                // A CSV prefix is a valid row only when it cuts the last cell, the fraud pattern (free
                // text: a prefix of it is a pattern too).
                let row = withoutNewline(csvBytes(t))
                let lastCell = row.withUnsafeBytes { CSVCells.ranges($0)!.last!.lowerBound }
                for n in 0..<row.count {
                    let result = Array(row[..<n]).withUnsafeBytes { csv.decode($0) }
                    #expect(fuzzViolation(result) == nil)
                    if case .success(let decoded) = result {
                        var same = decoded
                        same.fraudPattern = t.fraudPattern
                        let cut = Array((decoded.fraudPattern ?? "").utf8)
                        #expect(
                            n >= lastCell && same == t && Array((t.fraudPattern ?? "").utf8).starts(with: cut),
                            "\(String(decoding: row[..<n], as: UTF8.self))")
                    }
                    total += 1
                }
            }
        }
        let fuzzed = 2 * Self.batches * 1000 + total
        #expect(fuzzed >= 20_000, "only \(fuzzed) lines")
    }

    @Test func aJSONLinesFileOfRandomLinesGivesOneOutcomePerRecord() async throws {
        let files = Generator<[[UInt8]], Shrink.None<[[UInt8]]>> { rng in
            (0..<2000).map { _ in
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: return Array(" \t".utf8).shuffled(using: &rng)
                case 1: return []
                case 2: return withoutNewline(jsonBytes(Rand.transaction(using: &rng)))
                case 3:
                    return Fuzz.mutate(withoutNewline(jsonBytes(Rand.transaction(using: &rng))), using: &rng)
                        .filter { $0 != UInt8(ascii: "\n") }
                default: return Fuzz.line(using: &rng, newlines: false)
                }
            }
        }
        await propertyCheck(count: 3, input: files, Gen.bool) { lines, crlf in
            expectOneOutcomePerRecord(lines, header: nil, crlf: crlf)
        }
    }

    @Test func aCSVFileOfRandomLinesGivesOneOutcomePerRecord() async throws {
        let files = Generator<[[UInt8]], Shrink.None<[[UInt8]]>> { rng in
            (0..<2000).map { _ in
                let line: [UInt8]
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: line = withoutNewline(csvBytes(Rand.transaction(using: &rng)))
                case 1: line = Fuzz.mutate(withoutNewline(csvBytes(Rand.transaction(using: &rng))), using: &rng)
                default: line = Fuzz.line(using: &rng, newlines: false)
                }
                // Without quotes every line is one record.
                return line.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\"") }
            }
        }
        await propertyCheck(count: 3, input: files, Gen.bool) { lines, crlf in
            expectOneOutcomePerRecord(lines, header: Array(csvHeaderLine.utf8), crlf: crlf)
        }
    }

    func expectOneOutcomePerRecord(
        _ lines: [[UInt8]], header: [UInt8]?, crlf: Bool, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let ending: [UInt8] = crlf ? [0x0D, 0x0A] : [0x0A]
        var bytes = header.map { $0 + ending } ?? []
        var expectedLines: [Int] = []
        let first = header == nil ? 1 : 2
        for (i, line) in lines.enumerated() {
            bytes += line + ending
            // Blank: nothing but spaces and tabs once the line ending (a single CR before LF) is removed.
            var content = line[...]
            if !crlf, content.last == 0x0D { content = content.dropLast() }
            if !content.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { expectedLines.append(first + i) }
        }
        do {
            let outcomes = try withTempFile(bytes, suffix: header == nil ? ".jsonl" : ".csv") {
                try readTransactions(path: $0)
            }
            #expect(outcomes.map(\.line) == expectedLines, sourceLocation: sourceLocation)
            for outcome in outcomes {
                #expect(fuzzViolation(outcome.result) == nil, sourceLocation: sourceLocation)
                let index = outcome.line - first
                guard lines.indices.contains(index) else { continue }
                var content = lines[index]
                if !crlf, content.last == 0x0D { content.removeLast() }
                // A dead letter keeps the record exactly, but for what reads as a card number.
                if case .failure = outcome.result {
                    #expect(outcome.raw == CardNumber.deadLetterText(content), sourceLocation: sourceLocation)
                }
            }
        } catch {
            Issue.record(error, sourceLocation: sourceLocation)
        }
    }
}
