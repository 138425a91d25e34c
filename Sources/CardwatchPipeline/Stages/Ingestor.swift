public import CardwatchCore
import Foundation

/// The ingest stage: validates records, sends the invalid ones to the dead-letter log with
/// their raw bytes and every reason, and appends the valid ones to the `transactions` log
/// keyed by card (duplicates by transaction_id are recorded, not appended) — one atomic
/// store write per batch, with the source's resume position.
public struct Ingestor: Sendable {
    public let store: any PipelineStore
    public var batchSize: Int
    /// Called before each batch is written; blocks while the processor is too far behind
    /// (backpressure: the log is bounded by the processor's lag, not by memory).
    public var pace: @Sendable () -> Void

    public init(store: any PipelineStore, batchSize: Int = 16384, pace: @escaping @Sendable () -> Void = {}) {
        self.store = store
        self.batchSize = max(1, batchSize)
        self.pace = pace
    }

    public struct Summary: Sendable, Equatable, Codable {
        public var read = 0
        public var accepted = 0
        public var deadLettered = 0
        public var duplicates = 0
        /// Records skipped because an earlier, interrupted import of the same file committed them.
        public var resumedAfter = 0
        /// Of the dead letters, those refused for an event time beyond the wall-clock bounds.
        public var outsideTimeBounds = 0
        public init() {}

        mutating func add(_ o: IngestOutcome) {
            accepted += o.accepted
            duplicates += o.duplicates.count
            deadLettered += o.deadLetters
        }
    }

    /// Feeds a JSON Lines or CSV file through the log, validated with `policy` (the PAN key
    /// and the wall-clock bounds of a live import). Resumes after the last record a previous
    /// import of the same path committed.
    public func importFile(_ path: String, format: RecordFormat? = nil, policy: IngestPolicy = .offline) throws -> Summary {
        let source = "file:" + URL(fileURLWithPath: path).standardizedFileURL.path
        let resume = Int(try store.resumePosition(source: source) ?? 0)
        var reader = try TransactionFileReader(path: path, format: format, policy: policy)
        let isJSON = (format ?? .guess(path: path)) == .jsonl
        defer { reader.close() }
        var summary = Summary()
        summary.resumedAfter = resume
        var batch = IngestBatch(source: source)
        var lastLine = resume
        try reader.forEachRecord { line, outcome in
            guard line > resume else { return }
            summary.read += 1
            lastLine = line
            switch outcome {
            case .valid(let t, let raw):
                // JSON Lines are stored as received (bronze is the raw input); CSV rows as canonical JSON.
                batch.records.append(
                    isJSON ? IngestRecord(transaction: t, raw: raw, line: line) : IngestRecord(transaction: t, line: line))
            case .invalid(let error, let raw):
                if error.issues.contains(where: EventTimeBounds.isBoundIssue) { summary.outsideTimeBounds += 1 }
                batch.deadLetters.append(DeadLetter(source: source, line: line, issues: error.issues, raw: Array(raw)))
            }
            if batch.records.count + batch.deadLetters.count >= batchSize {
                batch.resumeAt = Int64(lastLine)
                summary.add(try write(batch))
                batch = IngestBatch(source: source)
            }
        }
        batch.resumeAt = Int64(lastLine)
        if !batch.isEmpty || lastLine > resume { summary.add(try write(batch)) }
        return summary
    }

    /// Validates and writes records that arrive whole (generator, HTTP): each is a valid
    /// transaction or a dead letter.
    public func ingest(_ records: [IngestRecord], deadLetters: [DeadLetter] = [], source: String) throws -> IngestOutcome {
        var batch = IngestBatch(source: source)
        batch.records = records
        batch.deadLetters = deadLetters
        return try write(batch)
    }

    private func write(_ batch: IngestBatch) throws -> IngestOutcome {
        pace()
        return try store.ingest(batch)
    }
}
