/// The two file formats of schema v1.
public enum RecordFormat: String, Sendable, CaseIterable {
    case jsonl, csv

    /// CSV for a `.csv` name, JSON Lines otherwise.
    public static func guess(path: String) -> RecordFormat {
        path.lowercased().hasSuffix(".csv") ? .csv : .jsonl
    }
}

/// What reading one record gave. The bytes hold no card number: a valid record's are as
/// it may be stored (`TransactionJSONDecoder.redacted`), an invalid one's have card numbers
/// and look-alikes masked (first six and last four digits).
public enum RecordOutcome {
    /// A valid record, with its bytes as read (without the line break).
    case valid(Transaction, raw: UnsafeRawBufferPointer)
    /// The record's raw bytes are kept so that a dead-letter log loses nothing but card numbers.
    case invalid(RecordError, raw: UnsafeRawBufferPointer)
}

/// Reads a JSON Lines or CSV file of transactions, validating every record.
public struct TransactionFileReader {
    var reader: RecordReader
    let format: RecordFormat
    let policy: IngestPolicy

    public init(path: String, format: RecordFormat? = nil, policy: IngestPolicy = .offline) throws(FileError) {
        self.format = format ?? .guess(path: path)
        self.policy = policy
        self.reader = try RecordReader(path: path, csv: self.format == .csv)
    }

    public mutating func close() { reader.close() }

    /// Calls `body` with each record's line number and outcome, in file order.
    public mutating func forEachRecord(_ body: (Int, RecordOutcome) throws -> Void) throws {
        var json = TransactionJSONDecoder(policy: policy)
        var csv: TransactionCSVDecoder? = nil
        let isCSV = format == .csv
        var hasCardNumbers = false  // a CSV column of card numbers: rows are handed out masked
        func invalid(_ line: Int, _ error: RecordError, _ text: [UInt8]) throws {
            try text.withUnsafeBytes { try body(line, .invalid(error, raw: $0)) }
        }
        try reader.forEachRecord { line in
            if line.oversized {
                let error = RecordError(
                    record: "longer than \(RecordReader.maxRecordBytes) bytes; the dead-letter copy is its start")
                try invalid(line.lineNumber, error, CardNumber.deadLetterText(line.bytes))
                return
            }
            if isCSV {
                guard csv != nil else {
                    let header = TransactionCSVDecoder(header: line.bytes, policy: policy)
                    csv = header
                    hasCardNumbers = header.columns.contains(.cardNumber)
                    let issues = header.headerIssues
                    if !issues.isEmpty {
                        try invalid(line.lineNumber, RecordError(issues: issues), CardNumber.deadLetterText(line.bytes))
                    }
                    return
                }
                switch csv!.decode(line.bytes) {
                case .success(let t):
                    if hasCardNumbers {
                        try csv!.deadLetterText(line.bytes).withUnsafeBytes { try body(line.lineNumber, .valid(t, raw: $0)) }
                    } else {
                        try body(line.lineNumber, .valid(t, raw: line.bytes))
                    }
                case .failure(let e): try invalid(line.lineNumber, e, csv!.deadLetterText(line.bytes))
                }
            } else {
                switch json.decode(line.bytes) {
                case .success(let t):
                    if let stored = json.redacted {
                        try stored.withUnsafeBytes { try body(line.lineNumber, .valid(t, raw: $0)) }
                    } else {
                        try body(line.lineNumber, .valid(t, raw: line.bytes))
                    }
                case .failure(let e): try invalid(line.lineNumber, e, CardNumber.deadLetterText(line.bytes))
                }
            }
        }
    }
}
