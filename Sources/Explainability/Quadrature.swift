#if canImport(Glibc)
import Glibc
#endif

/// Points and weights on [0, 1] for integrating along the path from baseline to input.
public enum Quadrature: String, Sendable, Codable, CaseIterable {
    /// Gauss-Legendre (Captum's default): exact for polynomials of degree 2n - 1.
    case gaussLegendre = "gausslegendre"
    /// Captum's riemann_trapezoid: n equally spaced points from 0 to 1, step sizes 1/n with the two
    /// ends halved. The weights sum to (n - 1)/n, not 1, so the attributions carry a 1/n bias (2% at
    /// 50 steps) that shows in the completeness delta; kept as Captum defines it, for comparability.
    case riemannTrapezoid = "riemann_trapezoid"

    /// (alpha, weight) pairs.
    public func rule(steps n: Int) -> [(alpha: Double, weight: Double)] {
        precondition(n >= 2, "integration needs at least 2 steps, got \(n)")
        switch self {
        case .riemannTrapezoid:
            return (0..<n).map { k in
                let w = (k == 0 || k == n - 1) ? 0.5 / Double(n) : 1 / Double(n)
                return (Double(k) / Double(n - 1), w)
            }
        case .gaussLegendre:
            // Roots of the Legendre polynomial P_n by Newton's method from Chebyshev-like starting
            // points, weights 2 / ((1 - x^2) P_n'(x)^2); mapped from [-1, 1] to [0, 1].
            var rule: [(Double, Double)] = []
            for i in 1...n {
                var x = cos(Double.pi * (Double(i) - 0.25) / (Double(n) + 0.5))
                var derivative = 0.0
                for _ in 0..<100 {
                    var p0 = 1.0, p1 = x
                    for k in 2...max(n, 2) {
                        let p2 = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k)
                        p0 = p1
                        p1 = p2
                    }
                    if n == 1 { p1 = x; p0 = 1 }
                    derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
                    let step = p1 / derivative
                    x -= step
                    if abs(step) < 1e-15 { break }
                }
                let weight = 2 / ((1 - x * x) * derivative * derivative)
                rule.append(((x + 1) / 2, weight / 2))
            }
            return rule.sorted { $0.0 < $1.0 }
        }
    }
}
