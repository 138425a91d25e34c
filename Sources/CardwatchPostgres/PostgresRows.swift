import CardwatchCore
import CardwatchFeatures
import CardwatchPipeline
import Foundation
import PostgresNIO

/// The batch's rows, one statement per table from arrays (`unnest`). Nullable text travels as
/// '' and integers as -1 where the value cannot be empty or negative (`NULLIF`), since
/// postgres-nio encodes arrays of non-optional elements; missing features (NaN) become NULL,
/// as in SQLite (`NaNAsNullFloat8Array`).
enum PostgresRows {
    static let silverInsert: String = {
        let features = Feature.names.map { "\"\($0)\"" }.joined(separator: ", ")
        let fixed = 9
        let featureArgs = (0..<Feature.count).map { "f\($0)" }.joined(separator: ", ")
        let featureParams = (0..<Feature.count).map { "$\(fixed + 1 + $0)::float8[]" }.joined(separator: ", ")
        let rest = fixed + Feature.count
        let names = (0..<Feature.count).map { "f\($0)" }.joined(separator: ", ")
        return """
            INSERT INTO silver_transactions (stream, transaction_id, card_id, merchant_id, merchant_category, currency, country,
                channel, event_time, "timestamp", \(features), fraud_probability, risk_tier, action, model_version,
                rule_hits, latency_us, is_fraud, fraud_pattern, arrival, "partition", "offset", decided_at)
            SELECT $\(rest + 13), id, card, merchant, NULLIF(category, ''), currency, NULLIF(country, ''), NULLIF(channel, ''), t,
                ts, \(featureArgs), probability, tier, action, version, NULLIF(rules, ''), latency, NULLIF(fraud, -1),
                NULLIF(pattern, ''), $\(rest + 11), p, o, decided
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[],
                $9::text[], \(featureParams), $\(rest + 1)::float8[], $\(rest + 2)::text[], $\(rest + 3)::text[],
                $\(rest + 4)::int4[], $\(rest + 5)::text[], $\(rest + 6)::int8[], $\(rest + 7)::int2[],
                $\(rest + 8)::text[], $\(rest + 9)::int4[], $\(rest + 10)::int8[], $\(rest + 12)::int8[])
                AS r(id, card, merchant, category, currency, country, channel, t, ts, \(names), probability, tier, action,
                    version, rules, latency, fraud, pattern, p, o, decided)
            """
    }()

    static func silver(_ s: PostgresSession, _ rows: [ProcessedTransaction], stream: String) throws {
        guard !rows.isEmpty else { return }
        var b = PostgresBindings(capacity: 20 + Feature.count)
        b.append(rows.map(\.transaction.transactionID))
        b.append(rows.map(\.transaction.cardID))
        b.append(rows.map(\.transaction.merchantID))
        b.append(rows.map { $0.transaction.merchantCategory ?? "" })
        b.append(rows.map(\.transaction.currency))
        b.append(rows.map { $0.transaction.country ?? "" })
        b.append(rows.map { $0.transaction.channel?.rawValue ?? "" })
        b.append(rows.map(\.transaction.timestamp.microseconds))
        b.append(rows.map(\.transaction.timestamp.rfc3339))
        for f in 0..<Feature.count { b.append(NaNAsNullFloat8Array(values: rows.map { $0.features[f] })) }
        b.append(rows.map(\.decision.probability))
        b.append(rows.map(\.decision.tier.rawValue))
        b.append(rows.map(\.decision.action.rawValue))
        b.append(rows.map { Int32($0.decision.modelVersion) })
        b.append(rows.map { WarehouseRows.ruleHits($0.decision) ?? "" })
        b.append(rows.map(\.latencyMicros))
        b.append(rows.map { Int16($0.transaction.isFraud.map { $0 ? 1 : 0 } ?? -1) })
        b.append(rows.map { $0.transaction.fraudPattern ?? "" })
        b.append(rows.map { Int32($0.partition) })
        b.append(rows.map(\.offset))
        b.append(rows[0].sequence)
        b.append(rows.map(\.decision.decidedAt))
        b.append(stream)
        try s.query(silverInsert, b)
    }

