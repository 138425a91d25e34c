import ArgumentParser
import CardwatchCore
import Foundation

/// Reading the files commands take: transaction histories (every bad record reported
/// and optionally dead-lettered) and label events.
enum Input {
    /// The valid transactions of `path` and the rejected records. `policy`: the PAN key;
    /// files of history get no wall-clock bound on event times.
    static func transactions(
        _ path: String, format: RecordFormat?, deadLetters: String?, command: String, policy: IngestPolicy = .offline
    ) throws -> ([Transaction], InvalidRecords) {
        var reader: TransactionFileReader
        do { reader = try TransactionFileReader(path: path, format: format, policy: policy) } catch {
            printError("cardwatch \(command): \(error.description)")
            throw ExitCode(2)
        }
        defer { reader.close() }
        var dead = try deadLetters.map { try ByteSink(path: $0) }
        var transactions: [Transaction] = []
        var invalid = InvalidRecords()
        try reader.forEachRecord { line, outcome in
            switch outcome {
            case .valid(let t, _): transactions.append(t)
            case .invalid(let error, let raw):
                invalid.add(line: line, error)
                if invalid.count <= 10 { printError("\(path):\(line): \(error)") }
                if var d = dead {
                    DeadLetter.append(line: line, error: error, raw: raw, to: &d.buffer)
                    try d.flushIfFull()
                    dead = d
                }
            }
        }
        try dead?.close()
        if invalid.count > 10 { printError("… \(invalid.count - 10) more invalid records in \(path)") }
        return (transactions, invalid)
    }

    /// Every label event of a JSON Lines file; any bad one is an error naming its line.
    static func labels(_ path: String, command: String) throws -> [LabelEvent] {
        var reader: RecordReader
        do { reader = try RecordReader(path: path, csv: false) } catch {
            printError("cardwatch \(command): \(error.description)")
            throw ExitCode(2)
        }
        defer { reader.close() }
        var decoder = LabelJSONDecoder()
        var out: [LabelEvent] = []
        var bad = 0
        try reader.forEachRecord { line in
            switch decoder.decode(line.bytes) {
            case .success(let l): out.append(l)
            case .failure(let e):
                bad += 1
                if bad <= 10 { printError("\(path):\(line.lineNumber): \(e)") }
            }
        }
        if bad > 0 { throw ValidationError("\(bad) invalid label events in \(path)") }
        return out
    }

    /// An RFC 3339 instant or a plain date (midnight UTC), in microseconds.
    static func instant(_ text: String, option: String) throws -> Int64 {
        if let t = Timestamp(rfc3339: text) { return t.microseconds }
        if let t = Timestamp(rfc3339: text + "T00:00:00Z") { return t.microseconds }
        throw ValidationError("\(option) '\(text)' is not a date (2026-01-22) or an RFC 3339 date-time")
    }
}

extension InvalidRecords {
    /// The share of `total` records that were invalid.
    func fraction(of total: Int) -> Double { total > 0 ? Double(count) / Double(total) : 0 }

    /// `path: N of M records invalid and skipped (x %):` and a line per reason, most frequent first.
    func report(_ path: String, of total: Int) -> String {
        var lines = [
            "\(path): \(grouped(count)) of \(grouped(total)) records invalid and skipped "
                + "(\(String(format: "%.2f", 100 * fraction(of: total))) %), by reason:"
        ]
        let width = byReason.keys.map(\.count).max() ?? 0
        for (reason, r) in byReason.sorted(by: { ($0.value.count, $1.key) > ($1.value.count, $0.key) }) {
            let padded = reason + String(repeating: " ", count: width - reason.count)
            lines.append("  \(padded)  \(grouped(r.count))  e.g. line \(r.line): \(r.problem)")
        }
        return lines.joined(separator: "\n")
    }
}
