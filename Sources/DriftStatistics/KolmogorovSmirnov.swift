#if canImport(Glibc)
import Glibc
#endif

/// # DriftStatistics
///
/// The numbers behind drift detection, with nothing but numbers in and out: the two-sample
/// Kolmogorov-Smirnov test (identical to `scipy.stats.ks_2samp`), multiple-testing corrections, and the
/// population stability index.

/// The two-sample Kolmogorov-Smirnov test, computed as `scipy.stats.ks_2samp` computes it.
public enum KolmogorovSmirnov {
    public enum Alternative: String, Sendable, Codable {
        /// The distributions differ (statistic max |F1 - F2|).
        case twoSided = "two-sided"
        /// The first sample's CDF lies below the second's somewhere (statistic max(F2 - F1)).
        case less
        /// The first sample's CDF lies above the second's somewhere (statistic max(F1 - F2)).
        case greater
    }

    public enum Method: String, Sendable, Codable {
        /// Exact when both samples have at most 10,000 values, else asymptotic (scipy's rule).
        case auto
        /// Exact lattice-path counting (Hodges 1958; Viehmann 2021 for the two-sided 1 - p recursion);
        /// falls back to asymptotic when it over- or underflows, as scipy does.
        case exact
        /// Two-sided: the Kolmogorov distribution at n = round(mn / (m + n)); one-sided: Smirnov's
        /// limiting form with a finite-sample correction.
        case asymp
    }

    public struct Result: Sendable, Equatable, Codable {
        public var statistic: Double
        public var pValue: Double
        /// The value at which the statistic was attained.
        public var location: Double
        /// +1 when F1 - F2 attains the statistic, -1 when F2 - F1 does.
        public var sign: Int
        /// The method actually used.
        public var method: Method
    }

    public static let maxExactSize = 10_000

    /// Tests whether `first` and `second` come from the same distribution. The inputs need not be
    /// sorted; they must not be empty.
    public static func test(_ first: [Double], _ second: [Double], alternative: Alternative = .twoSided,
                            method: Method = .auto) -> Result {
        precondition(!first.isEmpty && !second.isEmpty, "ks_2samp needs two non-empty samples, got \(first.count) and \(second.count)")
        return testSorted(first.sorted(), second.sorted(), alternative: alternative, method: method)
    }

    /// As `test`, for samples already sorted ascending (the drift monitor sorts its reference once).
    /// Whether the exact distribution gives the p-value for these sizes: the one rule of Dropline,
    /// scipy's. `auto` uses it up to `maxExactSize` values per sample, `exact` always, `asymp` never;
    /// either way not when the exact computation's integers would overflow (scipy then falls back
    /// to the asymptotic distribution too).
    public static func usesExact(n1: Int, n2: Int, method: Method) -> Bool {
        switch method {
        case .asymp: return false
        case .auto where max(n1, n2) > maxExactSize: return false
        default:
            let g = gcd(n1, n2)
            return (n1 / g) < Int(Int32.max) / (n2 / g)
        }
    }

    public static func testSorted(_ a: [Double], _ b: [Double], alternative: Alternative = .twoSided,
                                  method: Method = .auto) -> Result {
        let n1 = a.count, n2 = b.count
        precondition(n1 > 0 && n2 > 0, "ks_2samp needs two non-empty samples")
        let s = statistic(a, b, alternative: alternative)
        var d = s.statistic
        let (location, sign) = (s.location, s.sign)
        let g = gcd(n1, n2)
        var mode: Method = usesExact(n1: n1, n2: n2, method: method) ? .exact : .asymp
        var p = -Double.infinity
        if mode == .exact {
            if let (exactD, exactP) = exact(n1: n1, n2: n2, g: g, d: d, alternative: alternative) {
                d = exactD
                p = exactP
            } else {
                mode = .asymp
            }
        }
        if mode == .asymp {
            let m = Double(max(n1, n2)), n = Double(min(n1, n2))
            let en = m * n / (m + n)
            if alternative == .twoSided {
                p = KolmogorovDistribution.survival(n: Int(roundHalfEven(en)), x: d)
            } else {
                let z = en.squareRoot() * d
                let exponent = -2 * z * z - 2 * z * (m + 2 * n) / (m * n * (m + n)).squareRoot() / 3
                p = exp(exponent)
            }
        }
        return Result(statistic: d, pValue: min(max(p, 0), 1), location: location, sign: sign, method: mode)
    }


