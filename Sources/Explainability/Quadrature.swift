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
    /// The trapezoid rule in u where alpha = (1 - cos(pi u)) / 2: n points at u = j / (n + 1),
    /// weights proportional to sin(pi u) and summing to 1. Its points are as dense near the path's two
    /// ends as Gauss-Legendre's, and the rules nest: the rule of 2n + 1 points holds every point of the
    /// rule of n (`refinement(of:)`), so an image refined after its first attribution keeps the passes
    /// it had. On the kinked integrand of a ReLU6 network the two are equally accurate at equal points
    /// (docs/monitoring.md).
    case cosineTrapezoid = "cosine_trapezoid"

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
        case .cosineTrapezoid:
            let total = Self.sineSum(n)
            return (1...n).map { j in
                let u = Double(j) / Double(n + 1)
                return ((1 - cos(Double.pi * u)) / 2, sin(Double.pi * u) / total)
            }
        }
    }

    /// Whether the rule of 2n + 1 points holds the rule of n's points (`refinement(of:)`).
    public var isNested: Bool { self == .cosineTrapezoid }

    /// For a nested rule: the points the rule of 2n + 1 adds to the rule of n, with their weights in
    /// the finer rule, and the factor that turns a weighted sum over the rule of n into that sum's part
    /// of the finer rule (the old points' weights, which shrink as the weights still sum to 1).
    public func refinement(of n: Int) -> (points: [(alpha: Double, weight: Double)], keep: Double) {
        precondition(isNested, "\(rawValue) rules do not nest")
        let finer = rule(steps: 2 * n + 1)
        return (stride(from: 0, to: finer.count, by: 2).map { finer[$0] }, Self.sineSum(n) / Self.sineSum(2 * n + 1))
    }

    /// sin(pi j / (n + 1)) summed over j = 1...n, which is cot(pi / (2 (n + 1))).
    private static func sineSum(_ n: Int) -> Double { 1 / tan(Double.pi / (2 * Double(n + 1))) }
}
