import ArgumentParser
import CardwatchPipeline
import CardwatchRedis
import CardwatchServer
import Logging

/// `--online-store`: where each committed batch's card and merchant profiles go, and what
/// `POST /predict?mode=online` reads.
struct OnlineStoreOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The online feature store: redis://[:PASSWORD@]HOST[:PORT][/DB], or memory (this process only); default none.",
            valueName: "url"))
    var onlineStore: String?
    @Option(help: "Seconds a profile lives in the online store after its last write.") var onlineTtl = 86_400
    @Option(help: "Milliseconds a read of the online store may take before /predict?mode=online takes the fallback.")
    var onlineTimeoutMs = 5.0
    @Option(help: "Prefix of the online store's keys (cards: PREFIXcard:ID, merchants: PREFIXmerchant:ID, alerts: PREFIXalerts).")
    var onlinePrefix = "cw:"

    /// The store, or nil without `--online-store`; a URL that is not one is refused, saying why.
    func store() throws -> (any OnlineFeatureStore)? {
        guard let url = onlineStore else { return nil }
        guard onlineTtl >= 1 else { throw CLIError("--online-ttl must be at least 1 second") }
        guard onlineTimeoutMs > 0, onlineTimeoutMs <= 60_000 else {
            throw CLIError("--online-timeout-ms must be more than 0 and at most 60000")
        }
        var layout = OnlineLayout()
        layout.prefix = onlinePrefix
        layout.ttlSeconds = onlineTtl
        if url == "memory" { return MemoryOnlineStore(layout: layout) }
        do {
            return RedisOnlineStore(RedisClient(try RedisEndpoint.parse(url)), layout: layout)
        } catch {
            throw CLIError("--online-store: \(error)")
        }
    }

    /// The publisher a commit observer feeds, and `/predict?mode=online`'s scoring; nil without a store.
    func open(models: ProductionModel, rules: RuleFile?, metrics: PipelineMetrics, logger: Logger) throws -> (
        publisher: OnlinePublisher, scoring: OnlineScoring
    )? {
        guard let store = try store() else { return nil }
        let publisher = OnlinePublisher(store: store, logger: logger) { committedAt, writtenAt, _ in
            metrics.observeOnlineWrite(committedAt: committedAt, writtenAt: writtenAt)
        }
        let scoring = OnlineScoring(
            store: store, timeout: .microseconds(Int64(onlineTimeoutMs * 1000)), models: models, rules: rules)
        logger.info("online store \(onlineStore ?? ""): profiles under \(onlinePrefix)card:ID, TTL \(onlineTtl) s")
        return (publisher, scoring)
    }
}
