import CardwatchCore
import CardwatchFeatures
import Foundation
import Testing

// The engine against the naive reference on hundreds of random streams.
//
// Reproduce one stream: CARDWATCH_FEATURES_SEED=<seed> swift test --filter CardwatchFeaturesTests
// Explore new streams: CARDWATCH_FEATURES_BASE_SEED=<any number>
// Shrink failing streams to a minimal input (slow): CARDWATCH_FEATURES_SHRINK=1

private let environment = ProcessInfo.processInfo.environment
private let chunks = 8
private let streamsPerChunk = Int(environment["CARDWATCH_FEATURES_STREAMS"] ?? "") ?? 32
private let baseSeed = UInt64(environment["CARDWATCH_FEATURES_BASE_SEED"] ?? "") ?? 0x00C0_FFEE

private func seeds(chunk: Int, salt: UInt64) -> [UInt64] {
    if let one = UInt64(environment["CARDWATCH_FEATURES_SEED"] ?? "") { return chunk == 0 ? [one] : [] }
    return (0..<streamsPerChunk).map { baseSeed &+ salt &+ UInt64(chunk * 100_000 + $0) }
}

/// Runs every seed's stream through engine and reference and records each disagreement.
private func check(seeds: [UInt64], beyondLateness: Bool) {
    for seed in seeds {
        let scenario = Streams.make(seed: seed, beyondLateness: beyondLateness)
        let mismatches = compare(scenario)
        guard let first = mismatches.first else { continue }
        var report = "seed \(seed) (beyondLateness: \(beyondLateness)), config \(scenario.config), "
        report += "\(scenario.steps.count) steps:\n" + mismatches.map { "  \($0)" }.joined(separator: "\n")
        if case .tx(let tx) = scenario.steps[first.step] { report += "\n  first at \(tx)" }
        if environment["CARDWATCH_FEATURES_SHRINK"] != nil {
            for m in mismatches {
                let small = shrink(scenario, step: m.step, feature: m.feature)
                report += "\n  minimal input for \(m.feature.name) (\(small.steps.count) steps):\n"
                report += small.steps.map { "    \($0)" }.joined(separator: "\n")
            }
        }
        Issue.record(Comment(rawValue: report))
    }
}

@Suite struct PropertyTests {
    /// Within the allowed lateness: every feature of every transaction equals the reference.
    @Test(arguments: 0..<chunks)
    func randomStreamsMatchTheReference(chunk: Int) {
        check(seeds: seeds(chunk: chunk, salt: 0), beyondLateness: false)
    }

    /// With a few events later than the allowed lateness (processed at their key's newest time).
    @Test(arguments: 0..<2)
    func streamsWithVeryLateEventsMatchTheReference(chunk: Int) {
        check(seeds: seeds(chunk: chunk, salt: 1 << 40).prefix(streamsPerChunk / 2).map { $0 }, beyondLateness: true)
    }

    /// The streams of the main property test really exercise every feature and every mechanism.
    @Test func randomStreamsExerciseEverything() throws {
        var values = [Set<Double>](repeating: [], count: Feature.count)
        var nonzeroRates = 0
        var stats = (lateWithinAllowance: 0, labelsApplied: 0, evictedCards: 0, evictedMerchants: 0)
        var before1970 = 0
        var longerThan40Days = 0
        for seed in seeds(chunk: 0, salt: 0) + seeds(chunk: 1, salt: 0) {
            let scenario = Streams.make(seed: seed)
            var engine = try FeatureEngine(config: scenario.config)
            var first = Int64.max
            var last = Int64.min
            for step in scenario.steps {
                switch step {
                case .tx(let tx):
                    let f = engine.process(tx)
                    for i in 0..<Feature.count where values[i].count < 3 { values[i].insert(f[i]) }
                    if f[.merchantFraudRate1d] > 0 || f[.merchantFraudRate7d] > 0 || f[.merchantFraudRate30d] > 0 {
                        nonzeroRates += 1
                    }
                    first = min(first, tx.timestamp.microseconds)
                    last = max(last, tx.timestamp.microseconds)
                case .label(let l): engine.apply(l)
                }
            }
            if first < 0 { before1970 += 1 }
            if last - first > 40 * Micros.day { longerThan40Days += 1 }
            stats.lateWithinAllowance += engine.stats.lateWithinAllowance
            stats.labelsApplied += engine.stats.labelsApplied
            stats.evictedCards += engine.stats.evictedCards
            stats.evictedMerchants += engine.stats.evictedMerchants
        }
        for f in Feature.allCases { #expect(values[f.rawValue].count >= 2, "\(f.name) never varies") }
        #expect(nonzeroRates > 100)
        #expect(stats.lateWithinAllowance > 100)
        #expect(stats.labelsApplied > 100)
        #expect(stats.evictedCards > 0)
        #expect(stats.evictedMerchants > 0)
        #expect(before1970 > 0)
        #expect(longerThan40Days > 5)
    }

    /// The engine's counters agree with the reference's reading of lateness.
    @Test func statsCountLatenessLikeTheReference() throws {
        for seed in seeds(chunk: 0, salt: 1 << 41).prefix(10) {
            let scenario = Streams.make(seed: seed, beyondLateness: true)
            var engine = try FeatureEngine(config: scenario.config)
            var reference = ReferenceEngine(config: scenario.config)
            for step in scenario.steps {
                switch step {
                case .tx(let tx):
                    _ = engine.process(tx)
                    _ = reference.process(tx)
                case .label(let l):
                    engine.apply(l)
                    reference.apply(l)
                }
            }
            let want = reference.stats
            let got = engine.stats
            #expect(got.processed == want.processed, "seed \(seed)")
            #expect(got.lateWithinAllowance == want.lateWithinAllowance, "seed \(seed)")
            #expect(got.lateBeyondAllowance == want.lateBeyondAllowance, "seed \(seed)")
        }
    }
}
