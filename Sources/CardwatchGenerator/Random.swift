#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// xoshiro256** seeded through SplitMix64: fast, small, and the same sequence on
/// every platform for a given seed, which is what `--seed` promises.
/// (The standard library's generator is not seedable; no listed package offers one.)
public struct SeededRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix()
        s1 = splitmix()
        s2 = splitmix()
        s3 = splitmix()
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    @inlinable
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    @inlinable
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * unit() }

    /// Uniform integer in `range` (Lemire's multiply-shift; the tiny bias is irrelevant here).
    @inlinable
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound + 1)
        return range.lowerBound + Int(next().multipliedFullWidth(by: span).high)
    }

    @inlinable
    public mutating func index(_ count: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(count)).high)
    }

    @inlinable
    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Standard normal (Box–Muller; one value per call keeps the state simple).
    public mutating func normal() -> Double {
        let u1 = max(unit(), 0x1.0p-60)
        let u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    public mutating func logNormal(median: Double, sigma: Double) -> Double {
        median * exp(sigma * normal())
    }

    /// Exponential with the given mean.
    public mutating func exponential(mean: Double) -> Double {
        -mean * log(1 - unit())
    }
}

/// Vose's alias table: O(1) draws from a fixed discrete distribution.
struct AliasTable: Sendable {
    var probability: [Double]
    var alias: [Int32]

    init(weights: [Double]) {
        let n = weights.count
        let total = weights.reduce(0, +)
        var scaled = weights.map { $0 * Double(n) / total }
        probability = [Double](repeating: 1, count: n)
        alias = (0..<n).map { Int32($0) }
        var small: [Int] = []
        var large: [Int] = []
        for (i, w) in scaled.enumerated() {
            if w < 1 { small.append(i) } else { large.append(i) }
        }
        while let s = small.popLast(), let l = large.popLast() {
            probability[s] = scaled[s]
            alias[s] = Int32(l)
            scaled[l] -= 1 - scaled[s]
            if scaled[l] < 1 { small.append(l) } else { large.append(l) }
        }
    }

    func draw(_ rng: inout SeededRandom) -> Int {
        let i = rng.index(probability.count)
        return rng.unit() < probability[i] ? i : Int(alias[i])
    }
}
