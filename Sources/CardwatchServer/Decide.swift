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

    /// One transaction (a JSON object), or many (a JSON array, or JSON Lines).
    func transactions(_ body: [UInt8]) async throws -> Response {
        let began = ContinuousClock.now
        let (records, single) = try Self.records(in: body)
        return try await decide(records, single: single, began: began)
    }

    /// The raw records of a `POST /v1/transactions` body, and whether it is a single one.
    static func records(in body: [UInt8]) throws -> (records: [[UInt8]], single: Bool) {
        let text = body.drop(while: isBlank)
        guard !text.isEmpty else { throw Problem(.badRequest, "Bad Request", detail: "the body is empty") }
        var records: [[UInt8]]
        let single: Bool
        if text.first == UInt8(ascii: "[") {
            guard let array = try? JSONSerialization.jsonObject(with: Data(text)) as? [Any] else {
                throw Problem(.badRequest, "Bad Request", detail: "the body starts with '[' but is not a JSON array")
            }
            records = try array.map { element in
                guard JSONSerialization.isValidJSONObject(element) else {
                    throw Problem(
                        .unprocessableContent, "Unprocessable Content", detail: "array elements must be transaction objects")
                }
                return Array(try JSONSerialization.data(withJSONObject: element))
            }
            single = false
        } else {
            records = text.split(separator: UInt8(ascii: "\n")).map(Array.init).filter { !$0.allSatisfy(isBlank) }
            single = records.count == 1
        }
        guard !records.isEmpty else { throw Problem(.badRequest, "Bad Request", detail: "no transactions in the body") }
        return (records, single)
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
            // A valid record goes into the log as it came (bronze is the raw input), without a card number.
            let decoded = bytes.withUnsafeBytes { raw in decoder.ingestRecord(raw, line: i + 1) }
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
    func predict(_ body: [UInt8]) async throws -> Response {
        let began = ContinuousClock.now
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw Problem(.badRequest, "Bad Request", detail: "the body must be a JSON object")
        }
        try PrecomputedFeatures.refuse(object.keys)
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
        return try await decide([Array(data)], single: true, began: began)
    }

    private func decide(_ records: [[UInt8]], single: Bool, began: ContinuousClock.Instant) async throws -> Response {
        let (valid, invalid, deadLetters) = Self.decode(records, policy: dependencies.ingestPolicy)
        let decided = try await queue.submit(valid, deadLetters: deadLetters)
        if valid.isEmpty {
            let errors =
                single
                ? invalid[0].issues
                : invalid.flatMap { r in r.issues.map { FieldIssue(field: "[\(r.index)].\($0.field)", problem: $0.problem) } }
            throw Problem(
                .unprocessableContent, "Unprocessable Content",
                detail: single
                    ? "the transaction is not valid under schema v1 (kept in the dead-letter log)"
                    : "no transaction is valid under schema v1 (all kept in the dead-letter log)",
                errors: errors)
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
        let errors = invalid.map { r -> [String: Any] in
            ["index": r.index, "errors": r.issues.map { ["field": $0.field, "problem": $0.problem] }]
        }
        return try JSONBody.response(["decisions": answers, "invalid": errors])
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
                    detail: "transaction '\(id)' was sent before and its first copy is not decided yet")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func milliseconds(since began: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - began
        return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
    }
}
