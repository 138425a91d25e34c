/// A byte range inside the record being decoded.
public struct Span: Hashable, Sendable {
    public var start: Int
    public var count: Int
    public init(start: Int, count: Int) {
        self.start = start
        self.count = count
    }
}

/// A field's value as the input gave it, before any schema check.
///
/// Strings stay as spans into the input buffer unless they had escapes, so a
/// record is decoded without copying its text twice.
public enum RawValue: Sendable {
    case missing
    case null
    case string(Span)
    case unescaped(String)
    case number(Double)
    case bool(Bool)
    /// An object or array where a scalar belongs.
    case composite(StaticString)
}

/// One decoded but not yet validated record: a value slot per schema field.
public struct RawRecord: Sendable {
    public var values: [RawValue]
    /// CSV cells are text by nature: numbers and flags are parsed from their text.
    public var isText: Bool
    /// Fields the input gave twice; a record with repeats is refused.
    public var repeated: [TransactionField] = []
    /// JSON: where the `card_number` member lies (its key's opening quote to its value's end),
    /// so the record can be stored without it.
    public var cardNumberMember: Range<Int>?
    /// JSON: where the value of `card_id` lies, for the record stored with the derived one.
    public var cardIDValue: Range<Int>?
    /// JSON: where the values of members the schema does not know lie, so card-number
    /// look-alikes in them can be masked before the record is stored.
    public var unknownValues: [Range<Int>] = []
    /// What the member being scanned was, for `memberBytes`.
    var scanning: ScannedMember = .field

    public init(isText: Bool) {
        self.values = Array(repeating: .missing, count: TransactionField.allCases.count)
        self.isText = isText
    }

    public mutating func reset() {
        values.withUnsafeMutableBufferPointer { slots in
            for i in slots.indices { slots[i] = .missing }
        }
        if !repeated.isEmpty { repeated.removeAll(keepingCapacity: true) }
        cardNumberMember = nil
        cardIDValue = nil
        if !unknownValues.isEmpty { unknownValues.removeAll(keepingCapacity: true) }
    }

    enum ScannedMember {
        case field, cardID, cardNumber, unknown
    }

    public subscript(field: TransactionField) -> RawValue {
        get { values[field.rawValue] }
        set {
            if case .missing = values[field.rawValue] {
            } else {
                repeated.append(field)
            }
            values[field.rawValue] = newValue
        }
    }
}

/// A problem with one field of a record, or with the record as a whole (`field` = "record").
public struct FieldIssue: Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var problem: String
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }
    public var description: String { "\(field): \(problem)" }
}

/// Every problem found in one record, all at once.
public struct RecordError: Error, Hashable, Sendable, CustomStringConvertible {
    public var issues: [FieldIssue]
    public init(issues: [FieldIssue]) { self.issues = issues }
    public init(record problem: String) { self.issues = [FieldIssue(field: "record", problem: problem)] }
    public var description: String { issues.map(\.description).joined(separator: "; ") }
}