    static func firstDecisions(_ s: PostgresSession, _ rows: [ProcessedTransaction], stream: String) throws {
        guard !rows.isEmpty else { return }
        try s.query(
            """
            INSERT INTO first_decisions (transaction_id, stream, "partition", "offset", fraud_probability, risk_tier, action,
                model_version)
            SELECT id, $8, p, o, probability, tier, action, version
            FROM unnest($1::text[], $2::int4[], $3::int8[], $4::float8[], $5::text[], $6::text[], $7::int4[])
                AS f(id, p, o, probability, tier, action, version)
            ON CONFLICT (transaction_id) DO NOTHING
            """,
            bindings(
                rows.map(\.transaction.transactionID), rows.map { Int32($0.partition) }, rows.map(\.offset),
                rows.map(\.decision.probability), rows.map(\.decision.tier.rawValue), rows.map(\.decision.action.rawValue),
                rows.map { Int32($0.decision.modelVersion) }, stream))
    }

    static func alerts(_ s: PostgresSession, _ rows: [ProcessedTransaction], decidedAt: Int64) throws {
        let alerts = rows.filter(\.decision.isAlert)
        guard !alerts.isEmpty else { return }
        try s.query(
            """
            INSERT INTO alerts (transaction_id, card_id, merchant_id, amount, event_time, "timestamp", fraud_probability,
                risk_tier, action, model_version, reasons, fraud_pattern, arrival, decided_at)
            SELECT id, card, merchant, amount, t, ts, probability, tier, action, version, reasons::jsonb,
                NULLIF(pattern, ''), $13, $14
            FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int8[], $6::text[], $7::float8[],
                $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[])
                AS a(id, card, merchant, amount, t, ts, probability, tier, action, version, reasons, pattern)
            """,
            bindings(
                alerts.map(\.transaction.transactionID), alerts.map(\.transaction.cardID),
                alerts.map(\.transaction.merchantID), alerts.map(\.transaction.amount),
                alerts.map(\.transaction.timestamp.microseconds), alerts.map(\.transaction.timestamp.rfc3339),
                alerts.map(\.decision.probability), alerts.map(\.decision.tier.rawValue),
                alerts.map(\.decision.action.rawValue), alerts.map { Int32($0.decision.modelVersion) },
                alerts.map { WarehouseRows.reasonsJSON($0.decision.reasons) },
                alerts.map { $0.transaction.fraudPattern ?? "" }, alerts[0].sequence, decidedAt))
    }

    static func gold(_ s: PostgresSession, _ rows: [ProcessedTransaction], decidedAt: Int64) throws {
        guard !rows.isEmpty else { return }
        let hours = GoldTotals.hourly(rows)
        let totals = hours.map(\.totals)
        try s.query(
            """
            INSERT INTO gold_hourly AS g (hour, transactions, amount_micros, alerts, reviews, declines, probability_nanos,
                latency_sum_us, latency_max_us)
            SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[],
                $8::int8[], $9::int8[])
            ON CONFLICT (hour) DO UPDATE SET transactions = g.transactions + excluded.transactions,
                amount_micros = g.amount_micros + excluded.amount_micros, alerts = g.alerts + excluded.alerts,
                reviews = g.reviews + excluded.reviews, declines = g.declines + excluded.declines,
                probability_nanos = g.probability_nanos + excluded.probability_nanos,
                latency_sum_us = g.latency_sum_us + excluded.latency_sum_us,
                latency_max_us = GREATEST(g.latency_max_us, excluded.latency_max_us)
            """,
            bindings(
                hours.map(\.hour), totals.map { Int64($0.transactions) }, totals.map(\.amount),
                totals.map { Int64($0.alerts) }, totals.map { Int64($0.reviews) }, totals.map { Int64($0.declines) },
                totals.map(\.probability), totals.map(\.latency), totals.map(\.latencyMax)))
        let m = GoldTotals(summing: totals)
        try s.query(
            """
            INSERT INTO gold_minutes AS g (minute, transactions, alerts, reviews, declines, probability_nanos,
                latency_sum_us, latency_max_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (minute) DO UPDATE SET transactions = g.transactions + excluded.transactions,
                alerts = g.alerts + excluded.alerts, reviews = g.reviews + excluded.reviews,
                declines = g.declines + excluded.declines, probability_nanos = g.probability_nanos + excluded.probability_nanos,
                latency_sum_us = g.latency_sum_us + excluded.latency_sum_us,
                latency_max_us = GREATEST(g.latency_max_us, excluded.latency_max_us)
            """,
            bindings(
                decidedAt - decidedAt % 60_000_000, Int64(m.transactions), Int64(m.alerts), Int64(m.reviews),
                Int64(m.declines), m.probability, m.latency, m.latencyMax))
    }

