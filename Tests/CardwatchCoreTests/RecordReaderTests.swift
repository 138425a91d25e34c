import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

/// One record as `RecordReader` delivered it, copied out of its buffer.
struct DeliveredRecord: Equatable, CustomStringConvertible {
    var line: Int
    var bytes: [UInt8]
    var oversized = false

    var description: String {
        let text = bytes.count > 60 ? "\(bytes.count) bytes" : String(decoding: bytes, as: UTF8.self).debugDescription
        return "\(line): \(text)\(oversized ? " oversized" : "")"
    }
}

func drain(_ reader: inout RecordReader) throws -> [DeliveredRecord] {
    var records: [DeliveredRecord] = []
    try reader.forEachRecord {
        records.append(DeliveredRecord(line: $0.lineNumber, bytes: Array($0.bytes), oversized: $0.oversized))
    }
    return records
}

func readRecords(_ bytes: [UInt8], csv: Bool = false) throws -> [DeliveredRecord] {
    try withTempFile(bytes, suffix: csv ? ".csv" : ".jsonl") { path in
        var reader = try RecordReader(path: path, csv: csv)
        defer { reader.close() }
        return try drain(&reader)
    }
}

let maxRecord = RecordReader.maxRecordBytes

/// What the reader should deliver for `lines` joined by `\n`: one record per non-blank line, the first
/// `maxRecordBytes` of a longer one flagged as oversized.
func expectedRecords(_ lines: [[UInt8]]) -> [DeliveredRecord] {
    var records: [DeliveredRecord] = []
    for (i, line) in lines.enumerated() where !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
        if line.count > maxRecord {
            records.append(DeliveredRecord(line: i + 1, bytes: Array(line[..<maxRecord]), oversized: true))
        } else {
            records.append(DeliveredRecord(line: i + 1, bytes: line))
        }
    }
    return records
}

func fill(_ count: Int, _ byte: Character = "a") -> [UInt8] { Array(repeating: byte.asciiValue!, count: count) }

