import Testing

@testable import CardwatchModel

// Issue 14, item 12: a data set shorter than the label delay (two days, as the Kaggle credit
// card set) split by a test fraction.
@Suite struct TimeSplitTests {
    /// A row every 10 s for two days from 2013-09-01 (µs).
    static let twoDays: [Int64] = (0..<17_280).map { 1_377_993_600_000_000 + Int64($0) * 10_000_000 }

    @Test func anEmptyTrainingWindowNamesTheSpanTheTestWindowAndTheDelay() {
        do {
            _ = try TimeSplit.resolve(times: Self.twoDays, delay: 7 * TimeSplit.day, testFraction: 0.2)
            Issue.record("a 7-day delay on two days of data cannot leave a training window")
        } catch {
            let message = "\(error)"
            for words in [
                "training window is empty", "2013-09-01T00:00:00Z", "2013-09-02T23:59:50Z", "2.0 days",
                "the test window is [2013-09-02T14:24:00Z", "0.4 days", "label delay is 7.0 days", "label delay under 1.6 days",
            ] {
                #expect(message.contains(words), "\(words) not in: \(message)")
            }
        }
    }

    @Test func withATestFractionTheDelayCanBeCappedByTheTestWindow() throws {
        let split = try TimeSplit.resolve(
            times: Self.twoDays, delay: 7 * TimeSplit.day, testFraction: 0.2, delayAtMostTest: true)
        #expect(split.testFrom - split.trainTo == split.testTo - split.testFrom)
        #expect(split.trainFrom < split.trainTo)
        let (train, test) = split.indices(Self.twoDays)
        #expect(!train.isEmpty && test.count == 3_456)
        // A delay shorter than the test window stays as it is.
        let short = try TimeSplit.resolve(
            times: Self.twoDays, delay: TimeSplit.day / 10, testFraction: 0.2, delayAtMostTest: true)
        #expect(short.testFrom - short.trainTo == TimeSplit.day / 10)
    }

    @Test func explicitBoundsInTheWrongOrderSayWhich() {
        #expect(throws: ModelError.self) {
            try TimeSplit.resolve(times: Self.twoDays, trainFrom: Self.twoDays[100], trainTo: Self.twoDays[10])
        }
    }
}
