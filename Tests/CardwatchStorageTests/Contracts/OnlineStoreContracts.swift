import CardwatchCore
import CardwatchFeatures
import CardwatchPipeline
import CardwatchRedis
import Foundation
import NIOCore
import Testing

/// The throwaway Redis the test command starts (`scripts/redis.sh`): nil without one, and then
/// Redis is left out of the contract suite (`CARDWATCH_REQUIRE_REDIS=1` makes that a failure).
let testRedisURL: String? = ProcessInfo.processInfo.environment["CARDWATCH_TEST_REDIS"]

enum OnlineBackend: String, CaseIterable, CustomTestStringConvertible {
    case memory, redis
    var testDescription: String { rawValue }

    static var available: [OnlineBackend] { testRedisURL == nil ? [.memory] : allCases }

    /// A store of this backend whose keys no other test uses.
    func make(ttlSeconds: Int = 86_400, maxAlerts: Int = 100_000) throws -> any OnlineFeatureStore {
        var layout = OnlineLayout()
        layout.prefix = "cwtest:\(UInt64.random(in: 0...UInt64.max)):"
        layout.ttlSeconds = ttlSeconds
        layout.maxAlerts = maxAlerts
        switch self {
        case .memory: return MemoryOnlineStore(layout: layout)
        case .redis: return RedisOnlineStore(RedisClient(try RedisEndpoint.parse(try #require(testRedisURL))), layout: layout)
        }
    }
}

private func card(_ id: String, _ seed: Double, located: Bool = true, merchant: String = "m1") -> CardProfile {
    var f = FeatureVector()
    for i in 0..<Feature.count { f[i] = seed * Double(i + 1) / 7 }
    return CardProfile(
        cardID: id, features: f, eventTime: Timestamp(microseconds: 1_780_000_000_123_456 + Int64(seed)),
        location: located ? GeoPoint(latitude: 48.8566 + seed / 1000, longitude: -2.3522) : nil, merchantID: merchant,
        transactionID: "tx-\(id)-\(seed)", committedAt: 1_780_000_001_000_000)
}

private func merchant(_ id: String, _ seed: Double) -> MerchantProfile {
    MerchantProfile(
        merchantID: id, values: [seed, seed * 2, seed * 3, 0.25, 1.0 / 3, 0],
        eventTime: Timestamp(microseconds: 1_780_000_000_000_000),
        committedAt: 1_780_000_001_000_000)
}

@Suite struct OnlineStoreContract {
    @Test(arguments: OnlineBackend.available)
    func profilesReadBackAsWrittenAndALaterWriteReplacesThem(_ backend: OnlineBackend) async throws {
        let store = try backend.make()
        var update = OnlineUpdate()
        update.cards = [card("c1", 3), card("c2 with spaces/and:colons", 5.5, located: false), card("c3", 0)]
        update.merchants = [merchant("m1", 4), merchant("m2", 0)]
        try store.write(update)
        let one = try await store.profiles(card: "c1", merchant: "m1", timeout: .seconds(2))
        #expect(one.card == card("c1", 3))
        #expect(one.merchant == merchant("m1", 4))
        let two = try await store.profiles(card: "c2 with spaces/and:colons", merchant: "m2", timeout: .seconds(2))
        #expect(two.card == card("c2 with spaces/and:colons", 5.5, located: false))
        #expect(two.merchant == merchant("m2", 0))
        let none = try await store.profiles(card: "c9", merchant: "m9", timeout: .seconds(2))
        #expect(none.card == nil && none.merchant == nil)

        var later = OnlineUpdate()
        later.cards = [card("c1", 8, located: false, merchant: "m7")]
        try store.write(later)
        #expect(
            try await store.profiles(card: "c1", merchant: "m1", timeout: .seconds(2)).card
                == card("c1", 8, located: false, merchant: "m7"))
    }

    @Test(arguments: OnlineBackend.available)
    func profilesExpireAfterTheirTimeToLive(_ backend: OnlineBackend) async throws {
        let store = try backend.make(ttlSeconds: 1)
        var update = OnlineUpdate()
        update.cards = [card("c1", 1)]
        update.merchants = [merchant("m1", 1)]
        try store.write(update)
        #expect(try await store.profiles(card: "c1", merchant: "m1", timeout: .seconds(2)).card != nil)
        try await Task.sleep(for: .milliseconds(2_200))
        let gone = try await store.profiles(card: "c1", merchant: "m1", timeout: .seconds(2))
        #expect(gone.card == nil && gone.merchant == nil)
    }

    @Test(arguments: OnlineBackend.available)
    func alertsAreAppendedInOrderAndTheStreamIsBounded(_ backend: OnlineBackend) async throws {
        let store = try backend.make(maxAlerts: 200)
        for chunk in 0..<10 {
            var update = OnlineUpdate()
            update.alerts = (0..<100).map {
                OnlineAlert(
                    transactionID: "t\(chunk * 100 + $0)", payload: Array(#"{"transaction_id":"t\#(chunk * 100 + $0)"}"#.utf8))
            }
            try store.write(update)
        }
        let kept = try await store.alerts(last: 10_000)
        // Redis trims `MAXLEN ~` by whole nodes (100 entries): at least the bound, at most a node more.
        #expect(kept.count >= 200 && kept.count <= 300, "\(kept.count) kept")
        #expect(kept.map(\.transactionID) == (1000 - kept.count..<1000).map { "t\($0)" })
        #expect(try await store.alerts(last: 3).map(\.transactionID) == ["t997", "t998", "t999"])
    }
}

@Suite(.enabled(if: testRedisURL != nil, "needs the test Redis (CARDWATCH_TEST_REDIS)"))
struct RedisOnlineStoreTests {
    @Test func theLayoutIsWhatOtherServicesRead() async throws {
        let client = RedisClient(try RedisEndpoint.parse(testRedisURL!))
        defer { client.close() }
        var layout = OnlineLayout()
        layout.prefix = "cwtest:\(UInt64.random(in: 0...UInt64.max)):"
        let store = RedisOnlineStore(client, layout: layout)
        var update = OnlineUpdate()
        update.cards = [card("c1", 3)]
        try store.write(update)
        let key = Array(layout.cardKey("c1").utf8)
        let replies = try await client.send(
            [
                [Array("HGET".utf8), key, Array("tx_count_1hr".utf8)], [Array("HGET".utf8), key, Array("_ts".utf8)],
                [Array("TTL".utf8), key],
            ], timeout: .seconds(2))
        #expect(replies[0].string == "\(3.0 * 2 / 7)")
        #expect(replies[1].string == "1780000000123459")
        guard case .integer(let ttl) = replies[2] else {
            Issue.record("TTL: \(replies[2])")
            return
        }
        #expect(ttl > 86_000 && ttl <= 86_400)
    }

    @Test func theTestServerIsThereWhenRequired() async throws {
        guard ProcessInfo.processInfo.environment["CARDWATCH_REQUIRE_REDIS"] == "1" else { return }
        let client = RedisClient(try RedisEndpoint.parse(try #require(testRedisURL)))
        defer { client.close() }
        #expect(try await client.send([[Array("PING".utf8)]], timeout: .seconds(2)) == [.simple("PONG")])
    }
}
