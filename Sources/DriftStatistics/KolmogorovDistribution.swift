#if canImport(Glibc)
import Glibc
#endif

/// The distribution of the two-sided one-sample Kolmogorov-Smirnov statistic D_n (scipy's `kstwo`),
/// which `ks_2samp`'s asymptotic two-sided p-value evaluates at n = round(mn / (m + n)).
///
/// The method for each (n, x) is chosen as Simard & L'Ecuyer (2011, "Computing the two-sided
/// Kolmogorov-Smirnov distribution", J. Stat. Software 39(11)) recommend, with the cut-offs scipy uses,
/// so that the p-values agree with scipy's to about 1e-12:
/// - Ruben-Gambino closed forms near x = 1/n and x = 1 - 1/n;
/// - twice the one-sided Smirnov distribution where it is exact (x >= 1/2) or accurate in the tail;
/// - Durbin's matrix (Marsaglia, Tsang & Wang 2003) for small n x^2;
/// - Pomeranz's recursion (1974) for n <= 140;
/// - the Pelz-Good asymptotic series (1976) for large n.
public enum KolmogorovDistribution {
    /// P(D_n > x).
    public static func survival(n: Int, x: Double) -> Double { evaluate(n: n, x: x, cdf: false) }

    /// P(D_n <= x).
    public static func cdf(n: Int, x: Double) -> Double { evaluate(n: n, x: x, cdf: true) }

    static func clip(_ p: Double) -> Double { min(max(p, 0), 1) }
    static func pick(_ cdfValue: Double, _ sfValue: Double, _ cdf: Bool) -> Double { clip(cdf ? cdfValue : sfValue) }

    static func evaluate(n: Int, x: Double, cdf: Bool) -> Double {
        precondition(n > 0, "the Kolmogorov distribution needs n > 0, got \(n)")
        if x.isNaN { return .nan }
        if x >= 1 { return pick(1, 0, cdf) }
        if x <= 0 { return pick(0, 1, cdf) }
        let nd = Double(n)
        let t = nd * x
        if t <= 1 {  // Ruben-Gambino: 1/(2n) <= x <= 1/n
            if t <= 0.5 { return pick(0, 1, cdf) }
            let p: Double
            if n <= 140 {
                var product = 1.0
                for i in 1...n { product *= Double(i) / nd * (2 * t - 1) }
                p = product
            } else {
                p = exp(logFactorialOverPower(n) + nd * log(2 * t - 1))
            }
            return pick(p, 1 - p, cdf)
        }
        if t >= nd - 1 {  // Ruben-Gambino near x = 1
            let p = 2 * pow(1 - x, nd)
            return pick(1 - p, p, cdf)
        }
        if x >= 0.5 {  // exact: the two one-sided tails cannot both be exceeded
            let p = 2 * SmirnovDistribution.survival(n: n, x: x)
            return pick(1 - p, p, cdf)
        }
        let nxx = t * x
        if n <= 140 {
            if nxx <= 0.754693 {
                let p = durbinMatrix(n: n, d: x)
                return pick(p, 1 - p, cdf)
            }
            if nxx <= 4 {
                let p = pomeranz(n: n, x: x)
                return pick(p, 1 - p, cdf)
            }
            let p = 2 * SmirnovDistribution.survival(n: n, x: x)  // Miller's approximation
            return pick(1 - p, p, cdf)
        }
        if !cdf {
            if nxx >= 370 { return 0 }
            if nxx >= 2.2 { return clip(2 * SmirnovDistribution.survival(n: n, x: x)) }
        }
        let cdfValue: Double
        if nxx >= 18 {
            cdfValue = 1
        } else if n <= 100_000 && nd * pow(x, 1.5) <= 1.4 {
            cdfValue = durbinMatrix(n: n, d: x)
        } else {
            cdfValue = pelzGood(n: n, x: x)
        }
        return pick(cdfValue, 1 - cdfValue, cdf)
    }

    /// log(n! / n^n) by Stirling's series.
    static func logFactorialOverPower(_ n: Int) -> Double {
        let coefficients = [-2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3,
                            8.4175084175084175084e-4, -5.952380952380952381e-4, 7.9365079365079365079e-4,
                            -2.7777777777777777778e-3, 8.3333333333333333333e-2]
        let rn = 1 / Double(n)
        var series = 0.0
        for c in coefficients { series = series * (rn / Double(n)) + c }  // Horner in 1/n^2
        return log(Double(n)) / 2 - Double(n) + log(2 * Double.pi) / 2 + rn * series
    }

    static let scaleUp = Float80(sign: .plus, exponent: 128, significand: 1)
    static let scaleDown = Float80(sign: .plus, exponent: -128, significand: 1)

