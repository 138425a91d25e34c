#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public struct LogisticParameters: Sendable, Equatable, Codable {
    /// L2 penalty on the standardised weights (not on the intercept).
    public var lambda = 1.0
    /// Weight of positive rows in the loss.
    public var scalePosWeight = 1.0
    public var maxIterations = 50
    public init() {}
    public var record: [String: String] {
        ["lambda": "\(lambda)", "scale_pos_weight": "\(scalePosWeight)", "max_iterations": "\(maxIterations)"]
    }
}

/// Fits logistic regression by Newton's method (iteratively reweighted least
/// squares) on standardised inputs; with a few dozen features the Hessian is
/// tiny, and Newton converges in a handful of exact, deterministic steps.
public enum LogisticTrainer {
    public static func fit(_ data: FeatureMatrix, parameters p: LogisticParameters = LogisticParameters()) -> LogisticModel {
        let n = data.rows
        let f = data.columns
        var means = [Double](repeating: 0, count: f)
        var scales = [Double](repeating: 1, count: f)
        for j in 0..<f {
            var s = 0.0
            var c = 0.0
            for r in 0..<n where !data[r, j].isNaN {
                s += data[r, j]
                c += 1
            }
            means[j] = c > 0 ? s / c : 0
            var v = 0.0
            for r in 0..<n where !data[r, j].isNaN { v += (data[r, j] - means[j]) * (data[r, j] - means[j]) }
            let sd = c > 1 ? (v / (c - 1)).squareRoot() : 0
            scales[j] = sd > 1e-12 ? sd : 1
        }
        // Standardised design matrix with a leading 1 for the intercept; NaN → 0 (the mean).
        let d = f + 1
        var z = [Double](repeating: 0, count: n * d)
        for r in 0..<n {
            z[r * d] = 1
            for j in 0..<f {
                let v = data[r, j]
                z[r * d + j + 1] = v.isNaN ? 0 : (v - means[j]) / scales[j]
            }
        }
        var beta = [Double](repeating: 0, count: d)
        for _ in 0..<p.maxIterations {
            var gradient = [Double](repeating: 0, count: d)
            var hessian = [Double](repeating: 0, count: d * d)
            for r in 0..<n {
                var eta = 0.0
                for k in 0..<d { eta += beta[k] * z[r * d + k] }
                let prob = sigmoid(eta)
                let w = data.labels[r] ? p.scalePosWeight : 1
                let residual = w * (prob - (data.labels[r] ? 1 : 0))
                let curvature = w * max(prob * (1 - prob), 1e-12)
                for a in 0..<d {
                    let za = z[r * d + a]
                    gradient[a] += residual * za
                    for b in 0...a { hessian[a * d + b] += curvature * za * z[r * d + b] }
                }
            }
            for a in 0..<d {
                for b in 0..<a { hessian[b * d + a] = hessian[a * d + b] }
                if a > 0 {
                    gradient[a] += p.lambda * beta[a]
                    hessian[a * d + a] += p.lambda
                }
            }
            guard let step = choleskySolve(hessian, gradient, d) else { break }
            var change = 0.0
            for k in 0..<d {
                beta[k] -= step[k]
                change = max(change, abs(step[k]))
            }
            if change < 1e-8 { break }
        }
        return LogisticModel(means: means, scales: scales, weights: Array(beta.dropFirst()), intercept: beta[0])
    }

    /// Solves A x = b for a symmetric positive-definite A (row-major, n × n).
    static func choleskySolve(_ a: [Double], _ b: [Double], _ n: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var y = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var s = b[i]
            for k in 0..<i { s -= l[i * n + k] * y[k] }
            y[i] = s / l[i * n + i]
        }
        var x = [Double](repeating: 0, count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = y[i]
            for k in (i + 1)..<n { s -= l[k * n + i] * x[k] }
            x[i] = s / l[i * n + i]
        }
        return x
    }
}

extension Calibration {
    /// Platt scaling fitted on held-out margins, with Platt's smoothed targets so
    /// that a clean separation does not drive the slope to infinity.
    public static func fit(margins: [Double], labels: [Bool]) -> Calibration {
        let positives = Double(labels.filter { $0 }.count)
        let negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return Calibration() }
        let high = (positives + 1) / (positives + 2)
        let low = 1 / (negatives + 2)
        var a = 1.0
        var b = 0.0
        for _ in 0..<100 {
            var g0 = 0.0
            var g1 = 0.0
            var h00 = 1e-12
            var h01 = 0.0
            var h11 = 1e-12
            for (m, y) in zip(margins, labels) {
                let p = sigmoid(a * m + b)
                let t = y ? high : low
                let r = p - t
                let w = max(p * (1 - p), 1e-12)
                g0 += r * m
                g1 += r
                h00 += w * m * m
                h01 += w * m
                h11 += w
            }
            let det = h00 * h11 - h01 * h01
            guard abs(det) > 1e-300 else { break }
            let da = (h11 * g0 - h01 * g1) / det
            let db = (h00 * g1 - h01 * g0) / det
            a -= da
            b -= db
            if abs(da) < 1e-10 && abs(db) < 1e-10 { break }
        }
        return Calibration(a: a, b: b)
    }
}
