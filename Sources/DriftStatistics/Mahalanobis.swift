/// Outlier scores for whole images: the Mahalanobis distance of an image's features from the
/// reference features' Gaussian (mean and ridge-regularised covariance). Numbers in, numbers out.
public enum Mahalanobis {
    /// Mean and inverse covariance (ridge 1e-3 of the average variance) of reference columns.
    public static func gaussian(_ columns: [[Double]]) -> ([Double], [Double]) {
        let k = columns.count, n = columns[0].count
        let mean = columns.map { $0.reduce(0, +) / Double(n) }
        var covariance = [Double](repeating: 0, count: k * k)
        for a in 0..<k {
            for b in a..<k {
                var s = 0.0
                for i in 0..<n { s += (columns[a][i] - mean[a]) * (columns[b][i] - mean[b]) }
                covariance[a * k + b] = s / Double(max(n - 1, 1))
                covariance[b * k + a] = covariance[a * k + b]
            }
        }
        let ridge = 1e-3 * (0..<k).reduce(0.0) { $0 + covariance[$1 * k + $1] } / Double(k) + 1e-12
        for a in 0..<k { covariance[a * k + a] += ridge }
        return (mean, invert(covariance, k))
    }

    /// Gauss-Jordan inverse of a symmetric positive-definite matrix (k is small: the feature count).
    public static func invert(_ matrix: [Double], _ k: Int) -> [Double] {
        var a = matrix
        var inverse = [Double](repeating: 0, count: k * k)
        for i in 0..<k { inverse[i * k + i] = 1 }
        for column in 0..<k {
            var pivot = column
            for r in column..<k where abs(a[r * k + column]) > abs(a[pivot * k + column]) { pivot = r }
            if pivot != column {
                for c in 0..<k {
                    a.swapAt(pivot * k + c, column * k + c)
                    inverse.swapAt(pivot * k + c, column * k + c)
                }
            }
            let p = a[column * k + column]
            for c in 0..<k {
                a[column * k + c] /= p
                inverse[column * k + c] /= p
            }
            for r in 0..<k where r != column {
                let f = a[r * k + column]
                if f == 0 { continue }
                for c in 0..<k {
                    a[r * k + c] -= f * a[column * k + c]
                    inverse[r * k + c] -= f * inverse[column * k + c]
                }
            }
        }
        return inverse
    }

    /// The Mahalanobis distance of `x` from `mean` under the inverse covariance `inverse`.
    public static func distance(_ x: [Double], mean: [Double], inverse: [Double]) -> Double {
        let k = mean.count
        let d = (0..<k).map { x[$0] - mean[$0] }
        var s = 0.0
        for a in 0..<k {
            var row = 0.0
            for b in 0..<k { row += inverse[a * k + b] * d[b] }
            s += d[a] * row
        }
        return max(s, 0).squareRoot()
    }
}
