public import CardwatchCore
public import CardwatchFeatures

/// A record the ingest stage refused, kept whole with every reason.
public struct DeadLetter: Sendable, Equatable {
    /// Where it came from: a file path, `generator`, `http`.
    public var source: String
    /// Its place in the source (a line number), when there is one.
    public var line: Int?
    public var issues: [FieldIssue]
    /// The record's bytes as received, but for card numbers: the value of a `card_number`
    /// and anything else that reads as one are masked (first six and last four digits).
    public private(set) var raw: [UInt8]

    /// `raw` is masked here, whatever the caller did: no card number reaches the dead letters.
    public init(source: String, line: Int?, issues: [FieldIssue], raw: [UInt8]) {
        self.source = source
        self.line = line
        self.issues = issues
        self.raw = CardNumber.deadLetterText(raw)
    }
}

/// One valid transaction on its way into the log.
public struct IngestRecord: Sendable {
    public var transaction: Transaction
    /// The canonical JSON line (schema v1) stored in the `transactions` log.
    public var payload: [UInt8]
    public var line: Int?

    public init(transaction: Transaction, line: Int? = nil) {
        self.transaction = transaction
        var out: [UInt8] = []
        out.reserveCapacity(320)
        TransactionEncoder.appendJSONLine(transaction, to: &out)
        if out.last == UInt8(ascii: "\n") { out.removeLast() }
        payload = out
        self.line = line
    }

    /// A record received as a JSON line: stored as it came, trailing whitespace trimmed.
    public init(transaction: Transaction, raw: UnsafeRawBufferPointer, line: Int? = nil) {
        self.transaction = transaction
        var end = raw.count
        while end > 0,
            raw[end - 1] == UInt8(ascii: "\r") || raw[end - 1] == UInt8(ascii: " ") || raw[end - 1] == UInt8(ascii: "\t")
        {
            end -= 1
        }
        payload = Array(raw[..<end])
        self.line = line
    }
}

extension TransactionJSONDecoder {
    /// Decodes one JSON record for the log: a valid one as it may be stored
    /// (`redacted` when it carried a card number), or the record's problems.
    public mutating func ingestRecord(_ raw: UnsafeRawBufferPointer, line: Int?) -> Result<IngestRecord, RecordError> {
        switch decode(raw) {
        case .success(let t):
            guard let stored = redacted else { return .success(IngestRecord(transaction: t, raw: raw, line: line)) }
            return .success(stored.withUnsafeBytes { IngestRecord(transaction: t, raw: $0, line: line) })
        case .failure(let e): return .failure(e)
        }
    }
}

/// What the ingest stage hands the store in one atomic write.
public struct IngestBatch: Sendable {
    public var source: String
    public var records: [IngestRecord] = []
    public var deadLetters: [DeadLetter] = []
    /// Where the source resumes after this batch (a file's byte or record count), committed
    /// with the batch so that a restarted import neither skips nor repeats records.
    public var resumeAt: Int64?

    public init(source: String) { self.source = source }
    public var isEmpty: Bool { records.isEmpty && deadLetters.isEmpty }
}

public struct IngestOutcome: Sendable, Equatable {
    public var accepted = 0
    /// Transaction ids already in the log (or earlier in the batch): recorded, not appended.
    public var duplicates: [String] = []
    public var deadLetters = 0
    public init() {}
}

/// One processed transaction: the silver row, and an alert when its tier is high or above.
public struct ProcessedTransaction: Sendable {
    public var transaction: Transaction
    public var features: FeatureVector
    public var decision: Decision
    /// From its append to the log to its decision.
    public var latencyMicros: Int64
    public var partition: Int
    public var offset: Int64
    /// The sequence number of the commit that wrote it.
    public var sequence: Int64

    public init(
        transaction: Transaction, features: FeatureVector, decision: Decision, latencyMicros: Int64, partition: Int,
        offset: Int64, sequence: Int64
    ) {
        self.transaction = transaction
        self.features = features
        self.decision = decision
        self.latencyMicros = latencyMicros
        self.partition = partition
        self.offset = offset
        self.sequence = sequence
    }
}

/// A label the runtime committed, with whether its transaction was known.
public struct ProcessedLabel: Sendable {
    public var label: LabelEvent
    /// Whether its transaction had been processed (and so counted in merchant fraud rates).
    public var matched: Bool
    /// The sequence number of the commit that wrote it.
    public var sequence: Int64

    public init(label: LabelEvent, matched: Bool, sequence: Int64) {
        self.label = label
        self.matched = matched
        self.sequence = sequence
    }
}

/// One committed batch as the warehouse holds it: what the live views, the metrics and the
/// synchronous answers are told of.
public struct ProcessedBatch: Sendable {
    /// The commit's sequence number: the order batches were committed in (the warehouse's
    /// `arrival` column, which data directories from before the partitioned runtime numbered by append).
    public var sequence: Int64
    public var transactions: [ProcessedTransaction] = []
    public var labels: [ProcessedLabel] = []
    /// When the batch was decided (µs since 1970, wall clock), for the latency to its commit.
    public var decidedAt: Int64?
    /// The last batch before a clean stop: whatever the store folds in behind (aggregates) is
    /// written with it.
    public var final = false

    public init(sequence: Int64) { self.sequence = sequence }
}

/// What the sources need of the store: atomic ingest (log, dead letters, duplicate check,
/// source position) and label appends. The embedded implementation is
/// `CardwatchStorage.SQLiteEventLog`; each write is one SQLite transaction. The log it writes
/// to is a member, not a base: the warehouse is not a kind of log.
public protocol PipelineStore: Sendable {
    /// The log the ingest appends to.
    var log: any EventLog { get }
    func ingest(_ batch: IngestBatch) throws -> IngestOutcome
    /// Appends label events to the `labels` log (routed to their transaction's card) and the
    /// source's resume position, atomically.
    func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws
    /// Where a source resumes (its last committed `resumeAt`), nil when it never committed.
    func resumePosition(source: String) throws -> Int64?
}
