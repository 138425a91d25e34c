import Testing

@testable import CardwatchCore

/// A CSV row under the full header, built from raw cell texts (already quoted where needed).
struct CSVRecord: Sendable, CustomTestStringConvertible {
    static let valid: [String: String] = [
        "transaction_id": "tx-1", "card_id": "card-1", "amount": "12.5", "timestamp": "2026-03-01T12:30:00Z",
        "merchant_id": "m-1",
    ]

    var cells: [String: String]

    /// The valid row with `changes` applied; a nil value empties the cell.
    init(_ changes: [(String, String?)] = []) {
        var cells = CSVRecord.valid
        for (column, cell) in changes { cells[column] = cell }
        self.cells = cells
    }

    var row: String { TransactionField.written.map { cells[$0.name] ?? "" }.joined(separator: ",") }
    var testDescription: String { row }
}

struct BadCell: Sendable, CustomTestStringConvertible {
    var record: CSVRecord
    var field: String
    var mentions: [String]

    init(_ changes: [(String, String?)], _ field: String, _ mentions: String...) {
        self.record = CSVRecord(changes)
        self.field = field
        self.mentions = mentions
    }

    var testDescription: String { "\(field): \(record.row)" }
}

func decodeCSV(_ row: String, header: String = csvHeaderLine) -> Result<Transaction, RecordError> {
    var decoder = csvDecoder(header: header)
    return decoder.decode(row)
}

let badCSVCells: [BadCell] = [
    BadCell([("amount", "abc")], "amount", "is not a number", "abc"),
    BadCell([("amount", " 12.5")], "amount", "is not a number"),
    BadCell([("amount", "\"12,5\"")], "amount", "is not a number"),
    BadCell([("amount", "0x10")], "amount", "is not a number"),
    BadCell([("amount", "NaN")], "amount", "is not a number"),
    BadCell([("amount", "inf")], "amount", "is not a number"),
    BadCell([("amount", "\"1\"\"\"")], "amount", "is not a number"),
    BadCell([("amount", nil)], "amount", "missing"),
    BadCell([("amount", "0")], "amount", "greater than 0"),
    BadCell([("amount", "-3")], "amount", "greater than 0"),
    BadCell([("amount", "1e10")], "amount", "at most"),
    BadCell([("amount", "1e999")], "amount", "finite"),
    BadCell([("transaction_id", nil)], "transaction_id", "missing"),
    BadCell([("transaction_id", "\"\"")], "transaction_id", "missing"),
    BadCell([("card_id", nil)], "card_id", "missing"),
    BadCell([("merchant_id", nil)], "merchant_id", "missing"),
    BadCell([("timestamp", nil)], "timestamp", "missing"),
    BadCell([("card_id", sixtyFive)], "card_id", "65", "64"),
    BadCell([("merchant_id", "\"m\nx\"")], "merchant_id", "control character"),
    BadCell([("customer_id", "\"c\tx\"")], "customer_id", "control character"),
    BadCell([("timestamp", "2026-02-30T12:00:00Z")], "timestamp", "RFC 3339"),
    BadCell([("timestamp", "yesterday")], "timestamp", "RFC 3339", "yesterday"),
    BadCell([("latitude", "10")], "longitude", "missing"),
    BadCell([("longitude", "10")], "latitude", "missing"),
    BadCell([("latitude", "91"), ("longitude", "0")], "latitude", "-90 and 90"),
    BadCell([("latitude", "0"), ("longitude", "-181")], "longitude", "-180 and 180"),
    BadCell([("latitude", "north"), ("longitude", "0")], "latitude", "is not a number"),
    BadCell([("channel", "web")], "channel", "unknown channel"),
    BadCell([("currency", "usd")], "currency", "ISO 4217"),
    BadCell([("currency", "ABC")], "currency", "ISO 4217"),
    BadCell([("country", "XX")], "country", "ISO 3166"),
    BadCell([("merchant_category", "541")], "merchant_category", "4-digit"),
    BadCell([("is_fraud", "2")], "is_fraud", "0, 1", "2"),
    BadCell([("is_fraud", "yes")], "is_fraud", "0, 1"),
    BadCell([("is_fraud", "TRUE")], "is_fraud", "0, 1"),
    BadCell([("is_fraud", "1"), ("fraud_pattern", " ")], "fraud_pattern", "blank"),
    BadCell([("is_fraud", "0"), ("fraud_pattern", "geo_jump")], "fraud_pattern", "is_fraud"),
    BadCell([("fraud_pattern", "geo_jump")], "fraud_pattern", "is_fraud"),
]

