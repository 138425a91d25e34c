public import CardwatchCore
import CardwatchFeatures
public import CardwatchPipeline
import Foundation
import GRDB

/// The embedded `PipelineStore`: ingest, label appends and the runtime's commits
/// (`SQLiteWarehouseSink`) are single SQLite transactions in the log's file, with the
/// warehouse tables of `WarehouseSchema`.
extension SQLiteEventLog: PipelineStore {
    /// The log and the warehouse share one file, so a batch commits with its offsets.
    public var log: any EventLog { self }

    public func ingest(_ batch: IngestBatch) throws -> IngestOutcome { try ingestPlaced(batch).outcome }

    /// `ingest`, and where each accepted record went, in the order of the accepted records.
    public func ingestPlaced(_ batch: IngestBatch) throws -> (outcome: IngestOutcome, places: [LogPosition]) {
        let appended = try Self.perform("ingesting \(batch.records.count) records from \(batch.source)") {
            try pool.write { db in try append(db, batch) }
        }
        tail.add(appended.records)  // committed
        return (appended.outcome, appended.places)
    }

    /// What an ingest appended: its outcome, and the fresh records as the log holds them.
    struct Appended {
        var outcome: IngestOutcome
        var places: [LogPosition]
        var records: [LogRecord]
    }

    /// An ingest batch's writes, in the caller's transaction: duplicates recorded, fresh records
    /// appended, dead letters, the source's position; where the fresh records went.
    func append(_ db: Database, _ batch: IngestBatch) throws -> Appended {
        var outcome = IngestOutcome()
        // Each new id is recorded with the place its record gets, which finds its silver row.
        let seen = try db.cachedStatement(
            sql: """
                INSERT OR IGNORE INTO seen_transactions (transaction_id, "partition", "offset") VALUES (?, ?, ?)
                """)
        var fresh: [(key: String, payload: [UInt8])] = []
        var positions: [LogPosition] = []
        fresh.reserveCapacity(batch.records.count)
        positions.reserveCapacity(batch.records.count)
        var next = [Int64?](repeating: nil, count: partitions)
        let now = Self.nowMicros()
        var seenRow = RowBinder(seen)
        for record in batch.records {
            let partition = partition(forKey: record.transaction.cardID)
            let offset = try next[partition] ?? Self.endOffset(db, .transactions, partition)
            seenRow.text(record.transaction.transactionID)
            seenRow.int(partition)
            seenRow.int(offset)
            try seenRow.run(db)
            if db.changesCount == 1 {
                fresh.append((record.transaction.cardID, record.payload))
                positions.append(LogPosition(partition: partition, offset: offset))
                next[partition] = offset + 1
            } else {
                outcome.duplicates.append(record.transaction.transactionID)
                try db.execute(
                    sql: """
                        INSERT INTO duplicates (transaction_id, source, line, detected_at, record) VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        record.transaction.transactionID, batch.source, record.line, now,
                        String(decoding: record.payload, as: UTF8.self),
                    ])
            }
        }
        if !fresh.isEmpty { try insertRecords(db, .transactions, fresh, at: positions, appendedAt: now) }
        outcome.accepted = fresh.count
        _ = try insert(db, .transactionsDLQ, batch.deadLetters.map { ($0.source, WarehouseRows.deadLetterJSON($0)) })
        outcome.deadLetters = batch.deadLetters.count
        if let resume = batch.resumeAt {
            try db.execute(
                sql: """
                    INSERT INTO ingest_sources (source, resume_at, updated_at) VALUES (?, ?, ?)
                    ON CONFLICT (source) DO UPDATE SET resume_at = excluded.resume_at, updated_at = excluded.updated_at
                    """,
                arguments: [batch.source, resume, now])
        }
        let records = zip(fresh, positions).map {
            LogRecord(
                topic: .transactions, partition: $1.partition, offset: $1.offset, key: $0.key, payload: $0.payload,
                appendedAt: now)
        }
        return Appended(outcome: outcome, places: positions, records: records)
    }

    /// Each label is routed to its transaction's card (`RoutedLabel`): enriched here with the
    /// card, merchant and time the log holds for it, and keyed by the card, so it lands in the
    /// partition whose operator counted the transaction. A label of a transaction the log does
    /// not hold is kept, keyed by its transaction id, and changes no feature state.
    public func ingestLabels(_ labels: [LabelEvent], source: String, resumeAt: Int64) throws {
        try Self.perform("appending \(labels.count) labels from \(source)") {
            try pool.write { db in
                let records = try route(db, labels).map { (key: $0.key, payload: $0.payload) }
                _ = try insert(db, .labels, records)
                try db.execute(
                    sql: """
                        INSERT INTO ingest_sources (source, resume_at, updated_at) VALUES (?, ?, ?)
                        ON CONFLICT (source) DO UPDATE SET resume_at = excluded.resume_at, updated_at = excluded.updated_at
                        """,
                    arguments: [source, resumeAt, Self.nowMicros()])
            }
        }
    }

    /// The labels with their transactions as the log holds them, in the caller's transaction.
    func route(_ db: Database, _ labels: [LabelEvent]) throws -> [RoutedLabel] {
        let find = try db.cachedStatement(
            sql: """
                SELECT r.payload FROM seen_transactions t
                JOIN records r ON r.topic = 'transactions' AND r."partition" = t."partition" AND r."offset" = t."offset"
                WHERE t.transaction_id = ?
                """)
        var decoder = TransactionJSONDecoder(policy: .log)
        return try labels.map { label in
            let payload = try Data.fetchOne(find, arguments: [label.transactionID])
            let transaction = payload.flatMap { data in data.withUnsafeBytes { try? decoder.decode($0).get() } }
            return RoutedLabel(label, transaction: transaction)
        }
    }

    public func resumePosition(source: String) throws -> Int64? {
        try Self.perform("reading where \(source) resumes") {
            try pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT resume_at FROM ingest_sources WHERE source = ?", arguments: [source])
            }
        }
    }

    /// The newest event time of a decided transaction from `cardwatch run`'s live generator
    /// (ids `lv…`), for a data directory whose generator predates its resume position.
    public func lastLiveGeneratorEventTime() throws -> Int64? {
        try Self.perform("reading the live generator's last event time") {
            try pool.read { db in
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT MAX(s.event_time) FROM seen_transactions t
                        JOIN silver_transactions s ON s."partition" = t."partition" AND s."offset" = t."offset"
                        WHERE t.transaction_id >= 'lv' AND t.transaction_id < 'lw'
                        """)
            }
        }
    }

