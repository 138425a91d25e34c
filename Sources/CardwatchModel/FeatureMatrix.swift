/// Rows of numeric features with a binary label: what the trainers read.
/// Row-major, so one row is a contiguous slice the scorer can take as it is.
public struct FeatureMatrix: Sendable {
    public let columns: Int
    public private(set) var values: [Double] = []
    public private(set) var labels: [Bool] = []

    public init(columns: Int) { self.columns = columns }

    public init(columns: Int, values: [Double], labels: [Bool]) {
        precondition(values.count == columns * labels.count, "values must hold columns × rows numbers")
        self.columns = columns
        self.values = values
        self.labels = labels
    }

    public var rows: Int { labels.count }
    public var positives: Int { labels.reduce(0) { $0 + ($1 ? 1 : 0) } }

    public mutating func append(_ row: some Collection<Double>, label: Bool) {
        precondition(row.count == columns, "a row needs \(columns) values")
        values.append(contentsOf: row)
        labels.append(label)
    }

    public subscript(row: Int, column: Int) -> Double { values[row * columns + column] }

    /// Calls `body` with one row as a buffer, without copying it.
    @inlinable
    public func withRow<R>(_ r: Int, _ body: (UnsafeBufferPointer<Double>) throws -> R) rethrows -> R {
        try values.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[r * columns..<(r + 1) * columns])) }
    }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: some Sequence<Int>) -> FeatureMatrix {
        var out = FeatureMatrix(columns: columns)
        for i in indices { out.append(values[i * columns..<(i + 1) * columns], label: labels[i]) }
        return out
    }
}