@Suite struct CSVTests {
    @Test func theBaseRowIsValid() throws {
        let t = try decodeCSV(CSVRecord().row).get()
        #expect(t.transactionID == "tx-1" && t.amount == 12.5 && t.currency == "USD")
        #expect(t.merchantCategory == nil && t.location == nil && t.isFraud == nil && t.customerID == nil)
        #expect(csvDecoder().headerIssues.isEmpty)
    }

    @Test(arguments: badCSVCells)
    func csvRejectsABadCell(_ bad: BadCell) {
        expectSingleIssue(decodeCSV(bad.record.row), field: bad.field, mentions: bad.mentions)
    }

    @Test(
        arguments: [
            [("is_fraud", "true")], [("is_fraud", "false")], [("is_fraud", "1"), ("fraud_pattern", "card_testing")],
            [("amount", "\"12.5\"")], [("amount", "1e9")], [("amount", "0.01")],
            [("latitude", "\"-90\""), ("longitude", "180")], [("merchant_category", "0742")],
            [("merchant_category", "\"grocery, fresh\"")], [("currency", "JPY"), ("country", "JP"), ("channel", "pos")],
            [("customer_id", "\"\"")], [("transaction_id", "\"\"\"\"")],
        ] as [[(String, String?)]])
    func csvAcceptsEdgeValues(_ changes: [(String, String?)]) throws {
        expectSchemaValid(try decodeCSV(CSVRecord(changes).row).get())
    }

    @Test func quotedCellsKeepCommasQuotesAndNewlines() throws {
        let header = "transaction_id,card_id,amount,timestamp,merchant_id,note"
        let row = "\"a,b\",\"c \"\"q\"\" d\",12.5,2026-03-01T12:30:00Z,\"\"\"m\"\"\",\"line 1\nline 2, \"\"x\"\"\r\nend\""
        let t = try decodeCSV(row, header: header).get()
        #expect(t.transactionID == "a,b")
        #expect(t.cardID == "c \"q\" d")
        #expect(t.merchantID == "\"m\"")
        let unicode = try decodeCSV("\"é,😀\",ü,1,2026-03-01T12:30:00Z,\"日本\",", header: header).get()
        #expect(unicode.transactionID == "é,😀" && unicode.cardID == "ü" && unicode.merchantID == "日本")
    }

    @Test func quoteCharactersInsideAnUnquotedCellAreLiteral() throws {
        // RFC 4180 does not allow them, but a lenient reader keeps them as text rather than failing.
        let result = decodeCSV(CSVRecord([("merchant_id", "m\"1")]).row)
        if case .success(let t) = result { #expect(t.merchantID == "m\"1") }
        expectWellFormed(result, input: Array(CSVRecord([("merchant_id", "m\"1")]).row.utf8))
    }

    @Test func everyProblemOfARowIsReportedAtOnce() {
        let row = CSVRecord([("amount", "abc"), ("currency", "usd"), ("country", "XX"), ("channel", "web")]).row
        let found = issues(decodeCSV(row))
        #expect(found.count == 4, "\(found)")
        #expect(Set(found.map(\.field)) == ["amount", "currency", "country", "channel"])
        #expect(found.allSatisfy { !$0.problem.isEmpty })

        let blank = issues(decodeCSV(String(repeating: ",", count: TransactionField.written.count - 1)))
        #expect(Set(blank.map(\.field)) == ["transaction_id", "card_id", "amount", "timestamp", "merchant_id"])
    }

    @Test(arguments: ["transaction_id", "card_id", "amount", "timestamp", "merchant_id"])
    func headerWithoutARequiredColumnIsReported(_ column: String) {
        let header = TransactionField.written.map(\.name).filter { $0 != column }.joined(separator: ",")
        let found = csvDecoder(header: header).headerIssues
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.field == column)
        #expect(found.first?.problem.contains("missing") == true)
        // Every row under such a header is then missing that field.
        let row = TransactionField.written.filter { $0.name != column }.map { CSVRecord().cells[$0.name] ?? "" }
        expectSingleIssue(decodeCSV(row.joined(separator: ","), header: header), field: column, mentions: ["missing"])
    }

