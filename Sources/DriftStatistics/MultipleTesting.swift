/// Corrections for testing many features at once.
public enum MultipleTesting {
    public enum Correction: String, Sendable, Codable {
        /// Family-wise error control: p * m, capped at 1.
        case bonferroni
        /// False-discovery-rate control (Benjamini & Hochberg 1995): step-up adjusted p-values,
        /// as `scipy.stats.false_discovery_control(p, method="bh")`.
        case benjaminiHochberg = "fdr_bh"
        case none
    }

    /// Adjusted p-values, in the input order.
    public static func adjust(_ p: [Double], _ correction: Correction) -> [Double] {
        let m = p.count
        guard m > 0 else { return [] }
        switch correction {
        case .none:
            return p
        case .bonferroni:
            return p.map { min($0 * Double(m), 1) }
        case .benjaminiHochberg:
            let order = p.indices.sorted { p[$0] < p[$1] }
            var adjusted = [Double](repeating: 0, count: m)
            var running = 1.0
            for rank in stride(from: m, through: 1, by: -1) {
                let index = order[rank - 1]
                running = min(running, p[index] * Double(m) / Double(rank))
                adjusted[index] = min(running, 1)
            }
            return adjusted
        }
    }
}
