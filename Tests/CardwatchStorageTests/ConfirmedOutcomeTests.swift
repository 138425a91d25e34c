import CardwatchCore
import CardwatchFeatures
import CardwatchModel
import CardwatchPipeline
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

@testable import CardwatchStorage

@Suite struct ConfirmedOutcomeTests {
    /// Item 19: chargebacks and analyst feedback on any decided transaction, given, repeated
    /// and reversed in random order: the confirmed-fraud aggregates always equal a count over
    /// the silver rows' current labels, per event hour, per card and in the summary.
    @Test func aggregatesFollowEveryLabelAndRelabel() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 150), version: 1))
            let txs = try history(days: 3, cards: 40, seed: 31)
            _ = try Ingestor(store: store).ingest(txs.map { IngestRecord(transaction: $0) }, source: "test")
            try drain(runtime)
            var rng = SplitMix(seed: 31)
            var feedbacks = 0
            for round in 0..<6 {
                var labels: [LabelEvent] = []
                for _ in 0..<40 {
                    let t = txs[Int.random(in: 0..<txs.count, using: &rng)]
                    let fraud = Bool.random(using: &rng)
                    if Bool.random(using: &rng) {
                        labels.append(LabelEvent(transactionID: t.transactionID, isFraud: fraud, reportedAt: t.timestamp))
                    } else {
                        let given = try store.recordFeedback(
                            AnalystFeedback(
                                transactionID: t.transactionID, fraud: fraud, analyst: "ana", note: "round \(round)",
                                at: Timestamp.now.microseconds), alertsOnly: false)
                        #expect(given != nil)
                        feedbacks += 1
                    }
                }
                labels.append(LabelEvent(transactionID: "never-decided", isFraud: true, reportedAt: txs[0].timestamp))
                try store.ingestLabels(labels, source: "chargebacks", resumeAt: Int64(round))
                try drain(runtime)
            }
            #expect(
                try store.recordFeedback(
                    AnalystFeedback(transactionID: "never-decided", fraud: true, analyst: nil, note: nil, at: 0),
                    alertsOnly: false) == nil)
            let feedbackRows: [Int] = try query(dir, "SELECT COUNT(*) FROM feedback WHERE analyst = 'ana'")
            #expect(feedbackRows == [feedbacks])

            let outcome = """
                label IS NOT NULL AS labelled, COALESCE(label, 0) AS fraud,
                COALESCE(label, 0) * CAST(ROUND(amount * 1e6) AS INTEGER) AS fraud_amount,
                (label IS NOT NULL) * (risk_tier IN ('high', 'critical')) AS alert_labelled,
                COALESCE(label, 0) * (risk_tier IN ('high', 'critical')) AS alert_confirmed
                """
            let sums = "SUM(labelled), SUM(fraud), SUM(fraud_amount), SUM(alert_labelled), SUM(alert_confirmed)"
            let expectedHours: [String] = try query(
                dir,
                """
                SELECT h || ':' || \(sums.replacingOccurrences(of: ", ", with: " || ':' || ")) FROM (
                    SELECT event_time - ((event_time % 3600000000) + 3600000000) % 3600000000 AS h, \(outcome)
                    FROM silver_transactions) GROUP BY h HAVING SUM(labelled) > 0 ORDER BY h
                """)
            let hours: [String] = try query(
                dir,
                """
                SELECT hour || ':' || labelled || ':' || confirmed_frauds || ':' || fraud_amount_micros || ':' ||
                    alerts_labelled || ':' || alerts_confirmed FROM gold_hourly WHERE labelled > 0 ORDER BY hour
                """)
            #expect(!hours.isEmpty && hours == expectedHours)
            let expectedCards: [String] = try query(
                dir,
                """
                SELECT card_id || ':' || \(sums.replacingOccurrences(of: ", ", with: " || ':' || ")) FROM (
                    SELECT card_id, \(outcome) FROM silver_transactions) GROUP BY card_id HAVING SUM(labelled) > 0
                ORDER BY card_id
                """)
            let cards: [String] = try query(
                dir,
                """
                SELECT card_id || ':' || labelled || ':' || confirmed_frauds || ':' || fraud_amount_micros || ':' ||
                    alerts_labelled || ':' || alerts_confirmed FROM gold_card_labels WHERE labelled > 0 ORDER BY card_id
                """)
            #expect(cards == expectedCards)
            let totals: [String] = try query(
                dir,
                "SELECT \(sums.replacingOccurrences(of: ", ", with: " || ':' || ")) FROM (SELECT \(outcome) FROM silver_transactions)"
            )
            let s = try store.serving.stats(from: 0)
            #expect(
                totals == ["\(s.labelled):\(s.confirmedFrauds):\(s.fraudAmountMicros):\(s.alertsLabelled):\(s.alertsConfirmed)"])
            #expect(s.alertsLabelled > 0 && s.confirmedFrauds > 0)
            // The views name the rates for what they are.
            let views: [String] = try query(
                dir,
                """
                SELECT name FROM pragma_table_info('hourly_metrics') UNION ALL SELECT name FROM pragma_table_info('card_risk')
                """)
            for column in ["alert_rate", "confirmed_fraud_rate", "fraud_amount", "alert_precision", "confirmed_frauds"] {
                #expect(views.filter { $0 == column }.count == 2, "\(column) in both views")
            }
            #expect(!views.contains("fraud_rate"))
        }
    }

    /// The v6 migration sums the labels a data directory already had.
    @Test func aV5DataDirectoryGetsItsConfirmedOutcomes() throws {
        try withDirectory { dir in
            let path = dir + "/log.sqlite"
            let hour: Int64 = 1_795_000_000_000_000 - 1_795_000_000_000_000 % 3_600_000_000
            do {
                let db = try DatabaseQueue(path: path)
                try SQLiteEventLog.migrator.migrate(db, upTo: "v5: dead letters indexed by time alone")
                try db.write { db in
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('partitions', 1)")
                    var features = [String](repeating: "0", count: Feature.count)
                    for (k, (tier, label, amount)) in [("critical", "1", 120.5), ("low", "0", 30.0), ("high", "NULL", 9.0)]
                        .enumerated()
                    {
                        features[Feature.amount.rawValue] = "\(amount)"
                        try db.execute(
                            sql: """
                                INSERT INTO silver_transactions VALUES ('t\(k)', 'c\(k % 2)', 'm', NULL, 'USD', NULL, NULL, ?, 't',
                                    \(features.joined(separator: ", ")), 0.5, '\(tier)', 'approve', 1, NULL, 1000, NULL, NULL,
                                    \(label), 1, 0, \(k))
                                """, arguments: [hour + Int64(k) * 1_000_000])
                        try db.execute(
                            sql: "INSERT INTO records VALUES ('transactions', 0, \(k), 'c', x'7b7d', ?)",
                            arguments: [hour + 120_000_000])
                    }
                    try db.execute(
                        sql: "INSERT INTO gold_hourly VALUES (?, 3, 159500000, 2, 1, 1, 1500000000, 3000, 1000)",
                        arguments: [hour])
                }
            }
            // Kept open while the queries read: closing the last connection checkpoints the WAL, and a
            // reader opening meanwhile (no busy timeout) would find the database locked.
            let store = try SQLiteEventLog(directory: dir)
            defer { withExtendedLifetime(store) {} }
            let hourly: [String] = try query(
                dir,
                """
                SELECT labelled || ':' || confirmed_frauds || ':' || fraud_amount || ':' || alerts_labelled || ':' ||
                    alert_precision FROM hourly_metrics
                """)
            #expect(hourly == ["2:1:120.5:1:1.0"])
            let minutes: [String] = try query(
                dir, "SELECT minute || ':' || labelled || ':' || confirmed_frauds FROM gold_minutes")
            #expect(minutes == ["\(hour + 120_000_000 - (hour + 120_000_000) % 60_000_000):2:1"])
            let cards: [String] = try query(
                dir, "SELECT card_id || ':' || labelled || ':' || confirmed_frauds FROM gold_card_labels ORDER BY 1")
            #expect(cards == ["c0:1:1", "c1:1:0"])
        }
    }
}

