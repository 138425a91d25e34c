import ArgumentParser
import CardwatchCore
import CardwatchGenerator
import CardwatchPipeline

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate synthetic card transactions with labelled fraud.",
        discussion: """
            Backfill (--days N or --count N) simulates history from --start as fast
            as the machine allows; the same --seed and options give byte-identical
            output. Live (the default) streams --tps transactions a second,
            timestamped now, until stopped.

            Fraudulent transactions carry is_fraud=1 and their fraud_pattern;
            --labels-out writes the chargebacks that report them days later.

            Examples:
              cardwatch generate --days 30 --seed 1 --out history.jsonl
              cardwatch generate --days 7 --cards 10000 --out week.csv
              cardwatch generate --tps 200 --labels-out labels.jsonl
            """
    )

    @Option(help: "Number of cardholders.") var cards = 500
    @Option(help: "Random seed; the same seed gives the same world and stream.") var seed: UInt64 = 1
    @Option(help: "Share of transactions that are fraudulent (0 to 0.5).") var fraudRate = 0.02
    @Option(
        help: ArgumentHelp(
            "Shares of the fraud patterns, e.g. geo_jump=0.35,velocity_burst=0.3,high_amount=0.25,card_testing=0.1.",
            valueName: "pattern=share,..."))
    var patternShares: String?
    @Option(help: "Backfill this many days of history.") var days: Double?
    @Option(help: "Stop after this many transactions (backfill when given without --tps).") var count: Int?
    @Option(help: "Start of a backfill, RFC 3339.") var start = "2026-01-01T00:00:00Z"
    @Option(help: "Live mode: transactions per second.") var tps: Double?
    @Option(help: "Mean legitimate transactions per card per day.") var perCardDaily = 3.0
    @Option(help: "Median chargeback delay in days (log-normal, clamped to 1–30).") var labelDelayDays = 5.0
    @Option(
        name: .shortAndLong,
        help: "Output file; '-' is standard output; kafka://HOST:PORT[,…] produces to its transactions topic (keyed by card_id).")
    var out = "-"
    @Option(help: "With --out kafka://: partitions of the topics created when missing.") var partitions: Int?
    @OptionGroup(title: "Kafka (with --out kafka://…)") var kafka: KafkaOptions
    @Option(help: "Output format: jsonl or csv (default: from the file name, else jsonl).", transform: parseFormat)
    var format: RecordFormat?
    @Option(help: "Write label events (chargebacks) as JSON Lines to this file.") var labelsOut: String?
    @Flag(help: "No progress line or summary on standard error.") var quiet = false

    func validate() throws {
        if let days, !(days > 0) { throw ValidationError("--days must be greater than 0") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if Timestamp(rfc3339: start) == nil { throw ValidationError("--start '\(start)' is not an RFC 3339 date-time") }
        if tps != nil && days != nil { throw ValidationError("--tps (live) and --days (backfill) exclude each other") }
        if let partitions, !(1...256).contains(partitions) { throw ValidationError("--partitions must be between 1 and 256") }
    }

    func makeConfig() throws -> GeneratorConfig {
        var config = GeneratorConfig()
        config.seed = seed
        config.cards = cards
        config.fraudRate = fraudRate
        config.transactionsPerCardPerDay = perCardDaily
        config.labelDelayMedianDays = labelDelayDays
        config.labelDelayMaxDays = max(30, labelDelayDays)
        config.labelDelayMinDays = min(1, labelDelayDays)
        if let patternShares { config.patternShares = try Self.parseShares(patternShares) }
        do { try config.validate() } catch { throw ValidationError(error.description) }
        return config
    }

    static func parseShares(_ text: String) throws -> [FraudPattern: Double] {
        var shares: [FraudPattern: Double] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let p = FraudPattern(rawValue: String(parts[0])), let v = Double(parts[1]), v >= 0 else {
                let known = FraudPattern.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--pattern-shares: '\(item)' is not pattern=share with a pattern from \(known)")
            }
            shares[p] = v
        }
        return shares
    }

    func run() throws {
        let config = try makeConfig()
        let live = tps != nil || (days == nil && count == nil)
        let format = self.format ?? .guess(path: out)
        var outlet = try kafkaOutlet()
        var sink = try ByteSink(path: outlet == nil ? out : "/dev/null")
        var labelSink = try labelsOut.map { try ByteSink(path: $0) }
        if format == .csv { sink.buffer.append(contentsOf: TransactionEncoder.csvHeader.utf8) }

        let mode: GeneratorMode
        if live {
            mode = .live(start: Timestamp(microseconds: wallClockMicroseconds()), tps: tps ?? 50)
        } else {
            let s = Timestamp(rfc3339: start)!
            mode = .backfill(start: s, end: days.map { s + $0 * 86_400 })
        }
        var generator: TransactionGenerator
        do { generator = try TransactionGenerator(config: config, mode: mode) } catch { throw ValidationError(error.description) }

        let began = monotonicSeconds()
        var lastProgress = began
        let showProgress = !quiet && !live && isatty(2) != 0
        var produced = 0
        var lastTime = Timestamp(microseconds: 0)
        while count.map({ produced < $0 }) ?? true, let tx = generator.next() {
            if live {
                if tx.timestamp.microseconds > wallClockMicroseconds() { try outlet?.flush() }
                try waitUntil(tx.timestamp, flushing: &sink, &labelSink)
            }
            if outlet != nil {
                try outlet!.add(tx)
            } else {
                switch format {
                case .jsonl: TransactionEncoder.appendJSONLine(tx, to: &sink.buffer)
                case .csv: TransactionEncoder.appendCSVRow(tx, to: &sink.buffer)
                }
            }
            produced += 1
            lastTime = tx.timestamp
            if live || produced & 0xFFF == 0 {
                try sink.flushIfFull()
                if var labels = labelSink {
                    for l in generator.labels(reportedBy: tx.timestamp) {
                        TransactionEncoder.appendJSONLine(l, to: &labels.buffer)
                    }
                    try labels.flushIfFull()
                    labelSink = labels
                }
                if showProgress, monotonicSeconds() - lastProgress > 0.5 {
                    lastProgress = monotonicSeconds()
                    printError("\r\(progress(generator, produced, lastTime, began))   ", terminator: "")
                }
            }
        }
        if var labels = labelSink {
            // A backfill ends "now": chargebacks due later have not arrived yet.
            for l in generator.labels(reportedBy: lastTime) { TransactionEncoder.appendJSONLine(l, to: &labels.buffer) }
            try labels.close()
        }
        try outlet?.flush()
        try sink.close()
        if !quiet {
            if showProgress { printError("") }
            let seconds = monotonicSeconds() - began
            let c = generator.counts
            let fraudShare = c.total > 0 ? Double(c.fraudulent) / Double(c.total) * 100 : 0
            printError(
                "generated \(grouped(produced)) transactions (\(grouped(c.fraudulent)) fraudulent, "
                    + "\(String(format1(fraudShare)))%) in \(format1(seconds)) s, \(grouped(Int(Double(produced) / max(seconds, 1e-9)))) tx/s"
                    + (labelsOut != nil
                        ? "; \(grouped(c.labelsEmitted)) labels written, \(grouped(generator.pendingLabels)) not yet reported"
                        : ""))
        }
    }

    /// The Kafka topic `--out kafka://…` names (nil: a file or standard output).
    func kafkaOutlet() throws -> (any TransactionOutlet)? {
        guard out.lowercased().hasPrefix("kafka://") else { return nil }
        #if Kafka
            return try KafkaTransactionOutlet(url: out, options: kafka, partitions: partitions)
        #else
            throw ValidationError("--out \(out): \(KafkaSupport.missing ?? "")")
        #endif
    }

    func progress(_ g: TransactionGenerator, _ n: Int, _ t: Timestamp, _ began: Double) -> String {
        let rate = Double(n) / max(monotonicSeconds() - began, 1e-9)
        var s = "generated \(grouped(n)) transactions, at \(t.rfc3339), \(grouped(Int(rate))) tx/s"
        if let days, let start = Timestamp(rfc3339: start) {
            s += ", \(Int(min(100, t.seconds(since: start) / (days * 864))))% done"
        }
        return s
    }

    /// Live pacing: sleep until the transaction's time, flushing what is written meanwhile.
    func waitUntil(_ t: Timestamp, flushing sink: inout ByteSink, _ labels: inout ByteSink?) throws {
        guard t.microseconds > wallClockMicroseconds() else { return }
        try sink.flush()
        if var l = labels {
            try l.flush()
            labels = l
        }
        while case let wait = t.microseconds - wallClockMicroseconds(), wait > 0 {
            usleep(UInt32(min(wait, 1_000_000)))
        }
    }
}

func format1(_ v: Double) -> String {
    let r = (v * 10).rounded() / 10
    return String(r)
}

/// Parses `--format` with an error that lists the choices.
func parseFormat(_ text: String) throws -> RecordFormat {
    guard let f = RecordFormat(rawValue: text.lowercased()) else {
        throw ValidationError("unknown format '\(text)'; expected jsonl or csv")
    }
    return f
}
