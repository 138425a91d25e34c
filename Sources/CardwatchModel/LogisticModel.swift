/// Logistic regression on standardised inputs: the baseline next to the trees.
public struct LogisticModel: Codable, Sendable, Equatable {
    public var means: [Double]
    /// Standard deviations (1 where a feature is constant).
    public var scales: [Double]
    public var weights: [Double]
    public var intercept: Double

    public init(means: [Double], scales: [Double], weights: [Double], intercept: Double) {
        self.means = means
        self.scales = scales
        self.weights = weights
        self.intercept = intercept
    }

    /// The margin for one row; a missing value (NaN) counts as the training mean.
    public func margin(_ x: UnsafeBufferPointer<Double>) -> Double {
        var z = intercept
        for j in 0..<weights.count where !x[j].isNaN {
            z += weights[j] * (x[j] - means[j]) / scales[j]
        }
        return z
    }
}