@Suite struct UnconfirmedFraudTests {
    /// Item 14: the frauds a source marked (is_fraud) that no label confirmed, and no label
    /// waiting in the log names, are what the restarted live generator still owes.
    @Test func theChargebacksStillOwedAreFound() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1_000), version: 1))
            let txs = try history(days: 4, cards: 60, seed: 41, fraudRate: 0.05).map { t -> Transaction in
                var t = t
                t.transactionID = "lv1_" + t.transactionID
                return t
            }
            _ = try Ingestor(store: store).ingest(txs.map { IngestRecord(transaction: $0) }, source: "generator")
            try drain(runtime)
            let frauds = txs.filter { $0.isFraud == true }
            #expect(frauds.count > 10)
            // One third confirmed and processed, one label waiting in the log, the rest owed.
            let confirmed = frauds.prefix(frauds.count / 3)
            try store.ingestLabels(
                confirmed.map { LabelEvent(transactionID: $0.transactionID, isFraud: true, reportedAt: $0.timestamp) },
                source: "generator-labels", resumeAt: 1)
            try drain(runtime)
            let waiting = frauds[frauds.count / 3]
            try store.ingestLabels(
                [LabelEvent(transactionID: waiting.transactionID, isFraud: true, reportedAt: waiting.timestamp)],
                source: "generator-labels", resumeAt: 2)
            let since = txs[txs.count / 2].timestamp.microseconds
            let owed = try store.unconfirmedFrauds(idPrefix: "lv", since: since)
            let expected = frauds.dropFirst(frauds.count / 3 + 1).filter { $0.timestamp.microseconds >= since }
            #expect(owed.map(\.id) == expected.map(\.transactionID))
            #expect(owed.map(\.eventTime) == expected.map(\.timestamp.microseconds))
            #expect(try store.unconfirmedFrauds(idPrefix: "other", since: 0).isEmpty)
        }
    }
}
