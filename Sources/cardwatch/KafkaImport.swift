#if Kafka
    import ArgumentParser
    import CardwatchCore
    import CardwatchKafka
    import CardwatchPipeline
    import Foundation

    extension Import {
        /// `import FILE --log kafka://…`: the file's valid records produced to `transactions`
        /// (keyed by card id), its invalid ones to `transactions.dlq` with their reasons; the
        /// instances of the consumer group decide them (this command decides nothing).
        func produceToKafka(_ url: String, format: RecordFormat?, policy: IngestPolicy) throws {
            if labels != nil {
                throw ValidationError(
                    "--labels with --log kafka://: labels are not produced to Kafka by Cardwatch yet (a label is routed to "
                        + "its transaction's card, which only the embedded log can look up)")
            }
            let endpoint = try kafka.endpoint(url)
            let began = monotonicSeconds()
            let log: KafkaLog
            do {
                log = try KafkaLog(endpoint, partitions: pipeline.partitions, replicationFactor: kafka.replicationFactor)
            } catch { throw CLIError("the log at \(endpoint) cannot be used: \(error)") }
            let summary: Ingestor.Summary
            do {
                summary = try Ingestor(store: KafkaIngestStore(log: log), batchSize: ingestBatch).importFile(
                    file, format: format, policy: policy)
            } catch { throw CLIError("\(file): \(error)") }
            let seconds = monotonicSeconds() - began
            if json {
                let object: [String: Any] = [
                    "read": summary.read, "produced": summary.accepted, "dead_lettered": summary.deadLettered,
                    "outside_time_bounds": summary.outsideTimeBounds, "seconds": (seconds * 1000).rounded() / 1000,
                    "log": endpoint.description, "partitions": log.partitions,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(
                    "\(file): \(grouped(summary.read)) records read, \(grouped(summary.accepted)) produced to "
                        + "\(endpoint.name(.transactions)) at \(endpoint), \(grouped(summary.deadLettered)) dead-lettered to "
                        + "\(endpoint.name(.transactionsDLQ)); \(format1(seconds)) s")
            }
        }
    }
#endif
