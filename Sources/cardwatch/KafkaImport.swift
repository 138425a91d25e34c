#if Kafka
    import ArgumentParser
    import CardwatchCore
    import CardwatchKafka
    import CardwatchPipeline
    import CardwatchPostgres
    import Foundation

    extension Import {
        /// `import FILE --log kafka://…`: the file's valid records produced to `transactions`
        /// (keyed by card id), its invalid ones to `transactions.dlq` with their reasons, then
        /// the `--labels` file's labels to `labels`, routed to their transactions' cards (this
        /// file's, else those the `--warehouse` has decided); the instances of the consumer group
        /// decide them (this command decides nothing).
        func produceToKafka(_ url: String, format: RecordFormat?, policy: IngestPolicy) throws {
            let endpoint = try kafka.endpoint(url)
            let began = monotonicSeconds()
            let log: KafkaLog
            do {
                log = try KafkaLog(endpoint, partitions: pipeline.partitions, replicationFactor: kafka.replicationFactor)
            } catch { throw CLIError("the log at \(endpoint) cannot be used: \(error)") }
            let summary: Ingestor.Summary
            var labelCount = 0
            do {
                let store = KafkaIngestStore(log: log, remembersTransactions: labels != nil, lookup: try labelLookup())
                summary = try Ingestor(store: store, batchSize: ingestBatch).importFile(file, format: format, policy: policy)
                if let labels { labelCount = try Self.appendLabels(labels, to: store) }
            } catch { throw CLIError("\(file): \(error)") }
            let seconds = monotonicSeconds() - began
            if json {
                let object: [String: Any] = [
                    "read": summary.read, "produced": summary.accepted, "dead_lettered": summary.deadLettered,
                    "outside_time_bounds": summary.outsideTimeBounds, "seconds": (seconds * 1000).rounded() / 1000,
                    "log": endpoint.description, "partitions": log.partitions, "labels": labelCount,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(
                    "\(file): \(grouped(summary.read)) records read, \(grouped(summary.accepted)) produced to "
                        + "\(endpoint.name(.transactions)) at \(endpoint), \(grouped(summary.deadLettered)) dead-lettered to "
                        + "\(endpoint.name(.transactionsDLQ))"
                        + (labels == nil ? "" : ", \(grouped(labelCount)) labels to \(endpoint.name(.labels))")
                        + "; \(format1(seconds)) s")
            }
        }

        /// The warehouse's decided transactions, when one is given, for labels of transactions
        /// this file does not hold.
        func labelLookup() throws -> (@Sendable ([String]) throws -> [String: LabelTarget])? {
            guard labels != nil, case .postgres = try pipeline.topology(sources: []).warehouse,
                let pool = try pipeline.postgresWarehouse()
            else { return nil }
            let routing = PostgresLabelRouting(pool: pool)
            return { try routing.targets($0) }
        }
    }
#endif
