import CardwatchCore
public import CardwatchFeatures

/// The online store in this process: hashes of string fields laid out as in Redis
/// (`OnlineLayout`), each with its time to live, and the alert stream bounded as Redis's
/// `MAXLEN`. For one instance without Redis, and the contract suite's reference.
public final class MemoryOnlineStore: OnlineFeatureStore {
    public let layout: OnlineLayout
    private let now: @Sendable () -> ContinuousClock.Instant
    private let cell = Locked<
        (hashes: [String: (fields: [String: String], expires: ContinuousClock.Instant)], alerts: [OnlineAlert], writes: Int)
    >(([:], [], 0))

    public init(
        layout: OnlineLayout = OnlineLayout(), now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.layout = layout
        self.now = now
    }

    public func write(_ update: OnlineUpdate) throws {
        let t = now()
        let expires = t + .seconds(layout.ttlSeconds)
        cell.withLock { c in
            for p in update.cards { c.hashes[layout.cardKey(p.cardID)] = (Self.dictionary(OnlineLayout.fields(p)), expires) }
            for p in update.merchants {
                c.hashes[layout.merchantKey(p.merchantID)] = (Self.dictionary(OnlineLayout.fields(p)), expires)
            }
            c.alerts += update.alerts
            if c.alerts.count > layout.maxAlerts { c.alerts.removeFirst(c.alerts.count - layout.maxAlerts) }
            // Expired profiles go now and then, as Redis's do: the store holds at most a TTL's worth.
            c.writes += 1
            if c.writes % 256 == 0 { c.hashes = c.hashes.filter { $0.value.expires > t } }
        }
    }

    public func profiles(
        card: String, merchant: String, timeout: Duration,
        completion: @escaping @Sendable (Result<(card: CardProfile?, merchant: MerchantProfile?), any Error>) -> Void
    ) {
        let c = hash(layout.cardKey(card)).flatMap { OnlineLayout.card(card, $0) }
        let m = hash(layout.merchantKey(merchant)).flatMap { OnlineLayout.merchant(merchant, $0) }
        completion(.success((c, m)))
    }

    public func alerts(last count: Int) async throws -> [OnlineAlert] {
        cell.withLock { Array($0.alerts.suffix(max(0, count))) }
    }

    /// A key's fields, unless expired.
    public func hash(_ key: String) -> [String: String]? {
        let t = now()
        return cell.withLock { c in
            guard let h = c.hashes[key] else { return nil }
            guard h.expires > t else {
                c.hashes[key] = nil
                return nil
            }
            return h.fields
        }
    }

    static func dictionary(_ fields: [(String, String)]) -> [String: String] {
        Dictionary(fields, uniquingKeysWith: { _, b in b })
    }
}