@Suite struct RecordReaderTests {
    @Test func blankLinesAreSkippedAndTheLastLineNeedsNoNewline() throws {
        let records = try readRecords(Array("a\n\n  \n\t\nb\r\n\r\n \r\nc".utf8))
        #expect(
            records == [
                DeliveredRecord(line: 1, bytes: Array("a".utf8)), DeliveredRecord(line: 5, bytes: Array("b".utf8)),
                DeliveredRecord(line: 8, bytes: Array("c".utf8)),
            ])
        #expect(try readRecords(Array("only".utf8)) == [DeliveredRecord(line: 1, bytes: Array("only".utf8))])
        #expect(try readRecords([]) == [])
        #expect(try readRecords(Array("\n\n \n".utf8)) == [])
    }

    @Test func csvQuotedNewlinesStayInTheirRecord() throws {
        let text = "h1,h2\n\"x\ny\",z\r\n\"a \"\"q\"\"\r\n\",b\nnext"
        let records = try readRecords(Array(text.utf8), csv: true)
        #expect(
            records == [
                DeliveredRecord(line: 1, bytes: Array("h1,h2".utf8)),
                DeliveredRecord(line: 2, bytes: Array("\"x\ny\",z".utf8)),
                DeliveredRecord(line: 4, bytes: Array("\"a \"\"q\"\"\r\n\",b".utf8)),
                DeliveredRecord(line: 6, bytes: Array("next".utf8)),
            ])
        // JSON Lines has no quoting across lines.
        #expect(try readRecords(Array("\"x\ny\"".utf8)).map(\.line) == [1, 2])
    }

    @Test func aRecordLongerThanTheLimitIsFlaggedAndReadingGoesOn() throws {
        let lines = [
            Array(#"{"first":1}"#.utf8), Array("{".utf8) + fill(maxRecord + 5000, "x"), Array("after".utf8), [],
            fill(3, " "), fill(maxRecord * 2 + 17, "y"), fill(maxRecord + 1, "z"), Array("last".utf8),
        ]
        let bytes = Array(lines.joined(separator: [0x0A]))
        let records = try readRecords(bytes)
        #expect(records == expectedRecords(lines), "\(records)")
        #expect(records.filter(\.oversized).map(\.line) == [2, 6, 7])
        #expect(try readRecords(bytes, csv: true) == expectedRecords(lines))
    }

    @Test func aRecordOfExactlyTheLimitIsDeliveredWhole() throws {
        for before in [[], Array("short".utf8)] as [[UInt8]] {
            let lines = before.isEmpty ? [fill(maxRecord), Array("next".utf8)] : [before, fill(maxRecord), Array("next".utf8)]
            let records = try readRecords(Array(lines.joined(separator: [0x0A])))
            #expect(records == expectedRecords(lines), "\(records)")
            #expect(records.allSatisfy { !$0.oversized })
        }
        let over = [Array("short".utf8), fill(maxRecord + 1), Array("next".utf8)]
        #expect(try readRecords(Array(over.joined(separator: [0x0A]))) == expectedRecords(over))
    }

    @Test func anOversizedLastLineWithoutNewline() throws {
        let lines = [Array("a".utf8), fill(maxRecord + 10)]
        #expect(try readRecords(Array(lines.joined(separator: [0x0A]))) == expectedRecords(lines))
    }

    @Test func randomLinesAcrossManyBufferFills() async throws {
        let files = Generator<[[UInt8]], Shrink.None<[[UInt8]]>> { rng in
            var lines: [[UInt8]] = []
            var total = 0
            while total < 3 * maxRecord {
                let length: Int
                switch Int.random(in: 0..<100, using: &rng) {
                case 0: length = Int.random(in: maxRecord - 2...maxRecord + 2, using: &rng)
                case 1: length = Int.random(in: maxRecord...2 * maxRecord, using: &rng)
                case 2..<10: length = 0
                default: length = Int.random(in: 1...40_000, using: &rng)
                }
                let byte = UInt8.random(in: 0x21...0x7E, using: &rng)  // no quote games here: see the CSV test
                lines.append(Array(repeating: byte == UInt8(ascii: "\"") ? 0x41 : byte, count: length))
                total += length + 1
            }
            return lines
        }
        await propertyCheck(count: 3, input: files, Gen.bool) { lines, csv in
            do {
                let records = try readRecords(Array(lines.joined(separator: [0x0A])), csv: csv)
                #expect(records == expectedRecords(lines))
            } catch {
                Issue.record(error)
            }
        }
    }

    @Test func readsAPipeThatDeliversSmallChunks() async throws {
        let inputs = Generator<([[UInt8]], [Int]), Shrink.None<([[UInt8]], [Int])>> { rng in
            let lines = (0..<300).map { _ in
                (0..<Int.random(in: 0...3000, using: &rng)).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) }
            }
            let chunks = (0..<500).map { _ in Int.random(in: 1...4096, using: &rng) }
            return (lines, chunks)
        }
        await propertyCheck(count: 3, input: inputs) { lines, chunks in
            let bytes = Array(lines.joined(separator: [0x0A]))
            let pipe = Pipe()
            let writer = pipe.fileHandleForWriting
            let thread = Thread {
                var offset = 0
                var k = 0
                while offset < bytes.count {
                    let n = min(chunks[k % chunks.count], bytes.count - offset)
                    writer.write(Data(bytes[offset..<offset + n]))
                    offset += n
                    k += 1
                }
                try? writer.close()
            }
            thread.start()
            var reader = RecordReader(fileDescriptor: pipe.fileHandleForReading.fileDescriptor, csv: false)
            do {
                #expect(try drain(&reader) == expectedRecords(lines))
            } catch {
                Issue.record(error)
            }
        }
    }
}
