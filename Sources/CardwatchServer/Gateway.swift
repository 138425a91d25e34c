import CardwatchCore
import CardwatchFeatures
import Foundation
import Hummingbird

/// `POST /transaction`: the body the payment gateways of the systems Cardwatch replaces
/// send, decided and answered exactly as `POST /v1/transactions` does (same validation,
/// dead letters, duplicates, answer). The body is rewritten into a schema v1 record and
/// goes through that route's path:
///
/// | gateway member | schema v1 |
/// |---|---|
/// | `transaction_id`, `amount`, `timestamp` (default: now), `merchant_category`, `card_number` | the same (`card_number` derives `card_id`, never stored) |
/// | `merchant_id` or `merchant` | `merchant_id` |
/// | `user_id` | `customer_id` (the card is `card_number`'s) |
/// | `location` | kept as given in the stored record (not a schema field); `"Online"` also sets `channel` `online` |
///
/// Any other member passes through as it came (so a gateway may send schema v1 fields too).
extension Decide {
    /// `source`: the client's address, charged for the dead letters as on `/v1/transactions`.
    func gateway(_ body: [UInt8], source: String = "http") async throws -> Response {
        try await transactions(try Gateway.transaction(from: body), source: source)
    }
}

enum Gateway {
    /// Gateway names of schema v1 fields.
    static let renamed = ["merchant": "merchant_id", "user_id": "customer_id"]

    /// The schema v1 record, on one line, of a gateway body: each member's bytes as they came,
    /// renamed where the gateway's name differs.
    static func transaction(from body: [UInt8]) throws -> [UInt8] {
        var members = Members()
        do {
            try body.withUnsafeBytes { try JSONScanner.scanObject($0, into: &members) }
        } catch {
            throw Problem(.badRequest, "Bad Request", detail: "the body must be one JSON object: \(error)")
        }
        var issues: [FieldIssue] = []
        var seen = Set<String>()
        for m in members.list where !seen.insert(m.key).inserted && !m.key.isEmpty {
            issues.append(FieldIssue(field: m.key, problem: "given more than once"))
        }
        for (gateway, schema) in renamed.sorted(by: { $0.key < $1.key }) where seen.contains(gateway) && seen.contains(schema) {
            issues.append(FieldIssue(field: gateway, problem: "give \(gateway) or \(schema), not both"))
        }
        if !seen.contains("card_number") && !seen.contains("card_id") {
            issues.append(
                FieldIssue(field: "card_number", problem: "missing (required): the card is identified by its number"))
        }
        guard issues.isEmpty else {
            throw Problem(
                .unprocessableContent, "Unprocessable Content", detail: "the gateway transaction is not valid", errors: issues)
        }
        var out: [UInt8] = [UInt8(ascii: "{")]
        func add(_ key: String, _ value: some Sequence<UInt8>) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            TransactionEncoder.appendJSONString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value)
        }
        var online = false
        for m in members.list {
            let value = body[m.value]
            if let schema = renamed[m.key] {
                add(schema, value)
            } else {
                // Everything else as it came, key included (an escaped key stays escaped).
                if out.count > 1 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: body[m.member])
            }
            if m.key == "location", case .string(let span) = m.raw,
                String(decoding: body[span.start..<span.start + span.count], as: UTF8.self)
                    .trimmingCharacters(in: .whitespaces).lowercased() == "online"
            {
                online = true
            }
        }
        if online && !seen.contains("channel") { add("channel", #""online""#.utf8) }
        if !seen.contains("timestamp") { add("timestamp", "\"\(Timestamp.now.rfc3339)\"".utf8) }
        out.append(UInt8(ascii: "}"))
        // One line: white space inside a nested value may hold line breaks (strings cannot).
        for i in out.indices where out[i] == 0x0A || out[i] == 0x0D { out[i] = 0x20 }
        return out
    }

    /// Every member of the body, in order, with where its bytes lie.
    struct Members: JSONFieldSink {
        var list: [(key: String, raw: RawValue, member: Range<Int>, value: Range<Int>)] = []

        mutating func member(key: UnsafeRawBufferPointer, value: RawValue) {
            list.append((String(decoding: key, as: UTF8.self), value, 0..<0, 0..<0))
        }

        mutating func memberBytes(_ member: Range<Int>, value: Range<Int>) {
            list[list.count - 1].member = member
            list[list.count - 1].value = value
        }
    }
}

/// A `/predict` body of features computed by the caller (the shape of the systems Cardwatch
/// replaces, e.g. `transaction_amount`, `num_txns_last_hour`): refused with what to send
/// instead, since Cardwatch computes every feature itself from the transaction and the
/// card's history, and features from elsewhere would not be the ones the model learnt.
enum PrecomputedFeatures {
    /// Feature names of the original systems and of public fraud data sets, and Cardwatch's own.
    static let names: Set<String> = Set(
        [
            "transaction_amount", "num_txns_last_hour", "num_txns_last_24h", "num_txns_last_day", "num_transactions_last_hour",
            "avg_amount_last_24h", "avg_txn_amount", "avg_transaction_amount", "amount_zscore", "distance_from_home",
            "distance_from_last_transaction", "ratio_to_median_purchase_price", "repeat_retailer", "used_chip",
            "used_pin_number", "online_order", "time_since_last_txn", "velocity_last_hour",
        ] + Feature.names.filter { TransactionFieldNames.all.contains($0) == false })

    /// What a transaction needs, for the refusal.
    static let needed =
        "transaction_id, card_id (or user_id, or card_number), amount, merchant_id; optional: timestamp (default now), "
        + "currency, merchant_category, latitude and longitude, country, channel, customer_id"

    /// Throws a 422 naming the pre-computed features in `keys`, if any.
    static func refuse(_ keys: some Sequence<String>) throws {
        let found = keys.filter { names.contains($0) || $0.hasPrefix("num_txns_") }.sorted()
        guard !found.isEmpty else { return }
        throw Problem(
            .unprocessableContent, "Unprocessable Content",
            detail: "Cardwatch computes the features itself, from the transaction and the card's history: send the "
                + "transaction (\(needed)), not features (\(found.joined(separator: ", ")) given)",
            errors: found.map { FieldIssue(field: $0, problem: "a pre-computed feature; Cardwatch computes its own") }
                + [FieldIssue(field: "transaction", problem: "needs \(needed)")])
    }
}

/// The schema's field names, as written.
enum TransactionFieldNames {
    static let all = Set(TransactionField.allCases.map(\.name))
}
