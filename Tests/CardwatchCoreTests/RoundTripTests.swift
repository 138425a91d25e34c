import Foundation
import PropertyBased
import Testing

@testable import CardwatchCore

/// The schema's JSON form written by Foundation, to check that both sides speak the same JSON.
struct FoundationWire: Encodable {
    var transaction_id: String
    var card_id: String
    var amount: Double
    var timestamp: String
    var merchant_id: String
    var merchant_category: String?
    var currency: String
    var latitude: Double?
    var longitude: Double?
    var country: String?
    var channel: String?
    var customer_id: String?
    var is_fraud: Bool?
    var fraud_pattern: String?

    init(_ t: Transaction) {
        transaction_id = t.transactionID
        card_id = t.cardID
        amount = t.amount
        timestamp = t.timestamp.rfc3339
        merchant_id = t.merchantID
        merchant_category = t.merchantCategory
        currency = t.currency
        latitude = t.location?.latitude
        longitude = t.location?.longitude
        country = t.country
        channel = t.channel?.rawValue
        customer_id = t.customerID
        is_fraud = t.isFraud
        fraud_pattern = t.fraudPattern
    }
}

/// Builds a file's bytes record by record, keeping the line number each record starts on.
struct FileBuilder {
    var bytes: [UInt8] = []
    var lines = 1
    var crlf = false

    /// Appends `record` (which may hold newlines inside CSV quotes) and a line ending; returns its line.
    @discardableResult
    mutating func add(_ record: [UInt8]) -> Int {
        let line = lines
        var record = record
        if crlf {
            // Line endings inside the record become CRLF too, as a Windows editor would write them.
            record = record.flatMap { $0 == UInt8(ascii: "\n") ? [0x0D, 0x0A] : [$0] }
        }
        bytes += record
        bytes += crlf ? [0x0D, 0x0A] : [0x0A]
        lines += 1 + record.count { $0 == UInt8(ascii: "\n") }
        return line
    }
}

func withoutNewline(_ bytes: [UInt8]) -> [UInt8] {
    bytes.last == UInt8(ascii: "\n") ? Array(bytes.dropLast()) : bytes
}

@Suite struct RoundTripTests {
    @Test func jsonLinesRoundTrip() async {
        await propertyCheck(count: 1000, input: transactions) { t in
            let line = TransactionEncoder.jsonLine(t)
            #expect(decodeJSON(line) == .success(t), "\(line)")
            let bytes = jsonBytes(t)
            #expect(bytes.last == UInt8(ascii: "\n") && bytes.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") })
            #expect(decodeJSON(bytes) == .success(t))
        }
    }

    @Test func csvRowsRoundTrip() async {
        await propertyCheck(count: 1000, input: transactions) { t in
            let row = withoutNewline(csvBytes(t))
            var decoder = csvDecoder()
            let result = row.withUnsafeBytes { decoder.decode($0) }
            #expect(result == .success(t), "\(String(decoding: row, as: UTF8.self))")
        }
    }

    @Test func oneDecoderReadsManyRecordsInARow() async {
        let batches = Generator<[Transaction], Shrink.None<[Transaction]>> { rng in
            (0..<50).map { _ in Rand.transaction(using: &rng) }
        }
        await propertyCheck(count: 20, input: batches) { batch in
            var json = TransactionJSONDecoder()
            var csv = csvDecoder()
            for t in batch {
                #expect(jsonBytes(t).withUnsafeBytes { json.decode($0) } == .success(t))
                #expect(withoutNewline(csvBytes(t)).withUnsafeBytes { csv.decode($0) } == .success(t))
            }
        }
    }

