import ArgumentParser
import CardwatchCore
import CardwatchGenerator
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the generator and the schema codecs (build with -c release).",
        discussion: """
            Generates --count transactions once, then times each stage --runs times and prints
            the median rate. The Foundation JSONDecoder row is the baseline the hand-written
            decoder is measured against; both include the same schema validation.
            """
    )

    @Option(help: "Cardholders in the synthetic world.") var cards = 500
    @Option(help: "Transactions per run.") var count = 1_000_000
    @Option(help: "Runs per stage; the median is reported.") var runs = 5
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        var config = GeneratorConfig()
        config.cards = cards
        config.seed = seed
        let world = World(config: config)
        let start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
        func generator() throws -> TransactionGenerator {
            try TransactionGenerator(config: config, mode: .backfill(start: start, end: nil), world: world)
        }

        var transactions: [Transaction] = []
        transactions.reserveCapacity(count)
        var g = try generator()
        while transactions.count < count, let t = g.next() { transactions.append(t) }
        var jsonl: [UInt8] = []
        var csv: [UInt8] = Array(TransactionEncoder.csvHeader.utf8)
        for t in transactions {
            TransactionEncoder.appendJSONLine(t, to: &jsonl)
            TransactionEncoder.appendCSVRow(t, to: &csv)
        }
        let lines = splitLines(jsonl)
        let csvLines = Array(splitLines(csv).dropFirst())
        print("cards=\(cards) records=\(grouped(count)) runs=\(runs) jsonl=\(jsonl.count / count) bytes/record")
        print("stage                                       median records/s   (min … max)")

        try measure("generate (in memory)") {
            var g = try generator()
            var n = 0
            while n < count, g.next() != nil { n += 1 }
            return n
        }
        try measure("generate + encode JSON Lines") {
            var g = try generator()
            var out: [UInt8] = []
            out.reserveCapacity(1 << 21)
            var n = 0
            while n < count, let t = g.next() {
                TransactionEncoder.appendJSONLine(t, to: &out)
                if out.count > 1 << 20 { out.removeAll(keepingCapacity: true) }
                n += 1
            }
            return n
        }
        measure("parse + validate JSON Lines (hand)") {
            var decoder = TransactionJSONDecoder()
            var ok = 0
            jsonl.withUnsafeBytes { buffer in
                for r in lines {
                    if case .success = decoder.decode(UnsafeRawBufferPointer(rebasing: buffer[r])) { ok += 1 }
                }
            }
            return ok
        }
        measure("parse + validate CSV (hand)") {
            var decoder = csv.withUnsafeBytes {
                TransactionCSVDecoder(header: UnsafeRawBufferPointer(rebasing: $0[splitLines(csv)[0]]))
            }
            var ok = 0
            csv.withUnsafeBytes { buffer in
                for r in csvLines {
                    if case .success = decoder.decode(UnsafeRawBufferPointer(rebasing: buffer[r])) { ok += 1 }
                }
            }
            return ok
        }
        measure("parse + validate JSON Lines (Foundation)") {
            let decoder = JSONDecoder()
            var ok = 0
            for r in lines {
                let data = Data(jsonl[r])
                guard let record = try? decoder.decode(FoundationRecord.self, from: data) else { continue }
                if case .success = TransactionValidator.validate(record.raw, in: UnsafeRawBufferPointer(start: nil, count: 0)) {
                    ok += 1
                }
            }
            return ok
        }
    }

    func measure(_ name: String, _ body: () throws -> Int) rethrows {
        var rates: [Double] = []
        for _ in 0..<runs {
            let t0 = monotonicSeconds()
            let n = try body()
            rates.append(Double(n) / (monotonicSeconds() - t0))
        }
        rates.sort()
        let pad = String(repeating: " ", count: max(1, 44 - name.count))
        print(
            "\(name)\(pad)\(grouped(Int(rates[rates.count / 2])))   (\(grouped(Int(rates[0]))) … \(grouped(Int(rates[rates.count - 1]))))"
        )
    }

    func splitLines(_ bytes: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
            out.append(start..<i)
            start = i + 1
        }
        return out
    }
}

/// The Foundation baseline: JSONDecoder into optional fields, then the same schema validation.
struct FoundationRecord: Decodable {
    var transaction_id, card_id, timestamp, merchant_id: String?
    var merchant_category, currency, country, channel, customer_id, fraud_pattern: String?
    var amount, latitude, longitude: Double?
    var is_fraud: Int?

    var raw: RawRecord {
        var r = RawRecord(isText: false)
        func s(_ v: String?) -> RawValue { v.map { .unescaped($0) } ?? .missing }
        func d(_ v: Double?) -> RawValue { v.map { .number($0) } ?? .missing }
        r[.transactionID] = s(transaction_id)
        r[.cardID] = s(card_id)
        r[.amount] = d(amount)
        r[.timestamp] = s(timestamp)
        r[.merchantID] = s(merchant_id)
        r[.merchantCategory] = s(merchant_category)
        r[.currency] = s(currency)
        r[.latitude] = d(latitude)
        r[.longitude] = d(longitude)
        r[.country] = s(country)
        r[.channel] = s(channel)
        r[.customerID] = s(customer_id)
        r[.isFraud] = is_fraud.map { .number(Double($0)) } ?? .missing
        r[.fraudPattern] = s(fraud_pattern)
        return r
    }
}
