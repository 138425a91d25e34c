import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import Foundation
import GRDB
import Logging
import Testing

@testable import CardwatchStorage

@Suite struct StageFailureTests {
    /// A commit fails mid-stream (rolled back); the runtime rebuilds the partitions it moved
    /// from the sink before its next batch, and the warehouse ends as after a run without the failure.
    @Test func aFailedCommitIsRecoveredExactlyOnce() throws {
        try withDirectory { root in
            let txs = try history(days: 6, cards: 120, seed: 12)
            var lastSilver: [[String]] = []
            for failAt in [0, 3] {  // 0: never fails
                let dir = root + "/run\(failAt)"
                let store = try SQLiteEventLog(directory: dir, partitions: 3)
                let scorer = try Scorer(artifact: amountModel(pivot: 700), version: 1)
                let runtime = try embeddedRuntime(store, scorer, batch: 300, checkpointEvery: 2)
                runtime.warehouse!.faults.withLock { $0.failAt = failAt }
                let ingest = Ingestor(store: store)
                for chunk in stride(from: 0, to: txs.count, by: 400) {
                    _ = try ingest.ingest(
                        txs[chunk..<min(txs.count, chunk + 400)].map { IngestRecord(transaction: $0) }, source: "t")
                }
                var failures = 0
                while true {
                    do {
                        try runtime.drain()
                        break
                    } catch {
                        #expect("\(error)".contains("injected by a test"))
                        failures += 1
                    }
                }
                #expect(failures == (failAt == 0 ? 0 : 1))
                let silver: [String] = try query(
                    dir,
                    "SELECT transaction_id || ':' || printf('%.17g', fraud_probability) || ':' || printf('%.17g', tx_count_1hr) "
                        + "|| ':' || risk_tier FROM silver_transactions ORDER BY transaction_id")
                lastSilver.append(silver)
                #expect(silver.count == txs.count)
            }
            #expect(lastSilver[0] == lastSilver[1], "the recovered run decided exactly as the clean one")
        }
    }
}

@Suite struct InlineDecisionTests {
    /// One append of the plan: transactions (decided at once, as the HTTP API has them, or left
    /// to the runtime's loop) or labels.
    enum Append {
        case transactions([Transaction], inline: Bool)
        case labels([LabelEvent])
    }

    /// Random chunks of a history, a repeated id now and then, labels in between.
    static func plan(_ txs: [Transaction], seed: UInt64) -> [Append] {
        var rng = SplitMix(seed: seed)
        var plan: [Append] = []
        var i = 0
        while i < txs.count {
            let end = min(txs.count, i + Int.random(in: 1...60, using: &rng))
            var chunk = Array(txs[i..<end])
            if i > 0 && Bool.random(using: &rng) { chunk.append(txs[Int.random(in: 0..<i, using: &rng)]) }
            plan.append(.transactions(chunk, inline: Int.random(in: 0..<4, using: &rng) != 0))
            if Int.random(in: 0..<4, using: &rng) == 0 {
                let t = txs[Int.random(in: 0..<end, using: &rng)]
                plan.append(
                    .labels([
                        LabelEvent(
                            transactionID: t.transactionID, isFraud: Bool.random(using: &rng), reportedAt: t.timestamp + 60)
                    ]))
            }
            i = end
        }
        return plan
    }

