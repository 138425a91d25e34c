import ArgumentParser
import CardwatchCore
import Foundation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a JSON Lines or CSV file of transactions against schema v1.",
        discussion: """
            Prints each bad record as 'FILE:LINE: field: problem; field: problem' and a summary.
            A transaction_id seen before in the file is reported as a duplicate.
            Event times are checked against the schema, not the wall clock: files of
            history from any year validate (import and the HTTP API bound them).
            A card_number needs the PAN secret (--pan-secret-file or CARDWATCH_PAN_SECRET);
            card numbers are masked in every message and dead letter.
            Exit status: 0 when every record is valid, 1 when any is not, 2 when the file cannot be read.
            """
    )

    @Argument(help: "The file to check ('-' for standard input).") var file: String
    @Option(help: "jsonl or csv (default: from the file name).", transform: parseFormat) var format: RecordFormat?
    @Option(help: "Print at most this many problems (all are counted).") var maxErrors = 1_000
    @Option(help: "Write every rejected record, with its line and reasons, as JSON Lines to this file.")
    var deadLetters: String?
    @OptionGroup var pan: PANSecretOptions

    func run() throws {
        var reader: TransactionFileReader
        let policy = try pan.offlinePolicy()
        do { reader = try TransactionFileReader(path: file, format: format, policy: policy) } catch {
            printError("cardwatch validate: \(error.description)")
            throw ExitCode(2)
        }
        defer { reader.close() }
        var dead = try deadLetters.map { try ByteSink(path: $0) }
        var valid = 0
        var invalid = 0
        var duplicates = 0
        var printed = 0
        var seen: [String: Int] = [:]
        var out = try ByteSink(path: "-")
        func report(_ line: Int, _ message: String) {
            guard printed < maxErrors else { return }
            printed += 1
            out.buffer.append(contentsOf: "\(file):\(line): \(message)\n".utf8)
        }
        do {
            try reader.forEachRecord { line, outcome in
                switch outcome {
                case .valid(let t, _):
                    if let first = seen.updateValue(line, forKey: t.transactionID) {
                        duplicates += 1
                        report(line, "transaction_id: '\(t.transactionID)' repeats the transaction on line \(first)")
                    } else {
                        valid += 1
                    }
                case .invalid(let error, let raw):
                    invalid += 1
                    report(line, error.description)
                    if var d = dead {
                        DeadLetter.append(line: line, error: error, raw: raw, to: &d.buffer)
                        try d.flushIfFull()
                        dead = d
                    }
                }
                try out.flushIfFull()
            }
        } catch {
            try out.flush()
            printError("cardwatch validate: \(file): \(error)")
            throw ExitCode(2)
        }
        try dead?.close()
        if printed < invalid + duplicates {
            out.buffer.append(contentsOf: "… \(invalid + duplicates - printed) more problems not shown (--max-errors)\n".utf8)
        }
        let total = valid + invalid + duplicates
        out.buffer.append(
            contentsOf:
                "\(file): \(grouped(total)) records, \(grouped(valid)) valid, \(grouped(invalid)) invalid, \(grouped(duplicates)) duplicate\n"
                .utf8)
        try out.flush()
        if invalid + duplicates > 0 { throw ExitCode(1) }
    }
}

/// The dead-letter form of a rejected record: where it was, why, and its exact text.
enum DeadLetter {
    static func append(line: Int, error: RecordError, raw: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"line":"#.utf8)
        TransactionEncoder.appendInteger(Int64(line), to: &out)
        out.append(contentsOf: #","reasons":["#.utf8)
        for (i, issue) in error.issues.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"field":"#.utf8)
            TransactionEncoder.appendJSONString(issue.field, to: &out)
            out.append(contentsOf: #","problem":"#.utf8)
            TransactionEncoder.appendJSONString(issue.problem, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: #"],"record":"#.utf8)
        TransactionEncoder.appendJSONString(String(decoding: raw, as: UTF8.self), to: &out)
        if String(validating: raw, as: UTF8.self) == nil {
            // "record" had to replace invalid UTF-8; the exact bytes travel alongside.
            out.append(contentsOf: #","record_base64":""#.utf8)
            out.append(contentsOf: Data(raw).base64EncodedString().utf8)
            out.append(UInt8(ascii: "\""))
        }
        out.append(contentsOf: "}\n".utf8)
    }
}