    @Test func writtenJSONIsWhatFoundationReads() async {
        await propertyCheck(count: 300, input: transactions) { t in
            let data = Data(TransactionEncoder.jsonLine(t).utf8)
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                Issue.record("Foundation could not read \(TransactionEncoder.jsonLine(t))")
                return
            }
            #expect(object["transaction_id"] as? String == t.transactionID)
            #expect(object["card_id"] as? String == t.cardID)
            #expect(object["merchant_id"] as? String == t.merchantID)
            #expect(object["customer_id"] as? String == t.customerID)
            #expect(object["merchant_category"] as? String == t.merchantCategory)
            // Foundation's own number parsing is not always correctly rounded: compare numbers closely.
            func close(_ a: Any?, _ b: Double?) -> Bool {
                guard let a = (a as? NSNumber)?.doubleValue, let b else { return a == nil && b == nil }
                return a == b || abs(a - b) <= abs(b) * 1e-12
            }
            #expect(close(object["amount"], t.amount))
            #expect(object["timestamp"] as? String == t.timestamp.rfc3339)
            #expect(object["currency"] as? String == t.currency)
            #expect(close(object["latitude"], t.location?.latitude))
            #expect(close(object["longitude"], t.location?.longitude))
            #expect((object["is_fraud"] as? NSNumber)?.intValue == t.isFraud.map { $0 ? 1 : 0 })
            #expect(object["fraud_pattern"] as? String == t.fraudPattern)
        }
    }

    @Test func foundationWrittenJSONDecodesToTheSameTransaction() async {
        await propertyCheck(count: 300, input: transactions, Gen.bool) { t, pretty in
            let encoder = JSONEncoder()
            encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.withoutEscapingSlashes]
            guard let data = try? encoder.encode(FoundationWire(t)) else {
                Issue.record("Foundation could not encode \(t)")
                return
            }
            // Pretty printing spreads the object over lines; the decoder takes it as one record.
            #expect(decodeJSON(Array(data)) == .success(t), "\(String(decoding: data, as: UTF8.self))")
        }
    }

    @Test func jsonLinesFileRoundTrips() async throws {
        let batches = Generator<[Transaction], Shrink.None<[Transaction]>> { rng in
            (0..<200).map { _ in Rand.transaction(using: &rng) }
        }
        await propertyCheck(count: 6, input: batches, Gen.bool, Gen.bool) { batch, crlf, unterminated in
            var file = FileBuilder(crlf: crlf)
            var expected: [(line: Int, record: Transaction?, raw: [UInt8])] = []
            for (i, t) in batch.enumerated() {
                if i % 17 == 3 { file.add([]) }
                if i % 23 == 5 { file.add(Array(" \t ".utf8)) }
                if i % 7 == 6 {
                    var bad = t
                    bad.amount = -bad.amount
                    let raw = withoutNewline(jsonBytes(bad))
                    expected.append((file.add(raw), nil, raw))
                } else {
                    expected.append((file.add(withoutNewline(jsonBytes(t))), t, []))
                }
            }
            if unterminated { file.bytes.removeLast(crlf ? 2 : 1) }  // the last line may lack its newline
            do {
                let outcomes = try withTempFile(file.bytes, suffix: ".jsonl") { try readTransactions(path: $0) }
                expectOutcomes(outcomes, expected)
            } catch {
                Issue.record(error)
            }
        }
    }

    @Test func csvFileRoundTripsWithNewlinesInQuotedCells() async throws {
        let batches = Generator<[Transaction], Shrink.None<[Transaction]>> { rng in
            (0..<200).map { _ in Rand.transaction(using: &rng) }
        }
        await propertyCheck(count: 6, input: batches, Gen.bool) { batch, crlf in
            var file = FileBuilder(crlf: crlf)
            file.add(Array((csvHeaderLine + ",note").utf8))
            var expected: [(line: Int, record: Transaction?, raw: [UInt8])] = []
            for (i, t) in batch.enumerated() {
                // An extra column the schema does not know, with a quoted cell that spans lines.
                let note = i % 3 == 0 ? "\"line one\nline \"\"two\"\", with comma\n\"" : i % 3 == 1 ? "plain" : ""
                if i % 19 == 4 { file.add(Array("  ".utf8)) }
                if i % 7 == 6 {
                    var bad = t
                    bad.currency = "usd"
                    let raw = withoutNewline(csvBytes(bad)) + Array(",\(note)".utf8)
                    let line = file.add(raw)
                    let written = crlf ? raw.flatMap { $0 == UInt8(ascii: "\n") ? [0x0D, 0x0A] : [$0] } : raw
                    expected.append((line, nil, written))
                } else {
                    expected.append((file.add(withoutNewline(csvBytes(t)) + Array(",\(note)".utf8)), t, []))
                }
            }
            do {
                let outcomes = try withTempFile(file.bytes, suffix: ".csv") { try readTransactions(path: $0) }
                expectOutcomes(outcomes, expected)
            } catch {
                Issue.record(error)
            }
        }
    }

    func expectOutcomes(
        _ outcomes: [ReadOutcome], _ expected: [(line: Int, record: Transaction?, raw: [UInt8])],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(outcomes.count == expected.count, sourceLocation: sourceLocation)
        for (got, want) in zip(outcomes, expected) {
            #expect(got.line == want.line, sourceLocation: sourceLocation)
            if let record = want.record {
                #expect(got.result == .success(record), sourceLocation: sourceLocation)
            } else {
                // A refused record keeps its exact bytes for the dead-letter log.
                #expect(got.raw == want.raw, sourceLocation: sourceLocation)
                let found = issues(got.result, sourceLocation: sourceLocation)
                #expect(!found.isEmpty && found.allSatisfy { !$0.problem.isEmpty }, sourceLocation: sourceLocation)
            }
        }
    }

    @Test func csvHeaderProblemsAreReportedOnTheHeaderLine() throws {
        var file = FileBuilder()
        file.add([])
        file.add(Array("transaction_id,card_id,amount,merchant_id,amount".utf8))
        file.add(Array("t,c,1,m,2".utf8))
        file.add(Array((csvHeaderLine).utf8))  // not a header any more: a row with bad values
        let outcomes = try withTempFile(file.bytes, suffix: ".data") { try readTransactions(path: $0, format: .csv) }
        #expect(outcomes.map(\.line) == [2, 3, 4])
        let header = outcomes.first.map { issues($0.result) } ?? []
        #expect(Set(header.map(\.field)) == ["amount", "timestamp"])
        #expect(outcomes.first?.raw == Array("transaction_id,card_id,amount,merchant_id,amount".utf8))
        let row = outcomes.count > 1 ? issues(outcomes[1].result) : []
        #expect(row.map(\.field) == ["timestamp"])
    }

    @Test func formatIsGuessedFromTheFileName() throws {
        #expect(RecordFormat.guess(path: "/data/tx.CSV") == .csv)
        #expect(RecordFormat.guess(path: "tx.csv") == .csv)
        #expect(RecordFormat.guess(path: "tx.jsonl") == .jsonl)
        #expect(RecordFormat.guess(path: "csv") == .jsonl)
        let t = Transaction(
            transactionID: "t", cardID: "c", amount: 2.5, timestamp: Timestamp(microseconds: 0), merchantID: "m")
        let csv = Array(TransactionEncoder.csvHeader.utf8) + csvBytes(t)
        #expect(try withTempFile(csv, suffix: ".csv") { try readTransactions(path: $0) }.map(\.result) == [.success(t)])
        let json = jsonBytes(t)
        #expect(try withTempFile(json, suffix: ".jsonl") { try readTransactions(path: $0) }.map(\.result) == [.success(t)])
    }

    @Test func aMissingFileIsAFileError() {
        let path = "/nonexistent-\(UUID().uuidString)/tx.jsonl"
        let error = #expect(throws: FileError.self) { _ = try TransactionFileReader(path: path) }
        #expect(error?.description.contains(path) == true)
    }
}
