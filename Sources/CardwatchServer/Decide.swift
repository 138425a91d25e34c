import CardwatchCore
import CardwatchPipeline
import Foundation
import Hummingbird

/// `POST /v1/transactions` and `POST /predict`: validate, append to the log through the
/// same ingest as every other source (dead letters, duplicates), decide in the append's
/// transaction (`DecisionQueue`), and answer with the decisions. The single-transaction
/// case is usually answered from the event loop by `DecisionChannelHandler`, with the
/// same pieces.
struct Decide: Sendable {
    let dependencies: ServerDependencies
    let queue: DecisionQueue

    /// One transaction (a JSON object), or many (a JSON array, or JSON Lines). `source` (the
    /// client's address) is charged for the dead letters.
    func transactions(_ body: [UInt8], source: String = "http") async throws -> Response {
        let began = ContinuousClock.now
        let (records, single) = try Self.records(in: body, limit: dependencies.ingestLimits.maxRecords)
        return try await decide(records, single: single, began: began, source: source)
    }

    /// The raw records of a `POST /v1/transactions` body, and whether it is a single one; more
    /// than `limit` records is a 413, found before anything is decoded or written. A JSON
    /// array's elements are found by the codec's scanner (each element's bytes as sent, a
    /// repeated member in one left for the decoder to refuse).
    static func records(in body: [UInt8], limit: Int = .max) throws -> (records: [[UInt8]], single: Bool) {
        let start = body.firstIndex { !isBlank($0) } ?? body.endIndex
        guard start < body.endIndex else { throw Problem(.badRequest, "Bad Request", detail: "the body is empty") }
        var spans: [Range<Int>] = []
        let single: Bool
        if body[start] == UInt8(ascii: "[") {
            do {
                spans = try body.withUnsafeBytes { raw throws(RecordError) in
                    try JSONScanner.arrayElements(raw).map { $0.start..<$0.start + $0.count }
                }
            } catch let error as RecordError {
                throw Problem(
                    .badRequest, "Bad Request", detail: "the body starts with '[' but is not a JSON array: \(error.description)")
            }
            single = false
        } else {
            var lineStart = start
            while lineStart < body.endIndex {
                let end = body[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? body.endIndex
                if body[lineStart..<end].contains(where: { !isBlank($0) }) { spans.append(lineStart..<end) }
                lineStart = end + 1
            }
            single = spans.count == 1
        }
        guard !spans.isEmpty else { throw Problem(.badRequest, "Bad Request", detail: "no transactions in the body") }
        guard spans.count <= limit else {
            throw Problem(
                .contentTooLarge, "Content Too Large",
                detail: "the body has \(spans.count) records; the limit is \(limit) per request (--max-records): split it")
        }
        return (spans.map { Array(body[$0]) }, single)
    }

    /// Space, tab, CR or LF: what surrounds records in a body.
    static func isBlank(_ c: UInt8) -> Bool {
        c == UInt8(ascii: " ") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\t")
    }

    /// Each record decoded: the valid ones, and the invalid ones with their issues and as dead letters.
    static func decode(_ records: [[UInt8]], policy: IngestPolicy) -> (
        valid: [IngestRecord], invalid: [(index: Int, issues: [FieldIssue])], deadLetters: [DeadLetter]
    ) {
        var decoder = TransactionJSONDecoder(policy: policy)
        var valid: [IngestRecord] = []
        var invalid: [(index: Int, issues: [FieldIssue])] = []
        var deadLetters: [DeadLetter] = []
        for (i, bytes) in records.enumerated() {
            // A valid record goes into the log as it came (bronze is the raw input; no card
            // number), unless it spans lines (an array element laid out over several): the log
            // holds JSON lines.
            let decoded = bytes.withUnsafeBytes { raw in
                decoder.ingestRecord(raw, line: i + 1).map { record in
                    raw.contains(UInt8(ascii: "\n")) ? IngestRecord(transaction: record.transaction, line: i + 1) : record
                }
            }
            switch decoded {
            case .success(let record): valid.append(record)
            case .failure(let e):
                invalid.append((i, e.issues))
                deadLetters.append(DeadLetter(source: "http", line: i + 1, issues: e.issues, raw: bytes))
            }
        }
        return (valid, invalid, deadLetters)
    }

    /// The transaction of a body that is one valid JSON object on one line (blank space
    /// around it aside): what `DecisionChannelHandler` answers itself, decoded as `decode`
    /// would. Anything else (nil) goes to the route, which answers or says what is wrong.
    static func single(_ body: ByteBuffer, policy: IngestPolicy) -> IngestRecord? {
        body.withUnsafeReadableBytes { raw -> IngestRecord? in
            var start = 0
            var end = raw.count
            while start < end && isBlank(raw[start]) { start += 1 }
            while end > start && isBlank(raw[end - 1]) { end -= 1 }
            guard start < end, raw[start] == UInt8(ascii: "{"), !raw[start..<end].contains(UInt8(ascii: "\n")) else {
                return nil
            }
            let line = UnsafeRawBufferPointer(rebasing: raw[start..<end])
            var decoder = TransactionJSONDecoder(policy: policy)
            guard case .success(let record) = decoder.ingestRecord(line, line: 1) else { return nil }
            return record
        }
    }

    /// The request shape of the systems Cardwatch replaces: `transaction_id`, `user_id` or
    /// `card_id`, `amount`, `merchant_id`, optional `is_international` (accepted; not a
    /// feature of schema v1) and `timestamp` (default: now).
    func predict(_ body: [UInt8], source: String = "http", online: Bool = false) async throws -> Response {
        let began = ContinuousClock.now
        if Self.isPlainRecord(body) {
            // Already a schema v1 record: decided as it came (no re-serialization).
            if online { return try await predictOnline(body, began: began, source: source) }
            return try await decide([body], single: true, began: began)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw Problem(.badRequest, "Bad Request", detail: "the body must be a JSON object")
        }
        try PrecomputedFeatures.refuse(object.keys)
        try await refuseRepeatedMembers(body, source: source)
        struct Flag: Decodable { var is_international: Bool? }
        if (try? JSONDecoder().decode(Flag.self, from: Data(body))) == nil {
            throw Problem(
                .unprocessableContent, "Unprocessable Content", detail: "the request is not valid",
                errors: [FieldIssue(field: "is_international", problem: "must be true or false")])
        }
        var record = object
        if let user = record["user_id"] {
            // The original systems' name for the card: the same rules as card_id.
            let problem =
                (user as? String).flatMap { TransactionValidator.identifierProblem($0) }
                ?? (user is String ? nil : "must be a string")
            if let problem {
                throw Problem(
                    .unprocessableContent, "Unprocessable Content", detail: "the request is not valid",
                    errors: [FieldIssue(field: "user_id", problem: problem)])
            }
            if record["card_id"] == nil && record["card_number"] == nil { record["card_id"] = user }
        }
        record.removeValue(forKey: "user_id")
        record.removeValue(forKey: "is_international")
        if record["timestamp"] == nil {
            record["timestamp"] = Timestamp.now.rfc3339
        }
        if record["currency"] == nil { record["currency"] = "USD" }
        let data = try JSONSerialization.data(withJSONObject: record)
        if online { return try await predictOnline(Array(data), began: began, source: source) }
        return try await decide([Array(data)], single: true, began: began)
    }

    /// A `/predict` body that needs no rewriting: one JSON object on one line, with a timestamp
    /// and a currency, no member given twice, none of the original systems' names (`user_id`,
    /// `is_international`) and no pre-computed feature. Anything else takes the general path.
    static func isPlainRecord(_ body: [UInt8]) -> Bool {
        guard !body.contains(0x0A), !body.contains(0x0D) else { return false }
        var members = Gateway.Members()
        do {
            try body.withUnsafeBytes { try JSONScanner.scanObject($0, into: &members) }
        } catch { return false }
        var seen = Set<String>()
        for m in members.list {
            guard seen.insert(m.key).inserted, m.key != "user_id", m.key != "is_international",
                !PrecomputedFeatures.names.contains(m.key), !m.key.hasPrefix("num_txns_")
            else { return false }
        }
        return seen.contains("timestamp") && seen.contains("currency")
    }

    /// A member given twice is an error (JSONSerialization would keep one silently): 422
    /// naming each, the body kept in the dead-letter log as `/v1/transactions` keeps such a record.
    private func refuseRepeatedMembers(_ body: [UInt8], source: String) async throws {
        let repeated = (try? body.withUnsafeBytes { raw throws(RecordError) in try JSONScanner.repeatedMembers(raw) }) ?? []
        guard !repeated.isEmpty else { return }
        let issues = repeated.map { FieldIssue(field: $0, problem: "given more than once") }
        try chargeDeadLetters(1, source: source, listed: [(0, issues)], total: 1)
        _ = try await queue.submit([], deadLetters: [DeadLetter(source: "http", line: 1, issues: issues, raw: body)])
        throw Problem(
            .unprocessableContent, "Unprocessable Content",
            detail: "the request is not valid (kept in the dead-letter log)", errors: issues)
    }

    private func decide(
        _ records: [[UInt8]], single: Bool, began: ContinuousClock.Instant, source: String = "http"
    ) async throws -> Response {
        let (valid, invalid, deadLetters) = Self.decode(records, policy: dependencies.ingestPolicy)
        let limits = dependencies.ingestLimits
        let listed = invalid.prefix(limits.listedInvalid)
        try chargeDeadLetters(deadLetters.count, source: source, listed: listed, total: invalid.count)
        let decided = try await queue.submit(valid, deadLetters: deadLetters)
        if valid.isEmpty {
            let errors =
                single
                ? invalid[0].issues
                : listed.flatMap { r in r.issues.map { FieldIssue(field: "[\(r.index)].\($0.field)", problem: $0.problem) } }
            var problem = Problem(
                .unprocessableContent, "Unprocessable Content",
                detail: single
                    ? "the transaction is not valid under schema v1 (kept in the dead-letter log)"
                    : "no transaction is valid under schema v1 (all kept in the dead-letter log)"
                        + (invalid.count > listed.count
                            ? "; the errors of the first \(listed.count) of the \(invalid.count) records are listed" : ""),
                errors: errors)
            if !single { problem.invalidRecords = invalid.count }
            throw problem
        }
        let latencyMs = Self.milliseconds(since: began)
        if single, let first = decided.decisions.first {
            // The common case, one new transaction: its decision written straight into the response.
            return JSONBody.decisionResponse(first.id, first.decision, latencyMs: latencyMs)
        }
        var decisions = [String: Decision](decided.decisions.map { ($0.id, $0.decision) }, uniquingKeysWith: { a, _ in a })
        var answers: [[String: Any]] = []
        for record in valid {
            let id = record.transaction.transactionID
            if let decision = decisions.removeValue(forKey: id) {
                answers.append(JSONBody.decision(id, decision, latencyMs: latencyMs))
            } else {
                answers.append(try await duplicate(id))
            }
        }
        if single { return try JSONBody.response(answers[0]) }
        let errors = listed.map { r -> [String: Any] in
            ["index": r.index, "errors": r.issues.map { ["field": $0.field, "problem": $0.problem] }]
        }
        return try JSONBody.response(["decisions": answers, "invalid": errors, "invalid_count": invalid.count])
    }

    /// Takes `count` dead letters from the source's allowance before anything is written, or
    /// refuses the whole request: 429 with Retry-After, or 422 when it has more invalid records
    /// than a source may ever write at once. Refused dead letters are counted.
    func chargeDeadLetters(
        _ count: Int, source: String, listed: ArraySlice<(index: Int, issues: [FieldIssue])>, total: Int
    ) throws {
        let budget = dependencies.ingestLimits.deadLetters
        let verdict = budget.take(count, source: source)
        guard verdict != DeadLetterBudget.Verdict.granted else { return }
        dependencies.metrics.deadLettersRefused(count)
        let errors = listed.flatMap { r in r.issues.map { FieldIssue(field: "[\(r.index)].\($0.field)", problem: $0.problem) } }
        var problem: Problem
        switch verdict {
        case .later(let seconds):
            problem = Problem(
                .tooManyRequests, "Too Many Requests",
                detail:
                    "\(count) invalid records are more than this client's dead-letter allowance has left (\(budget.allowance.burst) at once, \(budget.allowance.perSecond) a second): nothing was written; fix the records or retry later",
                errors: errors, headers: [.retryAfter: String(seconds)])
        default:
            problem = Problem(
                .unprocessableContent, "Unprocessable Content",
                detail:
                    "\(count) invalid records are more than a client may send at once (\(budget.allowance.burst)): nothing was written; fix the records",
                errors: errors)
        }
        if total > listed.count { problem.invalidRecords = total }
        throw problem
    }

    /// The answer to a transaction seen before: the one it got then (a retry must not be
    /// decided twice). The first copy may still be on its way through the processor (sent
    /// by another source a moment ago): waited for.
    func duplicate(_ id: String) async throws -> [String: Any] {
        let d = dependencies
        let deadline = ContinuousClock.now + d.decisionTimeout
        while true {
            if let stored = try d.serving.decision(transactionID: id) { return JSONBody.stored(stored, duplicate: true) }
            guard ContinuousClock.now < deadline else {
                throw Problem(
                    .serviceUnavailable, "Service Unavailable",
                    detail: "transaction '\(id)' was sent before and its first copy is not decided yet",
                    headers: [.retryAfter: "1"])
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func milliseconds(since began: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - began
        return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
    }
}
