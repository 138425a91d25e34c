extension RawRecord: JSONFieldSink {
    @inline(__always)
    public mutating func member(key: UnsafeRawBufferPointer, value: RawValue) {
        // Unknown members are ignored so that producers can add fields without breaking readers.
        if let field = TransactionField(name: key) {
            self[field] = value
            scanning = field == .cardNumber ? .cardNumber : field == .cardID ? .cardID : .field
        } else {
            scanning = .unknown
        }
    }

    @inline(__always)
    public mutating func memberBytes(_ member: Range<Int>, value: Range<Int>) {
        switch scanning {
        case .field: break
        case .cardID: cardIDValue = value
        case .cardNumber: cardNumberMember = member
        case .unknown: unknownValues.append(value)
        }
    }
}

/// JSON Lines → validated transactions. Reuses its scratch record between lines.
public struct TransactionJSONDecoder: Sendable {
    var record = RawRecord(isText: false)
    public let policy: IngestPolicy
    /// The last valid record as it may be stored, when that differs from its bytes as they
    /// came (nil, the usual case): its card number replaced by the card id derived from it,
    /// and card-number look-alikes in members the schema does not know masked.
    public private(set) var redacted: [UInt8]?

    public init(policy: IngestPolicy = .offline) { self.policy = policy }

    public mutating func decode(_ line: UnsafeRawBufferPointer) -> Result<Transaction, RecordError> {
        record.reset()
        redacted = nil
        do {
            try JSONScanner.scanObject(line, into: &record)
        } catch {
            return .failure(error)
        }
        let result = TransactionValidator.validate(record, in: line, policy: policy)
        // The usual record (no card number, no member the schema does not know) costs one test.
        if record.cardNumberMember != nil || !record.unknownValues.isEmpty, policy.mode == .ingest,
            case .success(let t) = result
        {
            redacted = PANRedaction.storable(line, record: record, cardID: t.cardID)
        }
        return result
    }

    public mutating func decode(_ line: String) -> Result<Transaction, RecordError> {
        var line = line
        return line.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }
}

/// CSV rows (RFC 4180, header row naming the schema's columns) → validated transactions.
public struct TransactionCSVDecoder: Sendable {
    /// The schema field of each column; nil for columns the schema does not know.
    public let columns: [TransactionField?]
    public let policy: IngestPolicy
    var record = RawRecord(isText: true)
    var cells = CSVCells()

    /// Reads the header. Problems (duplicate or missing required columns) are
    /// returned rather than thrown so a caller can report them and still read rows.
    public init(header: UnsafeRawBufferPointer, policy: IngestPolicy = .offline) {
        self.policy = policy
        var cells = CSVCells()
        var columns: [TransactionField?] = []
        if (try? cells.split(header)) != nil {
            for cell in cells.cells {
                switch cell {
                case .string(let s):
                    columns.append(TransactionField(name: UnsafeRawBufferPointer(rebasing: header[s.start..<s.start + s.count])))
                case .unescaped(let s):
                    var s = s
                    columns.append(s.withUTF8 { TransactionField(name: UnsafeRawBufferPointer($0)) })
                default:
                    columns.append(nil)
                }
            }
        }
        self.columns = columns
    }

    /// What is wrong with the header, if anything.
    public var headerIssues: [FieldIssue] {
        var issues: [FieldIssue] = []
        var seen = Set<TransactionField>()
        for case let f? in columns where !seen.insert(f).inserted {
            issues.append(FieldIssue(field: f.name, problem: "column appears more than once in the header"))
        }
        for f in [TransactionField.transactionID, .cardID, .amount, .timestamp, .merchantID] where !seen.contains(f) {
            if f == .cardID && seen.contains(.cardNumber) { continue }
            issues.append(FieldIssue(field: f.name, problem: "required column missing from the CSV header"))
        }
        return issues
    }

    /// A rejected row's text as a dead letter may keep it: the `card_number` cell masked
    /// (first six and last four digits) and card-number look-alikes anywhere masked.
    public func deadLetterText(_ row: UnsafeRawBufferPointer) -> [UInt8] {
        var bytes = Array(row)
        if let column = columns.firstIndex(of: .cardNumber) {
            if let ranges = CSVCells.ranges(row), column < ranges.count {
                var cell = ranges[column]
                if cell.count >= 2 && bytes[cell.lowerBound] == UInt8(ascii: "\"") {
                    cell = cell.lowerBound + 1..<cell.upperBound - 1
                }
                CardNumber.maskValue(&bytes, cell, escaped: false)
            } else {
                // A row that does not split: every long digit run could be the card number.
                CardNumber.maskDigitRuns(&bytes, atLeast: 12)
            }
        }
        CardNumber.maskLookalikes(in: &bytes)
        return bytes
    }

