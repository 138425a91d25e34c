import ArgumentParser
import CardwatchCore

/// Reading the files commands take: transaction histories (every bad record reported
/// and optionally dead-lettered) and label events.
enum Input {
    /// The valid transactions of `path` and how many records were rejected.
    static func transactions(_ path: String, format: RecordFormat?, deadLetters: String?, command: String) throws -> (
        [Transaction], Int
    ) {
        var reader: TransactionFileReader
        do { reader = try TransactionFileReader(path: path, format: format) } catch {
            printError("cardwatch \(command): \(error.description)")
            throw ExitCode(2)
        }
        defer { reader.close() }
        var dead = try deadLetters.map { try ByteSink(path: $0) }
        var transactions: [Transaction] = []
        var invalid = 0
        try reader.forEachRecord { line, outcome in
            switch outcome {
            case .valid(let t, _): transactions.append(t)
            case .invalid(let error, let raw):
                invalid += 1
                if invalid <= 10 { printError("\(path):\(line): \(error)") }
                if var d = dead {
                    DeadLetter.append(line: line, error: error, raw: raw, to: &d.buffer)
                    try d.flushIfFull()
                    dead = d
                }
            }
        }
        try dead?.close()
        if invalid > 10 { printError("… \(invalid - 10) more invalid records in \(path)") }
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
