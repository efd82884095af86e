#if canImport(Glibc)
import Glibc
#endif

/// The population stability index: how far a batch's distribution over bins moved from the
/// reference's, PSI = sum (b - r) ln(b / r) over bins, with bin edges at the reference's quantiles
/// (so each bin holds an equal share of the reference). Conventional tiers: below 0.1 stable, 0.1 to
/// 0.25 moderate shift, 0.25 and above major shift.
public enum PopulationStability {
    public enum Tier: String, Sendable, Codable {
        case stable, moderate, major
        public init(psi: Double) {
            self = psi < 0.1 ? .stable : (psi < 0.25 ? .moderate : .major)
        }
    }

    /// Interior bin edges at the reference's quantiles (bins - 1 edges, deduplicated).
    public static func edges(reference: [Double], bins: Int = 10) -> [Double] {
        precondition(bins >= 2 && !reference.isEmpty, "PSI needs at least 2 bins and a reference, got \(bins) bins, \(reference.count) values")
        let sorted = reference.sorted()
        var edges: [Double] = []
        for k in 1..<bins {
            // linear interpolation between order statistics (numpy's default quantile)
            let position = Double(k) / Double(bins) * Double(sorted.count - 1)
            let low = Int(position.rounded(.down)), high = min(low + 1, sorted.count - 1)
            let value = sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
            if edges.last.map({ value > $0 }) ?? true { edges.append(value) }
        }
        return edges
    }

    /// Shares of `values` per bin (value <= edge goes left), with empty bins floored at `floor`.
    public static func shares(_ values: [Double], edges: [Double], floor: Double = 1e-4) -> [Double] {
        var counts = [Double](repeating: 0, count: edges.count + 1)
        for v in values {
            var lo = 0, hi = edges.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if v <= edges[mid] { hi = mid } else { lo = mid + 1 }
            }
            counts[lo] += 1
        }
        let total = Double(max(values.count, 1))
        return counts.map { max($0 / total, floor) }
    }

    /// PSI of `batch` against reference shares over the same edges.
    public static func index(batch: [Double], referenceShares: [Double], edges: [Double]) -> Double {
        let b = shares(batch, edges: edges)
        precondition(b.count == referenceShares.count, "reference has \(referenceShares.count) bins, edges give \(b.count)")
        var psi = 0.0
        for (x, r) in zip(b, referenceShares) { psi += (x - r) * log(x / r) }
        return psi
    }
}
