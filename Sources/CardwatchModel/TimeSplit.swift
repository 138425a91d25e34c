/// Labelled rows with what an honest evaluation needs besides the features:
/// when each happened, whose card it was, and (for generated data) the fraud pattern.
public struct TimedDataset: Sendable {
    public var matrix: FeatureMatrix
    /// Event times, microseconds since the epoch.
    public var times: [Int64]
    public var cards: [String]
    public var patterns: [String?]
    public var transactionIDs: [String]

    public init(matrix: FeatureMatrix, times: [Int64], cards: [String], patterns: [String?], transactionIDs: [String]) {
        precondition(times.count == matrix.rows && cards.count == matrix.rows && patterns.count == matrix.rows)
        precondition(transactionIDs.count == matrix.rows)
        self.matrix = matrix
        self.times = times
        self.cards = cards
        self.patterns = patterns
        self.transactionIDs = transactionIDs
    }

    public var rows: Int { matrix.rows }

    public func subset(_ indices: [Int]) -> TimedDataset {
        TimedDataset(
            matrix: matrix.subset(indices), times: indices.map { times[$0] }, cards: indices.map { cards[$0] },
            patterns: indices.map { patterns[$0] }, transactionIDs: indices.map { transactionIDs[$0] })
    }
}

/// The evaluation protocol, the one place it is decided: train on a window, leave
/// a label-delay gap, test on a later window — never a random split.
public struct TimeSplit: Sendable, Equatable {
    public static let day: Int64 = 86_400_000_000

    public var trainFrom: Int64
    public var trainTo: Int64
    public var testFrom: Int64
    public var testTo: Int64

    public init(trainFrom: Int64, trainTo: Int64, testFrom: Int64, testTo: Int64) {
        self.trainFrom = trainFrom
        self.trainTo = trainTo
        self.testFrom = testFrom
        self.testTo = testTo
    }

    /// Fills what the caller left out. The test window defaults to the last `testLength` microseconds
    /// (or the latest `testFraction` of rows when given); training ends `delay` before it.
    public static func resolve(
        times: [Int64], trainFrom: Int64? = nil, trainTo: Int64? = nil, delay: Int64 = 0, testFrom: Int64? = nil,
        testTo: Int64? = nil, testLength: Int64 = 7 * day, testFraction: Double? = nil
    ) throws(ModelError) -> TimeSplit {
        guard let first = times.min(), let last = times.max() else { throw ModelError("no rows to split") }
        let end = testTo ?? last + 1
        var start = testFrom
        if start == nil, let fraction = testFraction {
            guard fraction > 0, fraction < 1 else { throw ModelError("test fraction must be between 0 and 1, got \(fraction)") }
            let sorted = times.sorted()
            start = sorted[min(sorted.count - 1, Int(Double(sorted.count) * (1 - fraction)))]
        }
        let testStart = start ?? max(first, end - testLength)
        let split = TimeSplit(
            trainFrom: trainFrom ?? first, trainTo: trainTo ?? testStart - delay, testFrom: testStart, testTo: end)
        try split.check()
        return split
    }

    public func check() throws(ModelError) {
        guard trainFrom < trainTo else { throw ModelError("the training window is empty (it must start before it ends)") }
        guard testFrom < testTo else { throw ModelError("the test window is empty (it must start before it ends)") }
        guard trainTo <= testFrom else {
            throw ModelError("the training window must end before the test window starts (no overlap, no peeking)")
        }
    }

    /// Row indices of the training and test windows, in time order.
    public func indices(_ times: [Int64]) -> (train: [Int], test: [Int]) {
        let ordered = times.indices.sorted { (times[$0], $0) < (times[$1], $1) }
        return (
            ordered.filter { times[$0] >= trainFrom && times[$0] < trainTo },
            ordered.filter { times[$0] >= testFrom && times[$0] < testTo }
        )
    }
}
