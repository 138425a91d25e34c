// The Confluent wire format: a record's value is a magic byte 0, the writer's schema id (four
// bytes, big-endian) in a schema registry, then the Avro binary. JSON never begins with a 0
// byte, so one byte tells the two formats of the transactions topic apart.

/// Where writer schemas come from, by id (a schema registry's `GET /schemas/ids/{id}`).
public protocol WriterSchemaSource: Sendable {
    /// The schema's JSON text. Throws `SchemaLookupFailure`.
    func schemaText(id: Int32) throws -> String
}

/// Why a schema could not be had: `unknown` (the registry has no such id: the record can never
/// be read, and is a dead letter), or anything else, which may pass (the registry is down: the
/// batch fails and is tried again, nothing is dead-lettered for it).
public struct SchemaLookupFailure: Error, CustomStringConvertible {
    public var unknown: Bool
    public var description: String
    public init(unknown: Bool, _ description: String) {
        self.unknown = unknown
        self.description = description
    }
}

/// Decodes Confluent-framed Avro transactions into schema v1 JSON, fetching each writer schema
/// once (schemas under an id never change in a registry; unknown ids are asked again after a
/// minute, so a poison flood does not become a flood of lookups).
public final class ConfluentAvroDecoder: Sendable {
    public static let magic: UInt8 = 0
    /// Schema ids remembered at most (a registry holds far fewer schemas).
    public static let maxEntries = 4096
    let source: (any WriterSchemaSource)?
    let cache = Locked<[Int32: Cached]>([:])
    /// Tests move the clock.
    let now: @Sendable () -> Int64

    enum Cached {
        case schema(AvroSchema)
        case unreadable(String, until: Int64)
    }

    /// Without a source, every Avro record is a dead letter that says a registry is needed.
    public init(source: (any WriterSchemaSource)?, now: @escaping @Sendable () -> Int64 = { Timestamp.now.microseconds }) {
        self.source = source
        self.now = now
    }

    /// Whether a payload is in the Confluent wire format (rather than JSON).
    @inline(__always)
    public static func isFramed(_ payload: [UInt8]) -> Bool { payload.first == magic }

    /// The record as schema v1 JSON, or why it cannot be read. Throws only when the registry
    /// could not be asked (a failure that passes).
    public func json(_ payload: [UInt8]) throws(SchemaLookupFailure) -> Result<[UInt8], RecordError> {
        guard payload.count >= 5, payload[0] == Self.magic else {
            return .failure(Self.issue("not the Confluent wire format (magic byte 0, a 4-byte schema id, Avro binary)"))
        }
        let id = Int32(
            bitPattern: UInt32(payload[1]) << 24 | UInt32(payload[2]) << 16 | UInt32(payload[3]) << 8 | UInt32(payload[4]))
        let schema: AvroSchema
        switch try writerSchema(id) {
        case .success(let s): schema = s
        case .failure(let e): return .failure(e)
        }
        do {
            return .success(try AvroTransactionReader.json(payload[5...], writer: schema))
        } catch {
            return .failure(Self.issue("schema id \(id): \(error.description)"))
        }
    }

    func writerSchema(_ id: Int32) throws(SchemaLookupFailure) -> Result<AvroSchema, RecordError> {
        let t = now()
        switch cache.withLock({ $0[id] }) {
        case .schema(let s): return .success(s)
        case .unreadable(let why, let until) where until > t: return .failure(Self.issue(why))
        default: break
        }
        guard let source else {
            return .failure(Self.issue("schema id \(id): Avro records need a schema registry (--schema-registry URL)"))
        }
        let entry: Cached
        do {
            let text = try source.schemaText(id: id)
            entry = .schema(try AvroSchema.parse(text))
        } catch let e as SchemaLookupFailure {
            guard e.unknown else { throw e }
            entry = .unreadable(e.description, until: t + 60_000_000)
        } catch let e as AvroError {
            entry = .unreadable("schema id \(id) is not a schema Cardwatch reads: \(e.description)", until: t + 60_000_000)
        } catch {
            entry = .unreadable("schema id \(id): \(error)", until: t + 60_000_000)
        }
        cache.withLock { cached in
            cached[id] = entry
            // Ids nobody registered are input too (any producer can write any id): their
            // entries are bounded, the expired ones dropped first, then all of them.
            guard case .unreadable = entry, cached.count > Self.maxEntries else { return }
            cached = cached.filter {
                if case .unreadable(_, let until) = $0.value { return until > t }
                return true
            }
            if cached.count > Self.maxEntries {
                cached = cached.filter { if case .schema = $0.value { return true } else { return false } }
            }
        }
        switch entry {
        case .schema(let s): return .success(s)
        case .unreadable(let why, _): return .failure(Self.issue(why))
        }
    }

    static func issue(_ problem: String) -> RecordError {
        RecordError(issues: [FieldIssue(field: "avro", problem: problem)])
    }
}