    /// Per card: counts and sums added, the highest probability, the tier of its latest event.
    static func cardProfiles(_ s: PostgresSession, _ rows: [ProcessedTransaction]) throws {
        guard !rows.isEmpty else { return }
        struct Card {
            var transactions: Int64 = 0
            var amount: Int64 = 0
            var alerts: Int64 = 0
            var declines: Int64 = 0
            var maxProbability = 0.0
            var last: Int64 = .min
            var tier = ""
        }
        var cards: [String: Card] = [:]
        for p in rows {
            let t = p.transaction.timestamp.microseconds
            cards[p.transaction.cardID, default: Card()].transactions += 1
            cards[p.transaction.cardID]!.amount += WarehouseRows.micros(p.transaction.amount)
            cards[p.transaction.cardID]!.alerts += p.decision.isAlert ? 1 : 0
            cards[p.transaction.cardID]!.declines += p.decision.action == .decline ? 1 : 0
            cards[p.transaction.cardID]!.maxProbability = max(
                cards[p.transaction.cardID]!.maxProbability, p.decision.probability)
            if t >= cards[p.transaction.cardID]!.last {
                cards[p.transaction.cardID]!.last = t
                cards[p.transaction.cardID]!.tier = p.decision.tier.rawValue
            }
        }
        let sorted = cards.sorted { $0.key < $1.key }  // a fixed order: concurrent upserts never deadlock
        try s.query(
            """
            INSERT INTO gold_card_profiles AS g (card_id, transactions, amount_micros, alerts, declines, max_probability,
                last_event_time, last_risk_tier)
            SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::float8[], $7::int8[],
                $8::text[])
            ON CONFLICT (card_id) DO UPDATE SET transactions = g.transactions + excluded.transactions,
                amount_micros = g.amount_micros + excluded.amount_micros, alerts = g.alerts + excluded.alerts,
                declines = g.declines + excluded.declines,
                max_probability = GREATEST(g.max_probability, excluded.max_probability),
                last_risk_tier = CASE WHEN excluded.last_event_time >= g.last_event_time
                    THEN excluded.last_risk_tier ELSE g.last_risk_tier END,
                last_event_time = GREATEST(g.last_event_time, excluded.last_event_time)
            """,
            bindings(
                sorted.map(\.key), sorted.map(\.value.transactions), sorted.map(\.value.amount),
                sorted.map(\.value.alerts), sorted.map(\.value.declines), sorted.map(\.value.maxProbability),
                sorted.map(\.value.last), sorted.map(\.value.tier)))
    }

    /// The labels, and each labelled silver row's current label (found in its event day when
    /// the label names its transaction's time).
    static func labels(_ s: PostgresSession, _ labels: [AppliedLabel], sequence: Int64, stream: String) throws {
        guard !labels.isEmpty else { return }
        let b = bindings(
            labels.map(\.label.transactionID), labels.map { Int16($0.label.isFraud ? 1 : 0) },
            labels.map(\.label.reportedAt.microseconds), labels.map { Int16($0.matched ? 1 : 0) },
            labels.map { Int32($0.partition) }, labels.map(\.offset),
            labels.map { $0.label.transactionTime?.microseconds ?? Int64.min }, sequence, stream)
        try s.query(
            """
            INSERT INTO labels (transaction_id, is_fraud, reported_at, matched, stream, "partition", "offset", arrival)
            SELECT id, fraud, reported, matched, $9, p, o, $8
            FROM unnest($1::text[], $2::int2[], $3::int8[], $4::int2[], $5::int4[], $6::int8[], $7::int8[])
                AS l(id, fraud, reported, matched, p, o, t)
            """, b)
        for l in labels {
            try applyOutcome(s, l.label.transactionID, isFraud: l.label.isFraud, time: l.label.transactionTime?.microseconds)
        }
    }

