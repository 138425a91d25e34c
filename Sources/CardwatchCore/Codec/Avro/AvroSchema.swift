import Foundation

// Avro schemas (Apache Avro 1.11 specification, "Schema Declaration"), parsed from their JSON
// text: what a writer's record is decoded by. Written by hand: none of the packages this project
// may depend on reads Avro. Only what decoding needs is kept (names resolve to their types;
// docs, aliases and defaults are dropped: a field the writer did not write is simply absent,
// and the schema v1 validator says whether it was required).

/// An Avro type, with named references resolved. Classes, not an indirect enum, so a
/// recursive schema (a record that contains itself through a union) is a graph, not an
/// infinite value.
public final class AvroSchema: Sendable {
    public enum Kind: Sendable {
        case null, boolean, int, long, float, double, bytes, string
        case record(name: String, fields: [Field])
        case enumeration(name: String, symbols: [String])
        case array(items: AvroSchema)
        case map(values: AvroSchema)
        case union([AvroSchema])
        case fixed(name: String, size: Int)
    }

    public struct Field: Sendable {
        public let name: String
        public let type: AvroSchema
    }

    /// The logical types decoding reads: instants, and decimals (amounts are often written so).
    public enum Logical: Sendable, Equatable {
        case timestampMillis, timestampMicros
        case decimal(scale: Int)
    }

    // `kind` is set once, before the schema is published (`resolve` fills named references
    // while parsing, on one thread); never mutated afterwards.
    public nonisolated(unsafe) private(set) var kind: Kind
    public let logical: Logical?

    init(_ kind: Kind, logical: Logical? = nil) {
        self.kind = kind
        self.logical = logical
    }

    /// The largest schema text accepted, and the deepest nesting: a registry's answer is input too.
    public static let maxTextBytes = 1 << 20
    public static let maxDepth = 32

    /// Parses a schema's JSON text.
    public static func parse(_ text: String) throws(AvroError) -> AvroSchema {
        guard text.utf8.count <= maxTextBytes else {
            throw AvroError("the schema is \(text.utf8.count) bytes, more than \(maxTextBytes)")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw AvroError("the schema is not JSON")
        }
        var parser = Parser()
        return try parser.type(json, namespace: nil, depth: 0)
    }

    /// A short name of the type, for messages.
    public var typeName: String {
        switch kind {
        case .null: "null"
        case .boolean: "boolean"
        case .int: "int"
        case .long: "long"
        case .float: "float"
        case .double: "double"
        case .bytes: "bytes"
        case .string: "string"
        case .record(let name, _): "record \(name)"
        case .enumeration(let name, _): "enum \(name)"
        case .array: "array"
        case .map: "map"
        case .union: "union"
        case .fixed(let name, _): "fixed \(name)"
        }
    }

    private struct Parser {
        /// Named types by full name (and by their short name, the way most producers refer to them).
        var named: [String: AvroSchema] = [:]

        mutating func type(_ json: Any, namespace: String?, depth: Int) throws(AvroError) -> AvroSchema {
            guard depth < AvroSchema.maxDepth else { throw AvroError("the schema nests deeper than \(AvroSchema.maxDepth)") }
            switch json {
            case let name as String:
                return try reference(name, namespace: namespace)
            case let branches as [Any]:
                guard !branches.isEmpty else { throw AvroError("a union has no branches") }
                var parsed: [AvroSchema] = []
                for b in branches { parsed.append(try type(b, namespace: namespace, depth: depth + 1)) }
                return AvroSchema(.union(parsed))
            case let object as [String: Any]:
                return try complex(object, namespace: namespace, depth: depth)
            default:
                throw AvroError("a type is neither a name, a union nor an object")
            }
        }

        func primitive(_ name: String) -> Kind? {
            switch name {
            case "null": .null
            case "boolean": .boolean
            case "int": .int
            case "long": .long
            case "float": .float
            case "double": .double
            case "bytes": .bytes
            case "string": .string
            default: nil
            }
        }

