import ArgumentParser
import CardwatchPipeline
import CardwatchRedis
import CardwatchServer
import Logging
import ServiceLifecycle

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

    func validate() throws {
        if onlineTtl < 1 { throw ValidationError("--online-ttl must be at least 1 second") }
        if !(onlineTimeoutMs > 0 && onlineTimeoutMs <= 60_000) {
            throw ValidationError("--online-timeout-ms must be more than 0 and at most 60000")
        }
        if let url = onlineStore, url != "memory" {
            do { _ = try RedisEndpoint.parse(url) } catch { throw ValidationError("--online-store: \(error)") }
        }
    }

    /// The store, or nil without `--online-store`.
    func store() throws -> (any OnlineFeatureStore)? {
        guard let url = onlineStore else { return nil }
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

    /// The publisher a commit observer feeds, and `/predict?mode=online`'s scoring; nil without a
    /// store. `written`: each write's commit time and end (µs since 1970), for the freshness.
    func open(
        models: ProductionModel, rules: RuleFile?, logger: Logger,
        written: @escaping @Sendable (_ committedAt: Int64, _ writtenAt: Int64) -> Void
    ) throws -> (publisher: OnlinePublisher, scoring: OnlineScoring)? {
        let url = onlineStore
        // Two clients: a read that times out closes its connection, which must not fail a write.
        guard let store = try store(), let reads = try self.store() else { return nil }
        let publisher = OnlinePublisher(store: store, logger: logger) { committedAt, writtenAt, _ in
            written(committedAt, writtenAt)
        }
        let scoring = OnlineScoring(
            store: url == "memory" ? store : reads, timeout: .microseconds(Int64(onlineTimeoutMs * 1000)), models: models,
            rules: rules)
        logger.info("online store \(onlineStore ?? ""): profiles under \(onlinePrefix)card:ID, TTL \(onlineTtl) s")
        return (publisher, scoring)
    }

    /// `open` for a server: the freshness goes to `/metrics`.
    func open(models: ProductionModel, rules: RuleFile?, metrics: PipelineMetrics, logger: Logger) throws -> (
        publisher: OnlinePublisher, scoring: OnlineScoring
    )? {
        try open(models: models, rules: rules, logger: logger) { metrics.observeOnlineWrite(committedAt: $0, writtenAt: $1) }
    }
}

/// Retries the online store's waiting alerts every second (`OnlinePublisher.retryPending`).
struct OnlineRetry: Sendable {
    let publisher: OnlinePublisher
    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) } } catch { return }
            publisher.retryPending()
        }
    }
}