    /// One label on its transaction's silver row (found in its event day when the label names
    /// its time) and on the confirmed-outcome aggregates, as `ConfirmedOutcomes.apply` does in
    /// SQLite. A label for a transaction not decided (yet) changes nothing here.
    static func applyOutcome(_ s: PostgresSession, _ id: String, isFraud: Bool, time: Int64?) throws {
        let new: Int64 = isFraud ? 1 : 0
        let rows = try s.query(
            """
            WITH target AS (
                SELECT s.stream, s."partition", s."offset", s.event_time, s.label AS old
                FROM silver_transactions s
                JOIN first_decisions f ON f.transaction_id = s.transaction_id AND f.stream = s.stream
                    AND f."partition" = s."partition" AND f."offset" = s."offset"
                WHERE s.transaction_id = $1 AND ($3 = -9223372036854775808 OR s.event_time = $3)
                LIMIT 1 FOR UPDATE OF s
            )
            UPDATE silver_transactions s SET label = $2 FROM target t
            WHERE s.stream = t.stream AND s."partition" = t."partition" AND s."offset" = t."offset"
                AND s.event_time = t.event_time
            RETURNING t.old, s.event_time, s.amount, s.risk_tier IN ('high', 'critical'), s.card_id, s.decided_at
            """,
            bindings(id, Int16(new), time ?? Int64.min))
        guard let row = rows.rows.first else { return }
        let (old, eventTime, amount, alert, card, decided) = try row.decode(
            (Int16?, Int64, Double?, Bool, String, Int64).self)
        let delta = OutcomeDelta(
            old: old.map(Int64.init), new: new, alert: alert, amountMicros: WarehouseRows.micros(amount ?? 0))
        guard !delta.isZero else { return }
        let hour = eventTime - ((eventTime % 3_600_000_000) + 3_600_000_000) % 3_600_000_000
        let m = delta.moves
        let add = PostgresSchema.outcomes.map { "\($0) = g.\($0) + excluded.\($0)" }.joined(separator: ", ")
        let names = PostgresSchema.outcomes.joined(separator: ", ")
        try s.query(
            """
            UPDATE gold_hourly SET \(PostgresSchema.outcomes.enumerated().map { "\($1) = \($1) + $\($0 + 2)" }.joined(separator: ", "))
            WHERE hour = $1
            """, bindings(hour, m[0], m[1], m[2], m[3], m[4]))
        try s.query(
            """
            INSERT INTO gold_minutes AS g (minute, transactions, alerts, reviews, declines, probability_nanos, latency_sum_us,
                latency_max_us, \(names))
            VALUES ($1, 0, 0, 0, 0, 0, 0, 0, $2, $3, $4, $5, $6)
            ON CONFLICT (minute) DO UPDATE SET \(add)
            """, bindings(decided - decided % 60_000_000, m[0], m[1], m[2], m[3], m[4]))
        try s.query(
            """
            INSERT INTO gold_card_labels AS g (card_id, \(names)) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (card_id) DO UPDATE SET \(add)
            """, bindings(card, m[0], m[1], m[2], m[3], m[4]))
    }

    static func repeats(_ s: PostgresSession, _ repeats: [RepeatedTransaction]) throws {
        guard !repeats.isEmpty else { return }
        try s.query(
            """
            INSERT INTO duplicates (transaction_id, source, line, detected_at, record)
            SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[])
            """,
            bindings(
                repeats.map(\.transactionID), repeats.map { "log:transactions[\($0.partition)]" }, repeats.map(\.offset),
                repeats.map { _ in Timestamp.now.microseconds },
                repeats.map { #"{"first_partition":\#($0.first.partition),"first_offset":\#($0.first.offset)}"# }))
    }

    static func deadLetters(_ s: PostgresSession, _ letters: [DeadLetter]) throws {
        guard !letters.isEmpty else { return }
        let now = Timestamp.now.microseconds
        let raw = letters.map { String(validating: $0.raw, as: UTF8.self) }
        try s.query(
            """
            INSERT INTO dead_letters (source, line, reasons, raw, raw_base64, recorded_at)
            SELECT source, NULLIF(line, -1), reasons::jsonb, CASE WHEN is_text THEN raw END,
                CASE WHEN is_text THEN NULL ELSE raw END, $6
            FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::bool[])
                AS d(source, line, reasons, raw, is_text)
            """,
            bindings(
                letters.map(\.source), letters.map { Int64($0.line ?? -1) },
                letters.map { WarehouseRows.reasonsJSON(issues: $0.issues) },
                zip(letters, raw).map { $1 ?? Data($0.raw).base64EncodedString() }, raw.map { $0 != nil }, now))
    }
}
