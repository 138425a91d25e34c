import ArgumentParser
import CardwatchCore
import CardwatchFeatures

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a transaction history through the feature engine into a training table (CSV).",
        discussion: """
            Reads every record of --in (JSON Lines or CSV, schema v1), sorts the valid ones
            by event time and runs them through the same engine that serves live traffic.
            Writes one CSV row per transaction: transaction_id, timestamp, card_id, the
            \(Feature.count) features, is_fraud and fraud_pattern.

            Merchant fraud rates see a label only once it is known: from --labels (label
            events, at their reported_at), or else one --label-delay-days after each
            is_fraud=1 transaction. Invalid records are reported and skipped (and written
            to --dead-letters when given); the exit status is then 1.
            """
    )

    @Option(name: .customLong("in"), help: "Transaction history (JSON Lines or CSV).") var input: String
    @Option(name: .shortAndLong, help: "Training table to write (CSV); '-' is standard output.") var out = "-"
    @Option(help: "Label events (JSON Lines) to use instead of the history's is_fraud.") var labels: String?
    @Option(help: "Days after which a label is assumed known (merchant fraud rates).") var labelDelayDays = 7.0
    @Option(help: "Allowed lateness in seconds (replay is in order; kept for parity with the live engine).")
    var latenessSeconds = 300.0
    @Option(help: "Format of --in: jsonl or csv (default: from the file name).", transform: parseFormat)
    var format: RecordFormat?
    @Option(help: "Write rejected input records with their reasons as JSON Lines to this file.") var deadLetters: String?
    @OptionGroup var pan: PANSecretOptions
    @Flag(help: "No summary on standard error.") var quiet = false

    func run() throws {
        let began = monotonicSeconds()
        var config = FeatureConfig()
        config.labelDelay = Int64(labelDelayDays * 86_400e6)
        config.allowedLateness = Int64(latenessSeconds * 1e6)
        do { try config.validate() } catch { throw ValidationError(error.description) }

        let (transactions, rejected) = try Input.transactions(
            input, format: format, deadLetters: deadLetters, command: "features", policy: try pan.offlinePolicy())
        let invalid = rejected.count
        let labelEvents = try labels.map { try Input.labels($0, command: "features") }

        var sink = try ByteSink(path: out)
        sink.buffer.append(contentsOf: "transaction_id,timestamp,card_id,".utf8)
        sink.buffer.append(contentsOf: Feature.names.joined(separator: ",").utf8)
        sink.buffer.append(contentsOf: ",is_fraud,fraud_pattern\n".utf8)
        let summary = try FeatureReplay.run(transactions, labels: labelEvents, config: config) { t, f in
            TransactionEncoder.appendCSVCell(t.transactionID, to: &sink.buffer)
            sink.buffer.append(UInt8(ascii: ","))
            t.timestamp.write(to: &sink.buffer)
            sink.buffer.append(UInt8(ascii: ","))
            TransactionEncoder.appendCSVCell(t.cardID, to: &sink.buffer)
            for i in 0..<Feature.count {
                sink.buffer.append(UInt8(ascii: ","))
                TransactionEncoder.appendNumber(f[i], to: &sink.buffer)
            }
            sink.buffer.append(UInt8(ascii: ","))
            if let fraud = t.isFraud { sink.buffer.append(fraud ? UInt8(ascii: "1") : UInt8(ascii: "0")) }
            sink.buffer.append(UInt8(ascii: ","))
            if let p = t.fraudPattern { TransactionEncoder.appendCSVCell(p, to: &sink.buffer) }
            sink.buffer.append(UInt8(ascii: "\n"))
            try sink.flushIfFull()
        }
        try sink.close()
        if !quiet {
            let seconds = monotonicSeconds() - began
            var line = "wrote \(grouped(transactions.count)) rows in \(format1(seconds)) s"
            if invalid > 0 { line += "; \(grouped(invalid)) invalid records skipped" }
            if labelEvents != nil {
                line += "; labels: \(grouped(summary.applied)) fraud applied"
                if summary.unknownTransaction > 0 { line += ", \(grouped(summary.unknownTransaction)) for unknown transactions" }
                if summary.repeated > 0 { line += ", \(grouped(summary.repeated)) repeated" }
            }
            printError(line)
        }
        if invalid > 0 { throw ExitCode(1) }
    }
}
