/// The two file formats of schema v1.
public enum RecordFormat: String, Sendable, CaseIterable {
    case jsonl, csv

    /// CSV for a `.csv` name, JSON Lines otherwise.
    public static func guess(path: String) -> RecordFormat {
        path.lowercased().hasSuffix(".csv") ? .csv : .jsonl
    }
}

/// What reading one record gave.
public enum RecordOutcome {
    /// A valid record, with its bytes as read (without the line break).
    case valid(Transaction, raw: UnsafeRawBufferPointer)
    /// The record's raw bytes are kept so that a dead-letter log loses nothing.
    case invalid(RecordError, raw: UnsafeRawBufferPointer)
}

/// Reads a JSON Lines or CSV file of transactions, validating every record.
public struct TransactionFileReader {
    var reader: RecordReader
    let format: RecordFormat

    public init(path: String, format: RecordFormat? = nil) throws(FileError) {
        self.format = format ?? .guess(path: path)
        self.reader = try RecordReader(path: path, csv: self.format == .csv)
    }

    public mutating func close() { reader.close() }

    /// Calls `body` with each record's line number and outcome, in file order.
    public mutating func forEachRecord(_ body: (Int, RecordOutcome) throws -> Void) throws {
        var json = TransactionJSONDecoder()
        var csv: TransactionCSVDecoder? = nil
        let isCSV = format == .csv
        try reader.forEachRecord { line in
            if line.oversized {
                let error = RecordError(
                    record: "longer than \(RecordReader.maxRecordBytes) bytes; the dead-letter copy is its start")
                try body(line.lineNumber, .invalid(error, raw: line.bytes))
                return
            }
            if isCSV {
                guard csv != nil else {
                    let header = TransactionCSVDecoder(header: line.bytes)
                    csv = header
                    let issues = header.headerIssues
                    if !issues.isEmpty { try body(line.lineNumber, .invalid(RecordError(issues: issues), raw: line.bytes)) }
                    return
                }
                switch csv!.decode(line.bytes) {
                case .success(let t): try body(line.lineNumber, .valid(t, raw: line.bytes))
                case .failure(let e): try body(line.lineNumber, .invalid(e, raw: line.bytes))
                }
            } else {
                switch json.decode(line.bytes) {
                case .success(let t): try body(line.lineNumber, .valid(t, raw: line.bytes))
                case .failure(let e): try body(line.lineNumber, .invalid(e, raw: line.bytes))
                }
            }
        }
    }
}
