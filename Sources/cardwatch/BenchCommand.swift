import ArgumentParser
import CardwatchCore
import CardwatchFeatures
import CardwatchGenerator
import CardwatchModel
import CardwatchPipeline
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (build with -c release): the codecs, the feature engine, the model, synchronous decisions.",
        subcommands: [CodecBench.self, FeatureBench.self, ModelBench.self, DecisionBench.self]
    )
}

struct CodecBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Measure the generator and the schema codecs.",
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
        measure("parse + validate JSON Lines (live: clock check)") {
            // As `import` and the HTTP API decode: the wall clock read for every record's bound
            // check (unbounded here, so the generated history from 2026-01-01 passes).
            var decoder = TransactionJSONDecoder(policy: IngestPolicy(eventTimes: EventTimeBounds(ahead: nil, behind: nil)))
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
        try measureRate(name, runs: runs, body)
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

/// A backfill of the default world from 2026-01-01: `count` transactions, or `days` of them.
func syntheticHistory(cards: Int, seed: UInt64 = 1, count: Int? = nil, days: Double? = nil) throws -> [Transaction] {
    var config = GeneratorConfig()
    config.cards = cards
    config.seed = seed
    let start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
    var g = try TransactionGenerator(config: config, mode: .backfill(start: start, end: days.map { start + $0 * 86_400 }))
    var transactions: [Transaction] = []
    transactions.reserveCapacity(count ?? 0)
    while count.map({ transactions.count < $0 }) ?? true, let t = g.next() { transactions.append(t) }
    return transactions
}

/// Runs `body` (which returns how many items it handled) `runs` times and prints the median rate.
func measureRate(_ name: String, runs: Int, _ body: () throws -> Int) rethrows {
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

struct FeatureBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Measure feature-engine updates per second and state bytes per active card.",
        discussion: """
            Generates --count transactions of a --cards world in memory, then runs a fresh
            engine over them --runs times (one core) and prints the median rate of
            updates + feature vectors. State per card is measured twice: by the engine's
            own accounting of its buffers, and as the growth of resident memory during
            the first run divided by the active cards (merchants included).
            """
    )

    @Option(help: "Cardholders in the synthetic world.") var cards = 500
    @Option(help: "Transactions per run.") var count = 2_000_000
    @Option(help: "Runs; the median is reported.") var runs = 5
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        let transactions = try syntheticHistory(cards: cards, seed: seed, count: count)
        let days = transactions.last!.timestamp.seconds(since: transactions[0].timestamp) / 86_400
        print("cards=\(grouped(cards)) transactions=\(grouped(transactions.count)) spanning \(format1(days)) days, runs=\(runs)")

        var first = true
        var checksum = 0.0
        try measureRate("updates + feature vectors (1 core)", runs: runs) {
            let rssBefore = residentBytes()
            var engine = try FeatureEngine()
            for t in transactions {
                let f = engine.process(t)
                checksum += f[.txCount1hr]
            }
            if first {
                first = false
                let grown = residentBytes() - rssBefore
                let bytes = engine.stateBytes
                print(
                    "active cards \(grouped(engine.activeCards)), merchants \(grouped(engine.activeMerchants)); "
                        + "state per active card: \(bytes.cards / max(1, engine.activeCards)) B by accounting "
                        + "(+ \(bytes.merchants / max(1, engine.activeCards)) B of merchant state per card), "
                        + "\(grown / max(1, engine.activeCards)) B by resident-memory growth")
            }
            return transactions.count
        }
        if checksum == 0 { print("(checksum \(checksum))") }
    }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * 4096
}

struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Measure GBDT training time and one-row scoring latency (300 trees by default).",
        discussion: """
            Generates --days of a --cards world, builds features by replay, trains a GBDT with
            exactly --trees trees (no early stopping) and times: training; scoring one row
            at a time (median over --runs passes of every row); the partition operator's step
            on one transaction (feature update, score, decision); TreeSHAP explanation of one row.
            """
    )

    @Option(help: "Cardholders in the synthetic world.") var cards = 500
    @Option(help: "Days of history.") var days = 30.0
    @Option(help: "Trees in the model.") var trees = 300
    @Option(help: "Runs; the median is reported.") var runs = 5

    func run() throws {
        let transactions = try syntheticHistory(cards: cards, days: days)
        let data = try ModelTraining.dataset(history: transactions)
        var p = GBDTParameters()
        p.trees = trees
        p.earlyStoppingRounds = 0
        let t0 = monotonicSeconds()
        let fit = GBDTTrainer.fit(data.matrix, parameters: p)
        let trainSeconds = monotonicSeconds() - t0
        let artifact = ModelArtifact(
            kind: .gbdt, featureNames: Feature.names, featureSchemaVersion: Feature.schemaVersion, trees: fit.ensemble)
        print(
            "rows=\(grouped(data.rows)) trees=\(fit.ensemble.treeCount) nodes=\(grouped(fit.ensemble.nodes.count)) runs=\(runs)")
        print(
            "training (\(grouped(data.rows)) rows × \(Feature.count) features, \(trees) trees, 2 threads): \(format1(trainSeconds)) s"
        )

        var sink = 0.0
        func perRow(_ name: String, _ body: (Int) -> Double) {
            var ns: [Double] = []
            for _ in 0..<runs {
                let t = monotonicSeconds()
                for i in 0..<data.rows { sink += body(i) }
                ns.append((monotonicSeconds() - t) / Double(data.rows) * 1e9)
            }
            ns.sort()
            print("\(name): \(Int(ns[ns.count / 2])) ns median (\(Int(ns[0])) … \(Int(ns[ns.count - 1])))")
        }
        let scorer = ModelScorer(artifact)
        perRow("one-row probability, \(trees) trees (simple walk)") { i in data.matrix.withRow(i) { artifact.probability($0) } }
        perRow("one-row probability, \(trees) trees (compiled forest)") { i in data.matrix.withRow(i) { scorer.probability($0) } }
        var engine = try FeatureEngine()
        var j = 0
        perRow("feature update + probability, one transaction (engine and model alone)") { _ in
            let f = engine.process(transactions[j % transactions.count])
            j += 1
            return withUnsafeBytes(of: f.values) { raw in scorer.probability(raw.bindMemory(to: Double.self)) }
        }
        // The pipeline's step as the runtime calls it: the partition operator folds the
        // transaction into its card's and merchant's state and decides it (model, rules, tier,
        // action); an alert's TreeSHAP reasons are timed on their own below.
        var op = try PartitionOperator()
        let decider = try Scorer(artifact: artifact, version: 1)
        let rules = RuleBook()
        var k = 0
        perRow("operator step (feature update + score + decision), one transaction") { _ in
            let (_, decision) = op.decide(transactions[k % transactions.count], model: decider, rules: rules, explain: false)
            k += 1
            return decision.probability
        }
        let explainer = TreeExplainer(fit.ensemble)
        for (name, explain) in [
            ("recursive reference", { (x: UnsafeBufferPointer<Double>) in fit.ensemble.explain(x).bias }),
            ("leaf tables, as served", { (x: UnsafeBufferPointer<Double>) in explainer.explain(x).bias }),
        ] {
            var explainNs: [Double] = []
            for _ in 0..<runs {
                let t = monotonicSeconds()
                for i in 0..<1_000 { sink += data.matrix.withRow(i % data.rows, explain) }
                explainNs.append((monotonicSeconds() - t) / 1_000 * 1e9)
            }
            explainNs.sort()
            print("TreeSHAP explanation, one row (\(name)): \(Int(explainNs[runs / 2] / 1000)) µs median")
        }
        if sink == 0.123 { print(sink) }
    }
}