    /// A write transaction that commits the runtime's batches: the pending card profiles are taken
    /// for it and put back only once it has committed (a failed one leaves them to be rebuilt).
    func inBatchTransaction<T>(_ body: (Database, inout CardProfiles.Pending) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            var cards = try cardProfiles.take(db)
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db, &cards)
                return .commit
            }
            cardProfiles.put(cards)
            return result!
        }
    }

    // MARK: Batch parts

    /// Built once: made for every batch, this string was an eighth of the silver rows' time
    /// in the HTTP API's small commits (perf, `cardwatch bench decisions`).
    private static let insertSilver = """
        INSERT INTO silver_transactions (transaction_id, card_id, merchant_id, merchant_category, currency,
            country, channel, event_time, "timestamp", \(Feature.names.map { "\"\($0)\"" }.joined(separator: ", ")),
            fraud_probability, risk_tier, action, model_version, rule_hits, latency_us, is_fraud, fraud_pattern,
            arrival, "partition", "offset")
        VALUES (\(Array(repeating: "?", count: 20 + Feature.count).joined(separator: ", ")))
        """

    func writeSilverAndAlerts(_ db: Database, _ batch: ProcessedBatch) throws {
        guard !batch.transactions.isEmpty else { return }
        let silver = try db.cachedStatement(sql: Self.insertSilver)
        let alert = try db.cachedStatement(
            sql: """
                INSERT INTO alerts (transaction_id, card_id, merchant_id, amount, event_time, "timestamp", fraud_probability,
                    risk_tier, action, model_version, reasons, fraud_pattern, arrival, decided_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        var row = RowBinder(silver)
        let decidedAt = batch.decidedAt ?? Self.nowMicros()
        var published: [(key: String, payload: [UInt8])] = []
        for p in batch.transactions {
            let t = p.transaction
            let d = p.decision
            let time = t.timestamp.rfc3339
            row.text(t.transactionID)
            row.text(t.cardID)
            row.text(t.merchantID)
            row.text(t.merchantCategory)
            row.text(t.currency)
            row.text(t.country)
            row.text(t.channel?.rawValue)
            row.int(t.timestamp.microseconds)
            row.text(time)
            for i in 0..<Feature.count { row.double(p.features[i]) }
            row.double(d.probability)
            row.text(d.tier.rawValue)
            row.text(d.action.rawValue)
            row.int(d.modelVersion)
            row.text(WarehouseRows.ruleHits(d))
            row.int(p.latencyMicros)
            row.int(t.isFraud.map { $0 ? 1 : 0 })
            row.text(t.fraudPattern)
            row.int(p.sequence)
            row.int(p.partition)
            row.int(p.offset)
            try row.run(db)
            if d.isAlert {
                let reasons = WarehouseRows.reasonsJSON(d.reasons)
                try alert.execute(arguments: [
                    t.transactionID, t.cardID, t.merchantID, t.amount, t.timestamp.microseconds, time, d.probability,
                    d.tier.rawValue, d.action.rawValue, d.modelVersion, reasons, t.fraudPattern, p.sequence, decidedAt,
                ])
                published.append(
                    (t.cardID, WarehouseRows.alertJSON(p.transaction, p.decision, reasons: reasons, decidedAt: decidedAt)))
            }
        }
        // The alerts topic, for case management to consume: in the same transaction as the
        // alerts table and the batch's input offsets, so each alert is published exactly once.
        _ = try insert(db, .alerts, published, appendedAt: decidedAt)
    }

    func writeGold(_ db: Database, _ batch: ProcessedBatch) throws {
        guard !batch.transactions.isEmpty else { return }
        let hours = GoldTotals.hourly(batch.transactions)
        let hourly = try db.cachedStatement(
            sql: """
                INSERT INTO gold_hourly (hour, transactions, amount_micros, alerts, reviews, declines, probability_nanos,
                    latency_sum_us, latency_max_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (hour) DO UPDATE SET transactions = transactions + excluded.transactions,
                    amount_micros = amount_micros + excluded.amount_micros, alerts = alerts + excluded.alerts,
                    reviews = reviews + excluded.reviews, declines = declines + excluded.declines,
                    probability_nanos = probability_nanos + excluded.probability_nanos,
                    latency_sum_us = latency_sum_us + excluded.latency_sum_us,
                    latency_max_us = MAX(latency_max_us, excluded.latency_max_us)
                """)
        var row = RowBinder(hourly)
        for (hour, h) in hours {
            row.int(hour)
            row.int(h.transactions)
            row.int(h.amount)
            row.int(h.alerts)
            row.int(h.reviews)
            row.int(h.declines)
            row.int(h.probability)
            row.int(h.latency)
            row.int(h.latencyMax)
            try row.run(db)
        }
        // Per minute of processing time (the batch's decision time).
        let minute = GoldTotals(summing: hours.map(\.totals))
        let decided = batch.decidedAt ?? Self.nowMicros()
        row = RowBinder(
            try db.cachedStatement(
                sql: """
                    INSERT INTO gold_minutes (minute, transactions, alerts, reviews, declines, probability_nanos,
                        latency_sum_us, latency_max_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (minute) DO UPDATE SET transactions = transactions + excluded.transactions,
                        alerts = alerts + excluded.alerts, reviews = reviews + excluded.reviews,
                        declines = declines + excluded.declines,
                        probability_nanos = probability_nanos + excluded.probability_nanos,
                        latency_sum_us = latency_sum_us + excluded.latency_sum_us,
                        latency_max_us = MAX(latency_max_us, excluded.latency_max_us)
                    """))
        row.int(decided - decided % 60_000_000)
        row.int(minute.transactions)
        row.int(minute.alerts)
        row.int(minute.reviews)
        row.int(minute.declines)
        row.int(minute.probability)
        row.int(minute.latency)
        row.int(minute.latencyMax)
        try row.run(db)
    }

    func writeLabels(_ db: Database, _ batch: ProcessedBatch) throws {
        guard !batch.labels.isEmpty else { return }
        let insert = try db.cachedStatement(
            sql: "INSERT INTO labels (transaction_id, is_fraud, reported_at, matched, arrival) VALUES (?, ?, ?, ?, ?)")
        for l in batch.labels {
            try insert.execute(arguments: [
                l.label.transactionID, l.label.isFraud ? 1 : 0, l.label.reportedAt.microseconds, l.matched ? 1 : 0,
                l.sequence,
            ])
            try ConfirmedOutcomes.apply(db, transactionID: l.label.transactionID, isFraud: l.label.isFraud)
        }
    }

    // MARK: Encodings

    static func nowMicros() -> Int64 { Timestamp.now.microseconds }

}
