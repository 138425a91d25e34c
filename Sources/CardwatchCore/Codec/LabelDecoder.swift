/// JSON Lines → validated label events (`{"transaction_id", "is_fraud", "reported_at"}`).
public struct LabelJSONDecoder: Sendable {
    /// Label members share the transaction record's slots; `reported_at` uses the timestamp slot.
    struct Sink: JSONFieldSink {
        var record: RawRecord
        mutating func member(key: UnsafeRawBufferPointer, value: RawValue) {
            if key.elementsEqual("reported_at".utf8) {
                record[.timestamp] = value
            } else if let f = TransactionField(name: key), f == .transactionID || f == .isFraud {
                record[f] = value
            }
        }
    }

    var sink = Sink(record: RawRecord(isText: false))

    public init() {}

    public mutating func decode(_ line: UnsafeRawBufferPointer) -> Result<LabelEvent, RecordError> {
        sink.record.reset()
        do {
            try JSONScanner.scanObject(line, into: &sink)
        } catch {
            return .failure(error)
        }
        var v = FieldReader(record: sink.record, buffer: line)
        for f in sink.record.repeated { v.issue(f, "given more than once") }
        let id = v.identifier(.transactionID, required: true)
        if !v.present(.isFraud) { v.issue(.isFraud, "missing (required)") }
        let isFraud = v.flag(.isFraud)
        var reportedAt: Timestamp?
        if var text = v.text(.timestamp, required: true, expecting: "an RFC 3339 date-time string") {
            reportedAt = text.withUTF8 { Timestamp.parse(UnsafeRawBufferPointer($0)) }
            if reportedAt == nil {
                v.issue(.timestamp, "\(TransactionValidator.quoted(text)) is not an RFC 3339 date-time")
            }
        }
        let issues = v.issues.map { i in
            i.field == TransactionField.timestamp.name ? FieldIssue(field: "reported_at", problem: i.problem) : i
        }
        guard issues.isEmpty, let id, let isFraud, let reportedAt else { return .failure(RecordError(issues: issues)) }
        return .success(LabelEvent(transactionID: id, isFraud: isFraud, reportedAt: reportedAt))
    }

    public mutating func decode(_ line: String) -> Result<LabelEvent, RecordError> {
        var line = line
        return line.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }
}
