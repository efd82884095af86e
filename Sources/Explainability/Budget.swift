import Foundation
import Randomness

/// Which images of a set to explain (integrated gradients cost 50 or more passes per image).
public enum ExplanationBudget: Sendable, Equatable, CustomStringConvertible {
    case all
    /// A seeded random sample of this many.
    case sample(Int)
    /// The k images the model is least confident about.
    case leastConfident(Int)
    /// The first k images a drift report ranks as most outlying (paths from its `outliers`).
    case drift(report: String, count: Int)

    /// Parses `all`, `sample:N`, `least-confident:K` or `drift:<drift.json>[:K]` (K defaults to 10).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String) throws -> Int {
            guard let n = Int(s), n > 0 else { throw BudgetError(text: text) }
            return n
        }
        switch parts[0] {
        case "all" where parts.count == 1: self = .all
        case "sample" where parts.count == 2: self = .sample(try number(parts[1]))
        case "least-confident" where parts.count == 2: self = .leastConfident(try number(parts[1]))
        case "drift" where parts.count >= 2:
            if parts.count >= 3, let k = Int(parts.last!), k > 0 {
                self = .drift(report: parts[1..<(parts.count - 1)].joined(separator: ":"), count: k)
            } else {
                self = .drift(report: parts[1...].joined(separator: ":"), count: 10)
            }
        default: throw BudgetError(text: text)
        }
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .sample(let n): "sample:\(n)"
        case .leastConfident(let k): "least-confident:\(k)"
        case .drift(let report, let k): "drift:\(report):\(k)"
        }
    }

    /// Indices into `paths` to explain, given each image's confidence.
    public func select(paths: [String], confidences: [Double], seed: UInt64) throws -> [Int] {
        switch self {
        case .all:
            return Array(paths.indices)
        case .sample(let n):
            var g = SeededGenerator(seed: seed)
            var indices = Array(paths.indices)
            indices.shuffle(using: &g)
            return Array(indices.prefix(n)).sorted()
        case .leastConfident(let k):
            return Array(paths.indices.sorted { confidences[$0] < confidences[$1] }.prefix(k))
        case .drift(let report, let k):
            guard let data = FileManager.default.contents(atPath: report),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let outliers = object["outliers"] as? [[String: Any]] else {
                throw BudgetError(text: "drift:\(report)", reason: "'\(report)' is not a drift report (drift.json from `dropline drift check --out`)")
            }
            let ranked = outliers.compactMap { $0["path"] as? String }
            let position = Dictionary(paths.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            return Array(ranked.compactMap { position[$0] }.prefix(k))
        }
    }
}

public struct BudgetError: Error, CustomStringConvertible, Sendable {
    public var text: String
    public var reason: String = "use all, sample:N, least-confident:K or drift:<drift.json>[:K]"
    public var description: String { "invalid explanation budget '\(text)': \(reason)" }
}