    /// P(D_n <= d) by Durbin's matrix method, computed as Marsaglia, Tsang & Wang (2003): the
    /// (k, k) entry of H^n times n!/n^n, with H the m x m matrix of their paper, powers by squaring,
    /// and a power-of-two exponent carried separately. Extended precision (Float80) throughout.
    static func durbinMatrix(n: Int, d: Double) -> Double {
        if d >= 1 { return 1 }
        let nd = Double(n) * d
        if nd <= 0.5 { return 0 }
        let k = Int(nd.rounded(.up))
        let h = Float80(Double(k) - nd)
        let m = 2 * k - 1
        var H = [Float80](repeating: 0, count: m * m)
        var v = [Float80](repeating: 0, count: m)
        var w = [Float80](repeating: 0, count: m)
        var factorial: Float80 = 1
        var hPower: Float80 = 1
        for j in 1...m {
            w[j - 1] = factorial
            factorial /= Float80(j)
            hPower *= h
            v[j - 1] = (1 - hPower) * factorial
        }
        let tt = pow(max(2 * h - 1, 0), Float80(m)) - 2 * pow(h, Float80(m))
        v[m - 1] = (1 + tt) * factorial
        for i in 1..<m {
            for r in (i - 1)..<m { H[r * m + i] = w[r - i + 1] }
        }
        for r in 0..<m { H[r * m] = v[r] }
        for c in 0..<m { H[(m - 1) * m + c] = v[m - 1 - c] }

        func multiply(_ a: [Float80], _ b: [Float80]) -> [Float80] {
            var out = [Float80](repeating: 0, count: m * m)
            for i in 0..<m {
                for l in 0..<m {
                    let x = a[i * m + l]
                    if x == 0 { continue }
                    for j in 0..<m { out[i * m + j] += x * b[l * m + j] }
                }
            }
            return out
        }
        var result = [Float80](repeating: 0, count: m * m)
        for i in 0..<m { result[i * m + i] = 1 }
        var exponent = 0, hExponent = 0
        var remaining = n
        while remaining > 0 {
            if remaining % 2 == 1 {
                result = multiply(result, H)
                exponent += hExponent
            }
            H = multiply(H, H)
            hExponent *= 2
            if abs(H[(k - 1) * m + (k - 1)]) > scaleUp {
                for i in 0..<(m * m) { H[i] /= scaleUp }
                hExponent += 128
            }
            remaining /= 2
        }
        var p = result[(k - 1) * m + (k - 1)]
        for i in 1...n {
            p = Float80(i) * p / Float80(n)
            if abs(p) < scaleDown {
                p *= scaleUp
                exponent -= 128
            }
        }
        return Double(exponent != 0 ? scalbn(p, exponent) : p)
    }

    /// P(D_n <= x) by Pomeranz's recursion (1974), as Simard & L'Ecuyer present it: two rows of
    /// coefficients convolved with powers of g/n, 2g/n or (1 - 2g)/n, rescaled by 2^128 when small.
    static func pomeranz(n: Int, x: Double) -> Double {
        let t = Double(n) * x
        let ll = Int(t.rounded(.down))
        let f = t - Double(ll)
        let g = min(f, 1 - f)
        let ceilF = f > 0 ? 1 : 0
        let roundF = f > 0.5 ? 1 : 0
        let powers = 2 * (ll + 1)
        var gPower = [Double](repeating: 1, count: powers)
        var twoGPower = [Double](repeating: 1, count: powers)
        var oneMinusTwoGPower = [Double](repeating: 1, count: powers)
        let nd = Double(n)
        for m in 1..<powers {
            gPower[m] = gPower[m - 1] * (g / nd) / Double(m)
            twoGPower[m] = twoGPower[m - 1] * (2 * g / nd) / Double(m)
            oneMinusTwoGPower[m] = oneMinusTwoGPower[m - 1] * ((1 - 2 * g) / nd) / Double(m)
        }
        func bounds(_ i: Int) -> (Int, Int) {
            var j1: Int, j2: Int
            if i == 0 {
                (j1, j2) = (-ll - ceilF - 1, ll + ceilF - 1)
            } else {
                let half = (i + 1) / 2, odd = (i + 1) % 2 == 0
                if odd {
                    if half == n + 1 {
                        (j1, j2) = (n - ll - ceilF - 1, n + ll + ceilF - 1)
                    } else {
                        (j1, j2) = (half - 1 - ll - roundF - 1, half + ll - 1 + ceilF - 1)
                    }
                } else {
                    (j1, j2) = (half - 1 - ll - 1, half + ll + roundF - 1)
                }
            }
            return (max(j1 + 2, 0), min(j2, n))
        }
        var previous = [Double](repeating: 0, count: powers)
        var current = [Double](repeating: 0, count: powers)
        current[0] = 1
        var previousStart = 0, currentStart = 0
        var exponent = 0
        var (j1, j2) = bounds(0)
        for i in 1...(2 * n + 1) {
            let k1 = j1
            swap(&previous, &current)
            swap(&previousStart, &currentStart)
            for c in 0..<current.count { current[c] = 0 }
            (j1, j2) = bounds(i)
            let p = (i == 1 || i == 2 * n + 1) ? gPower : (i % 2 == 1 ? twoGPower : oneMinusTwoGPower)
            let length = j2 - k1 + 1
            if length > 0 {
                // the full convolution of previous[k1 - start ..< +length] with p[0 ..< length],
                // entries j1 - k1 ..< j2 - k1 + 1
                let offset = k1 - previousStart
                let first = j1 - k1, count = j2 - j1 + 1
                var largest = 0.0
                for o in 0..<count {
                    let index = first + o
                    var sum = 0.0
                    for a in max(0, index - (length - 1))...min(index, length - 1) {
                        sum += previous[offset + a] * p[index - a]
                    }
                    current[o] = sum
                    largest = max(largest, sum)
                }
                if largest > 0 && largest < Double(scaleDown) {
                    for o in 0..<current.count { current[o] *= Double(scaleUp) }
                    exponent -= 128
                }
                currentStart = previousStart + j1 - k1
            }
        }
        var answer = current[n - currentStart]
        for m in 1...n {
            if abs(answer) > Double(scaleUp) {
                answer *= Double(scaleDown)
                exponent += 128
            }
            answer *= Double(m)
        }
        return exponent != 0 ? scalbn(answer, exponent) : answer
    }

