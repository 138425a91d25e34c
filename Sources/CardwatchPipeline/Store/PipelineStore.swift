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

/// One append to `transactions` or `labels`, in the order appends happened: the
/// partition of each record. Consumed in this order, the log gives every run the same
/// sequence, whatever the batch boundaries, which is what makes replays exact.
public struct Arrival: Sendable, Equatable {
    public var id: Int64
    /// Per record: its partition, with `labelBit` set for a label.
    public var entries: [UInt16]

    public static let labelBit: UInt16 = 0x8000

    public init(id: Int64, entries: [UInt16]) {
        self.id = id
        self.entries = entries
    }

    /// The entry bits of a topic (nil: the topic is not in the arrival order).
    public static func entry(topic: Topic, partition: Int) -> UInt16? {
        switch topic {
        case .transactions: UInt16(partition)
        case .labels: labelBit | UInt16(partition)
        case .transactionsDLQ, .alerts: nil
        }
    }
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
    public var arrival: Int64

    public init(
        transaction: Transaction, features: FeatureVector, decision: Decision, latencyMicros: Int64, partition: Int,
        offset: Int64, arrival: Int64
    ) {
        self.transaction = transaction
        self.features = features
        self.decision = decision
        self.latencyMicros = latencyMicros
        self.partition = partition
        self.offset = offset
        self.arrival = arrival
    }
}

/// A label that reached the processor, with what it was matched to.
public struct ProcessedLabel: Sendable {
    public var label: LabelEvent
    /// Whether its transaction had been processed (and so counted in merchant fraud rates).
    public var matched: Bool
    public var arrival: Int64

    public init(label: LabelEvent, matched: Bool, arrival: Int64) {
        self.label = label
        self.matched = matched
        self.arrival = arrival
    }
}

/// Everything one processor batch writes, committed in one transaction with the offsets.
public struct ProcessedBatch: Sendable {
    /// The arrivals consumed, in order.
    public var arrivals: ClosedRange<Int64>
    /// The processor's next offsets after the batch, per partition.
    public var transactionOffsets: [Int64]
    public var labelOffsets: [Int64]
    /// The same before the batch (the store writes only the ones that moved).
    public let startTransactionOffsets: [Int64]
    public let startLabelOffsets: [Int64]
    public var transactions: [ProcessedTransaction] = []
    public var labels: [ProcessedLabel] = []
    /// The feature engine after this batch, when it is time for a checkpoint: a copy, whose
    /// arrays it shares with the live engine until that changes them, so the batch is not
    /// held up by building the snapshot (tens of milliseconds for a few thousand cards); the
    /// store builds and writes it after the commit.
    public var checkpoint: FeatureEngine?
    /// When the batch was decided (µs since 1970, wall clock), for the latency to its commit.
    public var decidedAt: Int64?
    /// The last batch before a clean stop: whatever the store folds in behind (aggregates) is
    /// written with it.
    public var final = false

    /// A batch starting at the given offsets (and, until records are added, ending there).
    public init(arrivals: ClosedRange<Int64>, transactionOffsets: [Int64], labelOffsets: [Int64]) {
        self.arrivals = arrivals
        self.transactionOffsets = transactionOffsets
        self.labelOffsets = labelOffsets
        startTransactionOffsets = transactionOffsets
        startLabelOffsets = labelOffsets
    }
}

/// A feature-state checkpoint: the engine after arrival `arrival`.
public struct Checkpoint: Sendable {
    public var arrival: Int64
    public var state: [UInt8]
    public init(arrival: Int64, state: [UInt8]) {
        self.arrival = arrival
        self.state = state
    }
}

/// The durable store the stages need beyond the log: atomic ingest (log + dead letters +
/// duplicate check + source position) and atomic batch commits (warehouse rows, alerts,
/// aggregates, offsets, position, checkpoints). The embedded implementation is
/// `CardwatchStorage.SQLiteEventLog`; both writes are single SQLite transactions. The log
/// it writes to is a member, not a base: the warehouse is not a kind of log.
public protocol PipelineStore: Sendable {
    /// The log the ingest appends to and the processor reads (the embedded store is its own).
    var log: any EventLog { get }
    func ingest(_ batch: IngestBatch) throws -> IngestOutcome
    /// Appends `batch` and, in the same transaction, commits the batch `decide` makes of the
    /// arrival it appended (nil: the append alone). `decide` is given the arrival before that
    /// one (0: none) and may throw to roll everything back; its error is rethrown as it is.
    func ingest(
        _ batch: IngestBatch, deciding decide: (_ previous: Int64, _ arrival: RecentArrival) throws -> ProcessedBatch?
    ) throws -> IngestOutcome
    /// Appends label events to the `labels` log (keyed by transaction) and the source's resume position, atomically.
    func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws
    /// Where a source resumes (its last committed `resumeAt`), nil when it never committed.
    func resumePosition(source: String) throws -> Int64?
    /// Writes the batch's outputs and moves the processor's offsets and position, atomically.
    func commit(_ batch: ProcessedBatch) throws
    /// Commits consecutive batches, in one transaction where the store can.
    func commit(_ batches: [ProcessedBatch]) throws
    /// The last arrival the processor committed (0: none).
    func processorPosition() throws -> Int64
    /// Arrivals after `arrival`, in order, until they hold at least `records` records (or there are no more).
    func arrivals(after arrival: Int64, records: Int) throws -> [Arrival]
    /// The newest feature-state checkpoint of an arrival at most `arrival`.
    func latestCheckpoint(atMost arrival: Int64) throws -> Checkpoint?
    /// Waits until the checkpoints of committed batches are durable (a store may write them after the batch).
    func waitForCheckpoints() throws
    /// For labels: the merchant and time of transactions processed from arrivals before `arrival`.
    func processedTransactions(_ ids: [String], before arrival: Int64) throws -> [String: (merchantID: String, time: Timestamp)]
    /// The committed arrivals after `arrival`, from memory, as `RecentAppends.take` hands them
    /// out; nil when the next one is not in memory (then `arrivals(after:)` and `read`).
    func recentArrivals(after arrival: Int64, records: Int) -> [RecentArrival]?
}

extension PipelineStore {
    /// Checkpoints commit with their batch.
    public func waitForCheckpoints() throws {}

    /// Batch by batch: each is still atomic on its own.
    public func commit(_ batches: [ProcessedBatch]) throws {
        for batch in batches { try commit(batch) }
    }

    /// A store that keeps nothing in memory: the processor always reads.
    public func recentArrivals(after arrival: Int64, records: Int) -> [RecentArrival]? { nil }
}