    @Test func headerWithADuplicateColumnIsReported() {
        let found = csvDecoder(header: csvHeaderLine + ",amount").headerIssues
        #expect(found.count == 1 && found.first?.field == "amount", "\(found)")
        #expect(found.first?.problem.contains("more than once") == true)

        let both = csvDecoder(header: "transaction_id,card_id,card_id,amount,merchant_id").headerIssues
        #expect(Set(both.map(\.field)) == ["card_id", "timestamp"] && both.count == 2, "\(both)")
    }

    @Test func optionalOnlyHeaderReportsEveryRequiredColumn() {
        let found = csvDecoder(header: "currency,note").headerIssues
        #expect(Set(found.map(\.field)) == ["transaction_id", "card_id", "amount", "timestamp", "merchant_id"])
        #expect(csvDecoder(header: "").headerIssues.count == 5)
    }

    @Test func columnsMayComeInAnyOrderQuotedAndWithUnknownOnes() throws {
        let header = "note,\"merchant_id\",timestamp,amount,\"card_id\",extra,transaction_id,country"
        let decoder = csvDecoder(header: header)
        #expect(decoder.headerIssues.isEmpty)
        #expect(decoder.columns == [nil, .merchantID, .timestamp, .amount, .cardID, nil, .transactionID, .country])
        let t = try decodeCSV("hello,m,2026-03-01T12:30:00Z,7.25,c,\"x,y\",t,FR", header: header).get()
        #expect(t.merchantID == "m" && t.cardID == "c" && t.transactionID == "t" && t.amount == 7.25)
        #expect(t.country == "FR")
    }

    @Test(arguments: [1, -1, 5, -5])
    func rowWithTheWrongNumberOfCellsIsARecordIssue(_ delta: Int) {
        var cells = CSVRecord().row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if delta > 0 { cells += Array(repeating: "x", count: delta) } else { cells.removeLast(-delta) }
        let found = issues(decodeCSV(cells.joined(separator: ",")))
        #expect(found.count == 1 && found.first?.field == "record", "\(found)")
        #expect(found.first?.problem.contains("\(cells.count) cells") == true, "\(found)")
        #expect(found.first?.problem.contains("\(TransactionField.written.count) columns") == true, "\(found)")
    }

    @Test(arguments: [
        ("\"tx-1,card-1,12.5,2026-03-01T12:30:00Z,m-1,,,,,,,,,", "unterminated"),
        ("\"tx\"x,card-1,12.5,2026-03-01T12:30:00Z,m-1,,,,,,,,,", "after the closing quote"),
        ("\"tx\"xcard-1,12.5,2026-03-01T12:30:00Z,m-1,,,,,,,,,", "after the closing quote"),
        ("tx-1,\"card\" ,12.5,2026-03-01T12:30:00Z,m-1,,,,,,,,,", "after the closing quote"),
        ("", "cells"),
    ])
    func malformedRowsAreRecordIssues(_ row: String, _ mention: String) {
        let found = issues(decodeCSV(row))
        #expect(found.count == 1 && found.first?.field == "record", "\(found)")
        #expect(found.first?.problem.contains(mention) == true, "\(found)")
    }

    @Test func invalidUTF8InACellIsARecordIssue() {
        for bad: [UInt8] in [[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80]] {
            for quoted in [false, true] {
                var row = Array("tx-1,".utf8)
                if quoted { row += Array("\"a\"\"".utf8) + bad + Array("\"".utf8) } else { row += bad }
                row += Array(",12.5,2026-03-01T12:30:00Z,m-1,,,,,,,,,".utf8)
                var decoder = csvDecoder()
                let found = issues(row.withUnsafeBytes { decoder.decode($0) })
                #expect(found.count == 1 && found.first?.field == "record", "\(row): \(found)")
            }
        }
    }
}