    /// P(D_n <= x) by the Pelz-Good asymptotic series (1976), in the theta-function form that
    /// converges for small z = x sqrt(n).
    static func pelzGood(n: Int, x: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let z = Double(n).squareRoot() * x
        let z2 = z * z, z3 = z2 * z, z4 = z2 * z2, z6 = z4 * z2
        let pi2 = Double.pi * Double.pi, pi4 = pi2 * pi2, pi6 = pi4 * pi2
        let qlog = -pi2 / 8 / z2
        if qlog < -708 { return 0 }
        var q = exp(qlog)
        let k1a = -z2, k1b = pi2 / 4
        let k2a = 6 * z6 + 2 * z4, k2b = (2 * z4 - 5 * z2) * pi2 / 4, k2c = pi4 * (1 - 2 * z2) / 16
        let k3d = pi6 * (5 - 30 * z2) / 64, k3c = pi4 * (-60 * z2 + 212 * z4) / 16
        let k3b = pi2 * (135 * z4 - 96 * z6) / 4, k3a = -30 * z6 - 90 * pow(z, 8)
        var K = [0.0, 0.0, 0.0, 0.0]
        let maxK = Int((16 * z / Double.pi).rounded(.up))
        var k = maxK
        while k >= 1 {
            let m = Double(2 * k - 1)
            let m2 = m * m, m4 = m2 * m2, m6 = m4 * m2
            let qPower = pow(q, Double(8 * k))
            let coefficients = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6]
            for i in 0..<4 { K[i] = K[i] * qPower + coefficients[i] }
            k -= 1
        }
        let root2pi = (2 * Double.pi).squareRoot()
        let divisors = [z, 6 * z4, 72 * pow(z, 7), 6480 * pow(z, 10)]
        for i in 0..<4 { K[i] = K[i] * q * root2pi / divisors[i] }
        q = exp(-pi2 / 2 / z2)
        var extra2 = 0.0, extra3 = 0.0
        let root3z = 3.0.squareRoot() * z
        for kk in stride(from: maxK, through: 1, by: -1) {
            let ks = Double(kk) * Double(kk)
            let qp = pow(q, ks)
            extra2 += ks * qp
            let kpi = Double.pi * Double(kk)
            extra3 += (root3z + kpi) * (root3z - kpi) * ks * qp
        }
        K[2] += extra2 * pi2 * root2pi / (-36 * z3)
        K[3] += extra3 * pi2 * root2pi / (216 * z6)
        var sum = 0.0
        for i in 0..<4 { sum += K[i] / pow(Double(n), Double(i) / 2) }
        return sum
    }
}

/// The one-sided Kolmogorov-Smirnov (Smirnov) distribution: P(D+_n >= x), exactly, by the
/// Birnbaum-Tingey (1951) sum x * sum_{j=0}^{floor(n(1-x))} C(n,j) (1-x-j/n)^(n-j) (x+j/n)^(j-1),
/// whose terms are all positive; each is formed in log space with the binomial built incrementally.
public enum SmirnovDistribution {
    public static func survival(n: Int, x: Double) -> Double {
        precondition(n > 0, "the Smirnov distribution needs n > 0, got \(n)")
        if x.isNaN { return .nan }
        if x <= 0 { return 1 }
        if x >= 1 { return 0 }
        if n == 1 { return x <= 0 ? 1 : 1 - x }
        let nd = Double(n)
        // the last j with 1 - x - j/n > 0
        var last = Int((nd * (1 - x)).rounded(.down))
        if Double(last) >= nd * (1 - x) { last -= 1 }
        if last < 0 { return 0 }
        var logBinomial = 0.0
        var sum = 0.0
        var terms: [Double] = []
        terms.reserveCapacity(last + 1)
        var largest = -Double.infinity
        for j in 0...last {
            if j > 0 { logBinomial += log(Double(n - j + 1) / Double(j)) }
            let a = (nd - Double(j)) / nd - x  // 1 - x - j/n
            let b = x + Double(j) / nd
            let logTerm = logBinomial + (nd - Double(j)) * log(a) + Double(j - 1) * log(b)
            terms.append(logTerm)
            largest = max(largest, logTerm)
        }
        for t in terms { sum += exp(t - largest) }
        return min(max(x * sum * exp(largest), 0), 1)
    }
}