        func reference(_ name: String, namespace: String?) throws(AvroError) -> AvroSchema {
            if let p = primitive(name) { return AvroSchema(p) }
            let full = name.contains(".") ? name : namespace.map { "\($0).\(name)" } ?? name
            guard let found = named[full] ?? named[name] else {
                throw AvroError("the type '\(name)' is not defined before its use")
            }
            return found
        }

        mutating func complex(_ o: [String: Any], namespace: String?, depth: Int) throws(AvroError) -> AvroSchema {
            guard let typeValue = o["type"] else { throw AvroError("a type object has no \"type\"") }
            guard let type = typeValue as? String else {
                // {"type": {...}} or {"type": [...]}: the inner type, annotations ignored.
                return try self.type(typeValue, namespace: namespace, depth: depth + 1)
            }
            switch type {
            case "record", "error":
                let (full, space) = try fullName(o, namespace: namespace)
                let schema = AvroSchema(.record(name: full, fields: []))
                register(schema, full)  // before the fields: a record may refer to itself
                guard let fieldsJSON = o["fields"] as? [Any] else { throw AvroError("record \(full) has no \"fields\" array") }
                var fields: [Field] = []
                for f in fieldsJSON {
                    guard let f = f as? [String: Any], let name = f["name"] as? String, let t = f["type"] else {
                        throw AvroError("a field of record \(full) has no name or no type")
                    }
                    fields.append(Field(name: name, type: try self.type(t, namespace: space, depth: depth + 1)))
                }
                schema.kind = .record(name: full, fields: fields)
                return schema
            case "enum":
                let (full, _) = try fullName(o, namespace: namespace)
                guard let symbols = o["symbols"] as? [String], !symbols.isEmpty else {
                    throw AvroError("enum \(full) has no symbols")
                }
                let schema = AvroSchema(.enumeration(name: full, symbols: symbols))
                register(schema, full)
                return schema
            case "fixed":
                let (full, _) = try fullName(o, namespace: namespace)
                guard let size = o["size"] as? Int, size >= 0, size <= 1 << 16 else {
                    throw AvroError("fixed \(full) has no size (0…65536)")
                }
                let schema = AvroSchema(.fixed(name: full, size: size), logical: logical(o))
                register(schema, full)
                return schema
            case "array":
                guard let items = o["items"] else { throw AvroError("an array has no \"items\"") }
                return AvroSchema(.array(items: try self.type(items, namespace: namespace, depth: depth + 1)))
            case "map":
                guard let values = o["values"] else { throw AvroError("a map has no \"values\"") }
                return AvroSchema(.map(values: try self.type(values, namespace: namespace, depth: depth + 1)))
            default:
                if let p = primitive(type) { return AvroSchema(p, logical: logical(o)) }
                return try reference(type, namespace: namespace)
            }
        }

        /// The logical types kept; others read as their underlying type (the specification's rule).
        func logical(_ o: [String: Any]) -> Logical? {
            switch o["logicalType"] as? String {
            case "timestamp-millis", "local-timestamp-millis": .timestampMillis
            case "timestamp-micros", "local-timestamp-micros": .timestampMicros
            case "decimal": .decimal(scale: (o["scale"] as? Int).map { max(0, min($0, 38)) } ?? 0)
            default: nil
            }
        }

        func fullName(_ o: [String: Any], namespace: String?) throws(AvroError) -> (full: String, namespace: String?) {
            guard let name = o["name"] as? String, !name.isEmpty else { throw AvroError("a named type has no name") }
            if let dot = name.lastIndex(of: ".") { return (name, String(name[..<dot])) }
            let space = (o["namespace"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? namespace
            return (space.map { "\($0).\(name)" } ?? name, space)
        }

        mutating func register(_ schema: AvroSchema, _ full: String) {
            named[full] = schema
            if let dot = full.lastIndex(of: ".") { named[String(full[full.index(after: dot)...])] = schema }
        }
    }
}

/// A schema or a record that Avro cannot read, with what is wrong.
public struct AvroError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