    /// The statistic, its location and sign (p-value not computed) for sorted samples.
    static func statistic(_ a: [Double], _ b: [Double], alternative: Alternative) -> Result {
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in statistic(a, b, alternative: alternative) } }
    }

    static func statistic(_ a: UnsafeBufferPointer<Double>, _ b: UnsafeBufferPointer<Double>, alternative: Alternative) -> Result {
        let n1 = a.count, n2 = b.count
        // Walk the merged values; after all copies of a value, cdf1 - cdf2 is the difference there.
        // scipy reports the first extreme in the concatenation [a, b], so the extremes over values
        // present in a win ties against those present in b, and smaller values win within each.
        var i = 0, j = 0
        var maxA = -Double.infinity, atMaxA = 0.0, minA = Double.infinity, atMinA = 0.0
        var maxB = -Double.infinity, atMaxB = 0.0, minB = Double.infinity, atMinB = 0.0
        while i < n1 || j < n2 {
            let value = (j >= n2 || (i < n1 && a[i] <= b[j])) ? a[i] : b[j]
            let startA = i, startB = j
            while i < n1 && a[i] == value { i += 1 }
            while j < n2 && b[j] == value { j += 1 }
            let diff = Double(i) / Double(n1) - Double(j) / Double(n2)
            if i > startA {
                if diff > maxA { (maxA, atMaxA) = (diff, value) }
                if diff < minA { (minA, atMinA) = (diff, value) }
            }
            if j > startB {
                if diff > maxB { (maxB, atMaxB) = (diff, value) }
                if diff < minB { (minB, atMinB) = (diff, value) }
            }
        }
        let (maxDiff, maxAt) = maxA >= maxB ? (maxA, atMaxA) : (maxB, atMaxB)
        let (minDiff, minAt) = minA <= minB ? (minA, atMinA) : (minB, atMinB)
        let minS = min(max(-minDiff, 0), 1)
        let maxS = maxDiff
        if alternative == .less || (alternative == .twoSided && minS > maxS) {
            return Result(statistic: minS, pValue: .nan, location: minAt, sign: -1, method: .exact)
        }
        return Result(statistic: maxS, pValue: .nan, location: maxAt, sign: 1, method: .exact)
    }

    /// numpy's round: halves go to the even neighbour.
    static func roundHalfEven(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

    /// Division rounding toward minus infinity (Python's //), unlike Swift's / which truncates.
    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// The exact p-value, or nil when it cannot be computed in floating point.
    static func exact(n1: Int, n2: Int, g: Int, d: Double, alternative: Alternative) -> (Double, Double)? {
        let lcm = (n1 / g) * n2
        let h = Int(roundHalfEven(d * Double(lcm)))
        let dd = Double(h) / Double(lcm)
        if h == 0 { return (dd, 1) }
        var p: Double
        if alternative == .twoSided {
            p = n1 == n2 ? probabilityOutsideSquare(n: n1, h: h) : outsideProbabilityInsideMethod(m: n1, n: n2, g: g, h: h)
        } else {
            if n1 == n2 {
                p = 1
                for j in 0..<h { p *= Double(n1 - j) / (Double(n1 + j) + 1) }
            } else {
                let paths = pathsOutside(m: n1, n: n2, g: g, h: h)
                let total = binomial(Double(n1 + n2), Double(n1))
                guard paths.isFinite, total.isFinite, paths <= total else { return nil }
                p = paths / total
            }
        }
        guard p.isFinite, p >= 0, p <= 1 else { return nil }
        return (dd, p)
    }

    /// Equal sample sizes, two-sided: the proportion of lattice paths leaving the band |x - y| < h.
    static func probabilityOutsideSquare(n: Int, h: Int) -> Double {
        var p = 0.0
        var k = n / h
        while k >= 0 {
            var p1 = 1.0
            for j in 0..<h { p1 = Double(n - k * h - j) * p1 / Double(n + k * h + j + 1) }
            p = p1 * (1 - p)
            k -= 1
        }
        return 2 * p
    }

    /// Unequal sizes, two-sided: 1 - (proportion of paths staying strictly inside the band), by the
    /// inside method with Viehmann's recursion for 1 - p, column by column over a sliding window.
    static func outsideProbabilityInsideMethod(m: Int, n: Int, g: Int, h: Int) -> Double {
        let (m, n) = m < n ? (n, m) : (m, n)
        let mg = m / g, ng = n / g
        var minJ = 0
        var maxJ = min(Int((Double(h) / Double(mg)).rounded(.up)), n + 1)
        var length = maxJ - minJ
        // One column of the lattice, long enough for the widest window; entries outside the window
        // are 1 (paths already outside).
        var column = [Double](repeating: 1, count: max(min(2 * maxJ + 2, n + 1), 1))
        for j in minJ..<maxJ { column[j] = 0 }
        // 1/(i + j) for every i + j: the recurrence below is a serial chain, and a multiply-add is
        // several times faster than a division (results agree with scipy's divisions to ~1e-15).
        var reciprocal = [Double](repeating: 0, count: m + n + 1)
        for k in 1...(m + n) { reciprocal[k] = 1 / Double(k) }
        for i in 1...m {
            let lastMinJ = minJ, lastLength = length
            minJ = min(max(Int(floor(Double(ng * i - h) / Double(mg))) + 1, 0), n)
            maxJ = min(Int((Double(ng * i + h) / Double(mg)).rounded(.up)), n + 1)
            if maxJ <= minJ { return 1 }
            var value = minJ == 0 ? 0.0 : 1.0
            for jj in 0..<(maxJ - minJ) {
                let j = jj + minJ
                let index = jj + minJ - lastMinJ
                let left = index < column.count ? column[index] : 1
                value = (left * Double(i) + value * Double(j)) * reciprocal[i + j]
                column[jj] = value
            }
            length = maxJ - minJ
            if lastLength > length {
                for index in length..<min(lastLength, column.count) { column[index] = 1 }
            }
        }
        return column[maxJ - minJ - 1]
    }

    /// Unequal sizes, one-sided: the number of lattice paths from (0, 0) to (m, n) that reach the
    /// line m y <= n x - h g (Hodges 1958).
    static func pathsOutside(m: Int, n: Int, g: Int, h: Int) -> Double {
        let (m, n) = m < n ? (n, m) : (m, n)
        let mg = m / g, ng = n / g
        let count = n + floorDivide(mg - h, mg)
        if count <= 0 { return binomial(Double(m + n), Double(n)) }
        let xj = (0..<count).map { j in (h + mg * j + ng - 1) / ng }
        var B = [Double](repeating: 0, count: count)
        B[0] = 1
        for j in 1..<max(count, 1) {
            var bj = binomial(Double(xj[j] + j), Double(j))
            for i in 0..<j { bj -= binomial(Double(xj[j] - xj[i] + j - i), Double(j - i)) * B[i] }
            B[j] = bj
        }
        var paths = 0.0
        for j in 0..<count { paths += B[j] * binomial(Double(m - xj[j] + n - j), Double(n - j)) }
        return paths
    }

    /// The binomial coefficient as a double, as scipy.special.binom computes it: a product for
    /// k < 20 (after symmetry), otherwise through the beta function.
    static func binomial(_ n: Double, _ k: Double) -> Double {
        if n < 0 && n == n.rounded(.down) { return .nan }
        var kx = k.rounded(.down)
        if k == kx && (abs(n) > 1e-8 || n == 0) {
            let nx = n.rounded(.down)
            if nx == n && kx > nx / 2 && nx > 0 { kx = nx - kx }
            if kx >= 0 && kx < 20 {
                var numerator = 1.0, denominator = 1.0
                var i = 1.0
                while i <= kx {
                    numerator *= i + n - kx
                    denominator *= i
                    if abs(numerator) > 1e50 {
                        numerator /= denominator
                        denominator = 1
                    }
                    i += 1
                }
                return numerator / denominator
            }
        }
        if n >= 1e10 * k && k > 0 {
            return exp(-logBeta(1 + n - k, 1 + k) - log(n + 1))
        }
        return 1 / (n + 1) / exp(logBeta(1 + n - k, 1 + k))
    }

    static func logBeta(_ a: Double, _ b: Double) -> Double { lgamma(a) + lgamma(b) - lgamma(a + b) }
}
