import CardwatchCore
public import CardwatchFeatures

extension CardProfile {
    /// The profile a decided transaction leaves its card with.
    public init(_ t: ProcessedTransaction, committedAt: Int64) {
        self.init(
            cardID: t.transaction.cardID, features: t.features, eventTime: t.transaction.timestamp,
            location: t.transaction.location, merchantID: t.transaction.merchantID,
            transactionID: t.transaction.transactionID, committedAt: committedAt)
    }
}

extension MerchantProfile {
    /// The profile a decided transaction leaves its merchant with.
    public init(_ t: ProcessedTransaction, committedAt: Int64) {
        self.init(
            merchantID: t.transaction.merchantID, values: Self.features.map { t.features[$0] },
            eventTime: t.transaction.timestamp, committedAt: committedAt)
    }
}

/// An alert appended to the store's stream (`{prefix}alerts`): its transaction id and the
/// payload the `alerts` topic carries (the same JSON, no decision time in it).
public struct OnlineAlert: Sendable, Equatable {
    public var transactionID: String
    public var payload: [UInt8]
    public init(transactionID: String, payload: [UInt8]) {
        self.transactionID = transactionID
        self.payload = payload
    }
}

/// What committed batches write to the online store: each touched card's and merchant's
/// latest profile, and the alerts.
public struct OnlineUpdate: Sendable {
    public var cards: [CardProfile] = []
    public var merchants: [MerchantProfile] = []
    public var alerts: [OnlineAlert] = []
    /// When the (oldest) batch was committed, µs since 1970.
    public var committedAt: Int64 = 0
    public init() {}

    /// The update of a committed batch: per card and per merchant the latest of its decisions
    /// (the batch is in decision order), the alerts in order.
    public init(_ decided: [ProcessedTransaction], committedAt: Int64) {
        self.committedAt = committedAt
        var card: [String: Int] = [:]
        var merchant: [String: Int] = [:]
        for (i, t) in decided.enumerated() {
            card[t.transaction.cardID] = i
            merchant[t.transaction.merchantID] = i
            if t.decision.isAlert {
                alerts.append(
                    OnlineAlert(
                        transactionID: t.transaction.transactionID,
                        payload: WarehouseRows.alertJSON(
                            t.transaction, t.decision, reasons: WarehouseRows.reasonsJSON(t.decision.reasons),
                            decidedAt: nil)))
            }
        }
        cards = card.values.sorted().map { CardProfile(decided[$0], committedAt: committedAt) }
        merchants = merchant.values.sorted().map { MerchantProfile(decided[$0], committedAt: committedAt) }
    }

    public var isEmpty: Bool { cards.isEmpty && merchants.isEmpty && alerts.isEmpty }
}

/// The online feature store: profiles written after each committed batch, read by
/// `POST /predict?mode=online` (in-memory: `MemoryOnlineStore`; Redis: `RedisOnlineStore`).
public protocol OnlineFeatureStore: Sendable {
    /// Writes the profiles (each replacing its key's, its time to live restarted) and appends
    /// the alerts to the stream. Throws when the store cannot be written now.
    func write(_ update: OnlineUpdate) throws
    /// A card's and a merchant's profiles (nil: none, or expired), given to `completion` on
    /// any thread; a failure when the store cannot answer within `timeout`. A callback, not
    /// `async`: the HTTP server answers from its event loop without entering Swift concurrency.
    func profiles(
        card: String, merchant: String, timeout: Duration,
        completion: @escaping @Sendable (Result<(card: CardProfile?, merchant: MerchantProfile?), any Error>) -> Void)
    /// The stream's latest `count` alerts, oldest first.
    func alerts(last count: Int) async throws -> [OnlineAlert]
}

extension OnlineFeatureStore {
    /// `profiles` awaited.
    public func profiles(card: String, merchant: String, timeout: Duration) async throws -> (
        card: CardProfile?, merchant: MerchantProfile?
    ) {
        try await withCheckedThrowingContinuation { continuation in
            profiles(card: card, merchant: merchant, timeout: timeout) { continuation.resume(with: $0) }
        }
    }
}

/// How profiles are laid out as string fields, the same for every store (so the in-memory
/// one checks what Redis holds).
public struct OnlineLayout: Sendable, Equatable {
    public var prefix = "cw:"
    /// How long a profile lives after its last write (default 24 h).
    public var ttlSeconds = 86_400
    /// The alert stream's approximate bound (Redis `MAXLEN ~`): the oldest entries go first.
    public var maxAlerts = 100_000
    public init() {}

    public func cardKey(_ id: String) -> String { prefix + "card:" + id }
    public func merchantKey(_ id: String) -> String { prefix + "merchant:" + id }
    public var alertsKey: String { prefix + "alerts" }

    public static func fields(_ p: CardProfile) -> [(String, String)] {
        var out = Feature.allCases.map { ($0.name, number(p.features[$0])) }
        out.append(("_ts", String(p.eventTime.microseconds)))
        // Empty without coordinates (not absent: a write replaces the previous profile's).
        out.append(("_lat", p.location.map { number($0.latitude) } ?? ""))
        out.append(("_lon", p.location.map { number($0.longitude) } ?? ""))
        out += [("_merchant_id", p.merchantID), ("_transaction_id", p.transactionID), ("_committed_at", String(p.committedAt))]
        return out
    }

    public static func fields(_ p: MerchantProfile) -> [(String, String)] {
        zip(MerchantProfile.features, p.values).map { ($0.name, number($1)) }
            + [("_ts", String(p.eventTime.microseconds)), ("_committed_at", String(p.committedAt))]
    }

    /// A card's profile from its hash; nil when a field is missing or not a number (written by
    /// something else, or by another version): treated as no profile.
    public static func card(_ id: String, _ h: [String: String]) -> CardProfile? {
        var f = FeatureVector()
        for feature in Feature.allCases {
            guard let v = h[feature.name].flatMap(Double.init), v.isFinite else { return nil }
            f[feature] = v
        }
        guard let ts = h["_ts"].flatMap(Int64.init), let merchant = h["_merchant_id"], let tx = h["_transaction_id"]
        else { return nil }
        var location: GeoPoint?
        if let lat = h["_lat"].flatMap(Double.init), let lon = h["_lon"].flatMap(Double.init) {
            location = GeoPoint(latitude: lat, longitude: lon)
        }
        return CardProfile(
            cardID: id, features: f, eventTime: Timestamp(microseconds: ts), location: location, merchantID: merchant,
            transactionID: tx, committedAt: h["_committed_at"].flatMap(Int64.init) ?? 0)
    }

    public static func merchant(_ id: String, _ h: [String: String]) -> MerchantProfile? {
        var values: [Double] = []
        for feature in MerchantProfile.features {
            guard let v = h[feature.name].flatMap(Double.init), v.isFinite else { return nil }
            values.append(v)
        }
        guard let ts = h["_ts"].flatMap(Int64.init) else { return nil }
        return MerchantProfile(
            merchantID: id, values: values, eventTime: Timestamp(microseconds: ts),
            committedAt: h["_committed_at"].flatMap(Int64.init) ?? 0)
    }

    /// Shortest text that reads back as the same Double.
    static func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)" }
}
