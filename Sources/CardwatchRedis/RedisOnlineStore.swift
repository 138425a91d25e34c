public import CardwatchFeatures
public import CardwatchPipeline
public import NIOCore

/// The online store on Redis, in `OnlineLayout`'s layout: per profile an `HSET` of its fields
/// and an `EXPIRE` (the TTL restarts with each write), per alert an `XADD … MAXLEN ~ N` to the
/// stream, all of a batch pipelined (in chunks of 1,000 commands, one round trip each).
public final class RedisOnlineStore: OnlineFeatureStore {
    public let client: RedisClient
    public let layout: OnlineLayout
    /// How long a batch's writes may take before `write` fails.
    public let writeTimeout: TimeAmount

    public init(_ client: RedisClient, layout: OnlineLayout = OnlineLayout(), writeTimeout: TimeAmount = .seconds(2)) {
        self.client = client
        self.layout = layout
        self.writeTimeout = writeTimeout
    }

    public func write(_ update: OnlineUpdate) throws {
        var commands: [[[UInt8]]] = []
        commands.reserveCapacity(2 * (update.cards.count + update.merchants.count) + update.alerts.count)
        let ttl = Array(String(layout.ttlSeconds).utf8)
        func hash(_ key: String, _ fields: [(String, String)]) {
            var c: [[UInt8]] = [Array("HSET".utf8), Array(key.utf8)]
            c.reserveCapacity(2 + 2 * fields.count)
            for (name, value) in fields {
                c.append(Array(name.utf8))
                c.append(Array(value.utf8))
            }
            commands.append(c)
            commands.append([Array("EXPIRE".utf8), Array(key.utf8), ttl])
        }
        for p in update.cards { hash(layout.cardKey(p.cardID), OnlineLayout.fields(p)) }
        for p in update.merchants { hash(layout.merchantKey(p.merchantID), OnlineLayout.fields(p)) }
        let stream = Array(layout.alertsKey.utf8)
        let bound = Array(String(layout.maxAlerts).utf8)
        for a in update.alerts {
            commands.append([
                Array("XADD".utf8), stream, Array("MAXLEN".utf8), [UInt8(ascii: "~")], bound, [UInt8(ascii: "*")],
                Array("transaction_id".utf8), Array(a.transactionID.utf8), Array("alert".utf8), a.payload,
            ])
        }
        var start = 0
        while start < commands.count {
            let end = min(start + 1000, commands.count)
            let replies = try client.sendAndWait(Array(commands[start..<end]), timeout: writeTimeout)
            for case .error(let e) in replies { throw RedisError("Redis at \(client.endpoint) refused a write: \(e)") }
            start = end
        }
    }

    public func profiles(card: String, merchant: String, timeout: Duration) async throws -> (
        card: CardProfile?, merchant: MerchantProfile?
    ) {
        let replies = try await client.send(
            [
                [Array("HGETALL".utf8), Array(layout.cardKey(card).utf8)],
                [Array("HGETALL".utf8), Array(layout.merchantKey(merchant).utf8)],
            ], timeout: TimeAmount(timeout))
        guard replies.count == 2 else {
            throw RedisError("Redis at \(client.endpoint) answered \(replies.count) replies for 2 reads")
        }
        let c = try Self.hash(replies[0]).flatMap { OnlineLayout.card(card, $0) }
        let m = try Self.hash(replies[1]).flatMap { OnlineLayout.merchant(merchant, $0) }
        return (c, m)
    }

    public func alerts(last count: Int) async throws -> [OnlineAlert] {
        let replies = try await client.send(
            [
                [
                    Array("XREVRANGE".utf8), Array(layout.alertsKey.utf8), [UInt8(ascii: "+")], [UInt8(ascii: "-")],
                    Array("COUNT".utf8), Array(String(max(1, count)).utf8),
                ]
            ], timeout: .seconds(5))
        guard count > 0, case .array(let entries?) = replies.first else {
            if case .error(let e) = replies.first { throw RedisError("Redis refused XREVRANGE: \(e)") }
            return []
        }
        return try entries.reversed().map { entry in
            guard case .array(let parts?) = entry, parts.count == 2, case .array(let kv?) = parts[1] else {
                throw RedisError("a stream entry of \(layout.alertsKey) is not [id, fields]")
            }
            var fields: [String: [UInt8]] = [:]
            var i = 0
            while i + 1 < kv.count {
                if let k = kv[i].string, case .bulk(let v?) = kv[i + 1] { fields[k] = v }
                i += 2
            }
            guard let id = fields["transaction_id"], let payload = fields["alert"] else {
                throw RedisError("a stream entry of \(layout.alertsKey) has no transaction_id or alert")
            }
            return OnlineAlert(transactionID: String(decoding: id, as: UTF8.self), payload: payload)
        }
    }

    /// An `HGETALL` reply as a dictionary (nil: the key does not exist).
    static func hash(_ reply: RESPValue) throws -> [String: String]? {
        switch reply {
        case .error(let e): throw RedisError("Redis refused HGETALL: \(e)")
        case .array(let kv?):
            guard !kv.isEmpty else { return nil }
            var out: [String: String] = [:]
            var i = 0
            while i + 1 < kv.count {
                if let k = kv[i].string, let v = kv[i + 1].string { out[k] = v }
                i += 2
            }
            return out
        default: throw RedisError("an HGETALL reply that is not an array")
        }
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        self = .nanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }
}
