/// Labelled rows with what an honest evaluation needs besides the features:
/// when each happened, whose card it was, and (for generated data) the fraud pattern.
public struct TimedDataset: Sendable {
    public var matrix: FeatureMatrix
    /// Event times, microseconds since the epoch.
    public var times: [Int64]
    public var cards: [String]
    public var patterns: [String?]
    public var transactionIDs: [String]
    /// Which rows carry a label (nil: every row). An unlabelled row's `matrix` label is false and
    /// means nothing: only an unsupervised model trains on such rows, and no metric reads them.
    public var labelled: [Bool]?

    public init(
        matrix: FeatureMatrix, times: [Int64], cards: [String], patterns: [String?], transactionIDs: [String],
        labelled: [Bool]? = nil
    ) {
        precondition(times.count == matrix.rows && cards.count == matrix.rows && patterns.count == matrix.rows)
        precondition(transactionIDs.count == matrix.rows && (labelled?.count ?? matrix.rows) == matrix.rows)
        self.matrix = matrix
        self.times = times
        self.cards = cards
        self.patterns = patterns
        self.transactionIDs = transactionIDs
        self.labelled = labelled
    }

    /// No rows yet, of `columns` features (filled by `append`, as the warehouses read them).
    public init(columns: Int) {
        self.init(matrix: FeatureMatrix(columns: columns), times: [], cards: [], patterns: [], transactionIDs: [])
    }

    /// One labelled row more.
    public mutating func append(
        _ values: [Double], label: Bool, time: Int64, card: String, transactionID: String, pattern: String?
    ) {
        matrix.append(values, label: label)
        times.append(time)
        cards.append(card)
        transactionIDs.append(transactionID)
        patterns.append(pattern)
    }

    /// Whether row `i` carries a label.
    public func isLabelled(_ i: Int) -> Bool { labelled?[i] ?? true }

    /// The labelled rows alone.
    public var labelledRows: TimedDataset {
        guard let labelled, labelled.contains(false) else { return self }
        return subset(labelled.indices.filter { labelled[$0] })
    }

    public var rows: Int { matrix.rows }

    public func subset(_ indices: [Int]) -> TimedDataset {
        TimedDataset(
            matrix: matrix.subset(indices), times: indices.map { times[$0] }, cards: indices.map { cards[$0] },
            patterns: indices.map { patterns[$0] }, transactionIDs: indices.map { transactionIDs[$0] },
            labelled: labelled.map { l in indices.map { l[$0] } })
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
    /// (or the latest `testFraction` of rows when given); training ends `delay` before it
    /// (with `delayAtMostTest`, a delay no longer than the test window: a short data set split
    /// by a fraction keeps training rows). An empty derived training window throws
    /// `EmptyTrainingWindow`, which says why; any other impossible split a `ModelError`.
    public static func resolve(
        times: [Int64], trainFrom: Int64? = nil, trainTo: Int64? = nil, delay: Int64 = 0, testFrom: Int64? = nil,
        testTo: Int64? = nil, testLength: Int64 = 7 * day, testFraction: Double? = nil, delayAtMostTest: Bool = false
    ) throws -> TimeSplit {
        guard let first = times.min(), let last = times.max() else { throw ModelError("no rows to split") }
        let end = testTo ?? last + 1
        var start = testFrom
        if start == nil, let fraction = testFraction {
            guard fraction > 0, fraction < 1 else { throw ModelError("test fraction must be between 0 and 1, got \(fraction)") }
            let sorted = times.sorted()
            start = sorted[min(sorted.count - 1, Int(Double(sorted.count) * (1 - fraction)))]
        }
        let testStart = start ?? max(first, end - testLength)
        let gap = delayAtMostTest ? min(delay, max(0, end - testStart)) : delay
        let split = TimeSplit(
            trainFrom: trainFrom ?? first, trainTo: trainTo ?? testStart - gap, testFrom: testStart, testTo: end)
        if trainTo == nil, split.trainFrom >= split.trainTo {
            throw EmptyTrainingWindow(
                dataFrom: first, dataTo: last, testFrom: testStart, testTo: end, delay: gap, trainFrom: split.trainFrom)
        }
        try split.check()
        return split
    }

    public func check() throws(ModelError) {
        guard trainFrom < trainTo else {
            throw ModelError(
                "the training window is empty: [\(Self.text(trainFrom)), \(Self.text(trainTo))) must start before it ends")
        }
        guard testFrom < testTo else { throw ModelError("the test window is empty (it must start before it ends)") }
        guard trainTo <= testFrom else {
            throw ModelError("the training window must end before the test window starts (no overlap, no peeking)")
        }
    }

    /// An instant in messages (RFC 3339, UTC).
    static func text(_ micros: Int64) -> String {
        let days = micros >= 0 ? micros / day : (micros - day + 1) / day
        let (y, m, d) = civil(days)
        let rest = micros - days * day
        let seconds = rest / 1_000_000
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(Int64(m)))-\(two(Int64(d)))T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))Z"
    }

    /// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
    static func civil(_ days: Int64) -> (Int64, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// A duration in days for messages (one decimal; two below a tenth).
    public static func days(_ micros: Int64) -> String {
        let d = Double(micros) / Double(day)
        let digits = abs(d) < 0.1 && d != 0 ? 100.0 : 10.0
        return "\((d * digits).rounded() / digits) days"
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

/// A split whose training window came out empty because the label delay (and the test
/// window) leave no time before the test window within the data; says what each was.
public struct EmptyTrainingWindow: Error, CustomStringConvertible, Equatable {
    public var dataFrom: Int64
    public var dataTo: Int64
    public var testFrom: Int64
    public var testTo: Int64
    public var delay: Int64
    public var trainFrom: Int64

    /// The longest label delay that leaves some training time (0 or less: none does, the
    /// test window starts where the data starts).
    public var longestDelay: Int64 { testFrom - trainFrom }

    /// The data, the test window, the delay and where training would have had to end.
    public var situation: String {
        let t = TimeSplit.text
        return "the training window is empty: the data spans \(t(dataFrom)) to \(t(dataTo)) "
            + "(\(TimeSplit.days(dataTo - dataFrom))), the test window is [\(t(testFrom)), \(t(testTo))) "
            + "(\(TimeSplit.days(testTo - testFrom))) and the label delay is \(TimeSplit.days(delay)), so training "
            + "would have to end at \(t(testFrom - delay)), \(testFrom - delay <= dataFrom ? "before the data starts" : "before it starts")"
    }

    public var description: String {
        situation + "; use "
            + (longestDelay > 0 ? "a label delay under \(TimeSplit.days(longestDelay)), " : "")
            + "a smaller test window, or explicit training bounds"
    }
}
