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
        var out = RESPWriter()
        let ttl = String(layout.ttlSeconds)
        func flush() throws {
            let replies = try client.sendAndWait(encoded: out.buffer, count: out.count, timeout: writeTimeout)
            for case .error(let e) in replies { throw RedisError("Redis at \(client.endpoint) refused a write: \(e)") }
            out.clear()
        }
        func hash(_ key: String, _ fields: [(String, String)]) throws {
            out.command(2 + 2 * fields.count)
            out.argument("HSET")
            out.argument(key)
            for (name, value) in fields {
                out.argument(name)
                out.argument(value)
            }
            out.command(3)
            out.argument("EXPIRE")
            out.argument(key)
            out.argument(ttl)
            // About a megabyte a round trip, within the client's bound on waiting commands.
            if out.buffer.readableBytes > 1 << 20 || out.count >= 2_000 { try flush() }
        }
        for p in update.cards { try hash(layout.cardKey(p.cardID), OnlineLayout.fields(p)) }
        for p in update.merchants { try hash(layout.merchantKey(p.merchantID), OnlineLayout.fields(p)) }
        let bound = String(layout.maxAlerts)
        for a in update.alerts {
            out.command(10)
            for word in ["XADD", layout.alertsKey, "MAXLEN", "~", bound, "*", "transaction_id", a.transactionID, "alert"] {
                out.argument(word)
            }
            out.argument(a.payload)
            if out.count >= 2_000 { try flush() }
        }
        if out.count > 0 { try flush() }
    }

    public func profiles(
        card: String, merchant: String, timeout: Duration,
        completion: @escaping @Sendable (Result<(card: CardProfile?, merchant: MerchantProfile?), any Error>) -> Void
    ) {
        client.future(
            [
                [Array("HGETALL".utf8), Array(layout.cardKey(card).utf8)],
                [Array("HGETALL".utf8), Array(layout.merchantKey(merchant).utf8)],
            ], timeout: TimeAmount(timeout)
        ).whenComplete { result in
            completion(
                result.flatMap { replies in
                    Result {
                        guard replies.count == 2 else {
                            throw RedisError("Redis at \(self.client.endpoint) answered \(replies.count) replies for 2 reads")
                        }
                        let c = try Self.hash(replies[0]).flatMap { OnlineLayout.card(card, $0) }
                        let m = try Self.hash(replies[1]).flatMap { OnlineLayout.merchant(merchant, $0) }
                        return (c, m)
                    }
                })
        }
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
