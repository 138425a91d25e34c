import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Testing

// Issue 14's bad data with lasting effects, through the embedded store.

let storagePANKey = try! PANKey(secret: Array("storage-test-secret-0123456789ab".utf8))

/// Every file under `dir` (the log and its WAL, checkpoints, the registry), as bytes.
func everyFile(under dir: String) throws -> [(path: String, bytes: [UInt8])] {
    var out: [(String, [UInt8])] = []
    let files = FileManager.default.enumerator(atPath: dir)
    while let name = files?.nextObject() as? String {
        let path = dir + "/" + name
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        out.append((path, Array(FileManager.default.contents(atPath: path) ?? Data())))
    }
    return out
}

func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard n.count <= haystack.count else { return false }
    for i in 0...(haystack.count - n.count) where haystack[i] == n[0] && haystack[i..<i + n.count].elementsEqual(n) {
        return true
    }
    return false
}

@Suite struct CardNumberStorageTests {
    /// Item 8: card numbers sent through a file import, valid and invalid, in JSON Lines and CSV,
    /// as card_number and where they do not belong, leave no trace in the data directory.
    @Test func noCardNumberReachesTheDataDirectory() throws {
        let pans = ["4111111111111111", "5500000000000004", "4111111111111112", "378282246310005", "6011000990139424"]
        let forms = pans.flatMap { pan -> [String] in
            let groups = stride(from: 0, to: pan.count, by: 4).map { i in
                String(pan.dropFirst(i).prefix(4))
            }
            return [pan, groups.joined(separator: " "), groups.joined(separator: "-")]
        }
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let now = Timestamp.now.rfc3339
            func record(_ id: String, _ extra: String) -> String {
                #"{"transaction_id":"\#(id)","amount":12.5,"timestamp":"\#(now)","merchant_id":"m1",\#(extra)}"#
            }
            let jsonl = [
                record("j1", #""card_number":"4111111111111111""#),  // valid
                record("j2", #""card_number":"5500 0000 0000 0004","note":"backup card 6011-0009-9013-9424""#),
                record("j3", #""card_number":"4111111111111112""#),  // bad check digit: dead letter
                record("j4", #""card_id":"378282246310005""#),  // a card number as the card id: dead letter
                record("j5", #""card_number":"4111111111111111","amount":0"#),  // invalid otherwise: dead letter
                #"{"transaction_id":"j6","card_number":"5500000000000004","#,  // malformed: dead letter
                record("j7", #""card_number":"4111111111111111","card_id":"not-the-derived-one""#),
            ]
            try writeLines(jsonl, to: dir + "/in.jsonl")
            let csv = [
                "transaction_id,card_number,amount,timestamp,merchant_id,memo",
                "c1,4111-1111-1111-1111,10,\(now),m1,",
                "c2,4111111111111112,10,\(now),m1,",
                "c3,378282246310005,10,\(now),m1,\"call 6011000990139424\"",
                "c4,5500000000000004,10,not-a-time,m1,",
            ]
            try writeLines(csv, to: dir + "/in.csv")
            let policy = IngestPolicy(panKey: storagePANKey, eventTimes: .live)
            let a = try Ingestor(store: store).importFile(dir + "/in.jsonl", policy: policy)
            let b = try Ingestor(store: store).importFile(dir + "/in.csv", policy: policy)
            #expect(a.accepted == 2 && a.deadLettered == 5, "\(a)")
            #expect(b.accepted == 2 && b.deadLettered == 2, "\(b)")
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(runtime)
            try runtime.stop()

            let cards: [String] = try query(dir, "SELECT DISTINCT card_id FROM silver_transactions ORDER BY card_id")
            #expect(cards.count == 3 && cards.allSatisfy { $0.count == 64 }, "\(cards)")
            let masked: [String] = try query(dir, "SELECT raw FROM dead_letters ORDER BY raw")
            #expect(masked.contains { $0.contains("411111******1112") }, "\(masked)")
            let files = try everyFile(under: dir)
            #expect(files.contains { $0.path.hasSuffix("log.sqlite") } && files.count > 2, "\(files.map(\.path))")
            for (path, bytes) in files where !path.hasSuffix(".jsonl") && !path.hasSuffix(".csv") {
                for form in forms { #expect(!contains(bytes, form), "\(form) in \(path)") }
            }
        }
    }
}

@Suite struct TrainingWindowTests {
    /// Item 10: the retraining window is measured from a robust event-time watermark, so one
    /// record dated 9999-12-31 already in the store (it slipped in before the bound, or a
    /// writer without one appended it) cannot move the window past all the data.
    @Test(arguments: [true, false]) func oneFarFutureRecordCannotEmptyTheWindow(first: Bool) throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let txs = try history(days: 12, cards: 60)
            var poison = txs[0]
            poison.transactionID = "from-the-future"
            poison.timestamp = Timestamp(rfc3339: "9999-12-31T00:00:00Z")!
            poison.isFraud = false
            poison.fraudPattern = nil
            let ingestor = Ingestor(store: store)
            let records = txs.map { IngestRecord(transaction: $0) }
            if first {
                _ = try ingestor.ingest([IngestRecord(transaction: poison)], source: "test")
                _ = try ingestor.ingest(records, source: "test")
            } else {
                _ = try ingestor.ingest(records, source: "test")
                _ = try ingestor.ingest([IngestRecord(transaction: poison)], source: "test")
            }
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(runtime)

            let rows = try store.monitoring.trainingRows(days: 30)
            #expect(rows.rows == txs.count, "\(rows.rows) rows of \(txs.count)")
            #expect(!rows.transactionIDs.contains("from-the-future"))
            let last7 = try store.monitoring.trainingRows(days: 7)
            #expect(last7.rows > txs.count / 3 && last7.rows < txs.count, "\(last7.rows)")
        }
    }
}

@Suite struct IdentifierStorageTests {
    /// Item 13: canonically equivalent ids are one transaction: the second is a duplicate.
    @Test func canonicallyEquivalentIDsAreOneTransaction() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 2)
            let now = Timestamp.now.rfc3339
            let lines = ["caf\u{E9}", "cafe\u{301}"].map {
                #"{"transaction_id":"\#($0)","card_id":"c","amount":1,"timestamp":"\#(now)","merchant_id":"m"}"#
            }
            try writeLines(lines, to: dir + "/in.jsonl")
            let summary = try Ingestor(store: store).importFile(dir + "/in.jsonl")
            #expect(summary.accepted == 1 && summary.duplicates == 1, "\(summary)")
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(runtime)
            let ids: [String] = try query(dir, "SELECT transaction_id FROM silver_transactions")
            #expect(ids.map { Array($0.utf8) } == [Array("caf\u{E9}".utf8)])
        }
    }

    /// A log written before the rules of issue 14 (a blank id, a card number in the stored
    /// record, an amount below a cent) still replays: the runtime reads the log as accepted.
    @Test func aLogFromBeforeTheNewRulesStillReplays() throws {
        try withDirectory { dir in
            let store = try SQLiteEventLog(directory: dir, partitions: 1)
            let old =
                #"{"transaction_id":" ","card_id":"c","card_number":"4111111111111111","amount":5e-324,"#
                + #""timestamp":"2026-03-01T00:00:00Z","merchant_id":"m"}"#
            var batch = IngestBatch(source: "old")
            var legacy = Transaction(
                transactionID: " ", cardID: "c", amount: 5e-324, timestamp: Timestamp(rfc3339: "2026-03-01T00:00:00Z")!,
                merchantID: "m")
            legacy.currency = "USD"
            batch.records = [Array(old.utf8).withUnsafeBytes { IngestRecord(transaction: legacy, raw: $0) }]
            _ = try store.ingest(batch)
            let runtime = try embeddedRuntime(store, try Scorer(artifact: amountModel(pivot: 1000), version: 1))
            try drain(runtime)
            #expect(runtime.counters.decided == 1)
        }
    }
}