    public mutating func decode(_ row: UnsafeRawBufferPointer) -> Result<Transaction, RecordError> {
        record.reset()
        do {
            try cells.split(row)
        } catch {
            return .failure(error)
        }
        guard cells.cells.count == columns.count else {
            return .failure(RecordError(record: "row has \(cells.cells.count) cells but the header has \(columns.count) columns"))
        }
        for (i, column) in columns.enumerated() {
            guard let column else { continue }
            record.values[column.rawValue] = cells.cells[i]
        }
        return TransactionValidator.validate(record, in: row, policy: policy)
    }

    public mutating func decode(_ row: String) -> Result<Transaction, RecordError> {
        var row = row
        return row.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }
}

/// Splits one CSV record into cells: spans where the cell has no quotes inside,
/// unescaped strings where it had doubled quotes.
struct CSVCells: Sendable {
    var cells: [RawValue] = []

    mutating func split(_ b: UnsafeRawBufferPointer) throws(RecordError) {
        cells.removeAll(keepingCapacity: true)
        var i = 0
        let n = b.count
        while true {
            if i < n, b[i] == UInt8(ascii: "\"") {
                let start = i + 1
                i = start
                var unescaped: [UInt8]? = nil
                while true {
                    guard i < n else { throw RecordError(record: "malformed CSV: unterminated quoted cell \(cells.count + 1)") }
                    if b[i] == UInt8(ascii: "\"") {
                        if i + 1 < n, b[i + 1] == UInt8(ascii: "\"") {
                            if unescaped == nil { unescaped = Array(b[start..<i]) }
                            unescaped!.append(UInt8(ascii: "\""))
                            i += 2
                            continue
                        }
                        break
                    }
                    unescaped?.append(b[i])
                    i += 1
                }
                let end = i
                i += 1
                guard i == n || b[i] == UInt8(ascii: ",") else {
                    throw RecordError(record: "malformed CSV: text after the closing quote of cell \(cells.count + 1)")
                }
                if let u = unescaped {
                    guard let s = String(validating: u, as: UTF8.self) else {
                        throw RecordError(record: "CSV cell \(cells.count + 1) is not valid UTF-8")
                    }
                    cells.append(.unescaped(s))
                } else {
                    try cells.append(Self.checked(b, start, end, cell: cells.count + 1))
                }
            } else {
                let start = i
                while i < n, b[i] != UInt8(ascii: ",") { i += 1 }
                try cells.append(Self.checked(b, start, i, cell: cells.count + 1))
            }
            if i >= n { return }
            i += 1  // the comma
        }
    }

    /// Each cell's bytes (quotes included) in a row, or nil when the row does not split.
    static func ranges(_ b: UnsafeRawBufferPointer) -> [Range<Int>]? {
        var out: [Range<Int>] = []
        var i = 0
        while true {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "\"") {
                i += 1
                while true {
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: "\"") {
                        if i + 1 < b.count, b[i + 1] == UInt8(ascii: "\"") {
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    i += 1
                }
                guard i == b.count || b[i] == UInt8(ascii: ",") else { return nil }
            } else {
                while i < b.count, b[i] != UInt8(ascii: ",") { i += 1 }
            }
            out.append(start..<i)
            if i >= b.count { return out }
            i += 1
        }
    }

    static func checked(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int, cell: Int) throws(RecordError) -> RawValue {
        var ascii = true
        for k in start..<end where b[k] >= 0x80 {
            ascii = false
            break
        }
        if !ascii, String(validating: UnsafeRawBufferPointer(rebasing: b[start..<end]), as: UTF8.self) == nil {
            throw RecordError(record: "CSV cell \(cell) is not valid UTF-8")
        }
        return .string(Span(start: start, count: end - start))
    }
}

/// One CSV record's cells as strings (RFC 4180 quoting), for tables other than transactions.
public enum CSVLine {
    public static func cells(_ line: UnsafeRawBufferPointer) throws(RecordError) -> [String] {
        var c = CSVCells()
        try c.split(line)
        return c.cells.map { v in
            switch v {
            case .string(let s):
                String(decoding: UnsafeRawBufferPointer(rebasing: line[s.start..<s.start + s.count]), as: UTF8.self)
            case .unescaped(let s): s
            default: ""
            }
        }
    }
}