    /// What a run leaves in the warehouse, batch timing aside.
    static func warehouse(_ dir: String) throws -> [String] {
        let silver: [String] = try query(
            dir,
            "SELECT transaction_id || ':' || printf('%.17g', fraud_probability) || ':' "
                + "|| printf('%.17g', tx_count_1hr) || ':' || printf('%.17g', merchant_fraud_rate_7d) || ':' || risk_tier "
                + "|| ':' || coalesce(label, '-') FROM silver_transactions ORDER BY transaction_id")
        let gold: [String] = try query(
            dir,
            "SELECT card_id || ':' || transactions || ':' || amount_micros || ':' || alerts || ':' || last_risk_tier "
                + "FROM gold_card_profiles ORDER BY card_id")
        let hourly: [String] = try query(
            dir, "SELECT hour || ':' || transactions || ':' || amount_micros || ':' || alerts FROM gold_hourly ORDER BY hour")
        let labels: [String] = try query(
            dir,
            "SELECT transaction_id || ':' || is_fraud || ':' || matched FROM labels ORDER BY transaction_id, is_fraud, matched")
        let alerts: [String] = try query(dir, "SELECT transaction_id || ':' || reasons FROM alerts ORDER BY transaction_id")
        let duplicates: [String] = try query(dir, "SELECT transaction_id FROM duplicates ORDER BY id")
        // The alerts topic: one record per alert (keyed by card, in its partition), whatever failed.
        let published: [String] = try query(
            dir,
            "SELECT json_extract(CAST(payload AS TEXT), '$.transaction_id') || ':' || key || ':' || \"partition\" || ':' "
                + "|| json_extract(CAST(payload AS TEXT), '$.reasons') FROM records WHERE topic = 'alerts' "
                + "ORDER BY json_extract(CAST(payload AS TEXT), '$.transaction_id')")
        #expect(published.count == alerts.count)
        #expect(published.map { $0.split(separator: ":")[0] } == alerts.map { $0.split(separator: ":")[0] })
        return silver + ["--"] + gold + ["--"] + hourly + ["--"] + labels + ["--"] + alerts + ["--"] + duplicates + ["--"]
            + published
    }

    /// Batches decided at once (the HTTP API's path: appended, then stepped until their
    /// decisions commit), interleaved at random with appends by other writers (transactions
    /// and labels), and with one commit failing: the warehouse ends exactly as when every
    /// append goes to the log and the runtime's loop decides it.
    @Test(arguments: [1, 2, 3, 4] as [UInt64]) func decidingAtOnceEqualsTheRuntimesLoop(seed: UInt64) throws {
        try withDirectory { root in
            let txs = try history(days: 5, cards: 90, seed: 20 + seed)
            let plan = Self.plan(txs, seed: seed)
            #expect(plan.contains { if case .transactions(_, false) = $0 { true } else { false } })
            #expect(plan.contains { if case .labels = $0 { true } else { false } })
            let scorer = try Scorer(artifact: amountModel(pivot: 700), version: 1)
            var results: [[String]] = []
            for run in ["loop", "inline"] {
                let dir = root + "/" + run
                let base = try SQLiteEventLog(directory: dir, partitions: 3)
                let runtime = try embeddedRuntime(base, scorer, batch: 50, checkpointEvery: 3)
                // The loop run never fails; the other one fails its seventh commit (at once or in the loop).
                runtime.warehouse!.faults.withLock { $0.failAt = run == "loop" ? nil : 7 }
                var failures = 0
                var labelsSent: Int64 = 0
                for append in plan {
                    switch append {
                    case .transactions(let chunk, let inline):
                        var batch = IngestBatch(source: "t")
                        batch.records = chunk.map { IngestRecord(transaction: $0) }
                        guard run == "inline" && inline else {
                            _ = try base.ingest(batch)
                            continue
                        }
                        while true {
                            do {
                                let (outcome, decided) = try runtime.ingestAndDecide(batch)
                                #expect(decided?.transactions.count ?? 0 == outcome.accepted)
                                break
                            } catch {
                                // Nothing written (the append and its decisions are one transaction):
                                // sent again, as a client would.
                                #expect("\(error)".contains("injected by a test"))
                                failures += 1
                            }
                        }
                    case .labels(let labels):
                        labelsSent += Int64(labels.count)
                        try base.ingestLabels(labels, source: "l", resumeAt: labelsSent)
                    }
                }
                while true {
                    do {
                        try runtime.drain()
                        break
                    } catch {
                        failures += 1
                    }
                }
                #expect(failures == (run == "loop" ? 0 : 1))
                try runtime.stop()  // a clean stop: the gold tables complete
                results.append(try Self.warehouse(dir))
            }
            #expect(results[0].count > txs.count)
            let differences = zip(results[0], results[1]).enumerated().filter { $0.element.0 != $0.element.1 }
            #expect(
                results[0] == results[1],
                "deciding at once left the warehouse as the runtime's loop does; first differences: \(differences.prefix(3))")
        }
    }
}
