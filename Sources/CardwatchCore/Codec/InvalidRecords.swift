/// Records a command skipped as invalid, counted by reason: each field that had a problem
/// (a record with several counts under each), with the first such problem as an example.
public struct InvalidRecords: Sendable {
    public private(set) var count = 0
    public private(set) var byReason: [String: (count: Int, line: Int, problem: String)] = [:]

    public mutating func add(line: Int, _ error: RecordError) {
        count += 1
        for field in Set(error.issues.map(\.field)) {
            let problem = error.issues.first { $0.field == field }!.problem
            byReason[field, default: (0, line, problem)].count += 1
        }
    }

    public mutating func add(line: Int, reason: String, _ problem: String) {
        add(line: line, RecordError(issues: [FieldIssue(field: reason, problem: problem)]))
    }

    public init() {}
}
