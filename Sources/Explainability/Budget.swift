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
    /// The k images this run's own drift check ranks as most outlying: the batch-inference
    /// pipeline's default, chosen during its one pass over the batch (`outliers:K`).
    case outliers(Int)

    /// Parses `all`, `sample:N`, `least-confident:K`, `outliers:K` or `drift:<drift.json>[:K]` (K defaults to 10).
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
        case "outliers" where parts.count == 2: self = .outliers(try number(parts[1]))
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
        case .outliers(let k): "outliers:\(k)"
        }
    }

    /// Indices into `paths` to explain, given each image's confidence (and outlier score, for
    /// `outliers`): what `ExplanationPicker` keeps when offered the images one by one.
    public func select(paths: [String], confidences: [Double], outlierScores: [Double]? = nil, seed: UInt64) throws -> [Int] {
        var picker = try ExplanationPicker<Int>(budget: self, seed: seed)
        for i in paths.indices {
            picker.offer(index: i, path: paths[i], confidence: confidences[i], outlierScore: outlierScores?[i]) { i }
        }
        return try picker.chosen().map(\.payload)
    }
}

/// Chooses the images a budget explains while a batch streams past, keeping only the chosen ones'
/// payloads (at most the budget's count; every image for `all`): each image gets a key from what is
/// known of it alone (its confidence, its outlier score, its rank in a drift report, a seeded draw),
/// and the largest keys are kept, so the choice is the same whatever the order or chunking.
public struct ExplanationPicker<Payload> {
    let budget: ExplanationBudget
    let seed: UInt64
    /// For `drift:<report>`: each reported path's rank.
    let ranks: [String: Int]
    let capacity: Int?
    private(set) var kept: [(key: Double, index: Int, payload: Payload)] = []
    var missingScores = false

    public init(budget: ExplanationBudget, seed: UInt64) throws {
        self.budget = budget
        self.seed = seed
        switch budget {
        case .all: capacity = nil
        case .sample(let n), .leastConfident(let n), .outliers(let n): capacity = n
        case .drift(_, let n): capacity = n
        }
        if case .drift(let report, _) = budget {
            guard let data = FileManager.default.contents(atPath: report),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let outliers = object["outliers"] as? [[String: Any]] else {
                throw BudgetError(text: "drift:\(report)", reason: "'\(report)' is not a drift report (drift.json from `dropline drift check --out`)")
            }
            var ranks: [String: Int] = [:]
            for (rank, path) in outliers.compactMap({ $0["path"] as? String }).enumerated() where ranks[path] == nil { ranks[path] = rank }
            self.ranks = ranks
        } else {
            ranks = [:]
        }
    }

    /// Offers image `index` (its position among the usable images); `payload` is made only when it is kept.
    public mutating func offer(index: Int, path: String, confidence: Double, outlierScore: Double?, payload: () -> Payload) {
        let key: Double
        switch budget {
        case .all: key = 0
        case .sample:
            var g = SeededGenerator(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
            key = Double(g.next() >> 11)
        case .leastConfident: key = -confidence
        case .drift:
            guard let rank = ranks[path] else { return }
            key = -Double(rank)
        case .outliers:
            guard let outlierScore else { missingScores = true; return }
            key = outlierScore
        }
        if let capacity {
            if kept.count == capacity {
                guard let weakest = kept.indices.min(by: { Self.before(kept[$1], kept[$0]) }),
                      Self.before((key, index, ()), kept[weakest]) else { return }
                kept[weakest] = (key, index, payload())
                return
            }
        }
        kept.append((key, index, payload()))
    }

    /// The chosen images in the order they are explained: by index for `all` and `sample`, else
    /// most wanted first.
    public func chosen() throws -> [(index: Int, payload: Payload)] {
        if missingScores {
            throw BudgetError(text: budget.description, reason: "outliers:K explains what this run's drift check ranks as most outlying; run alone, use drift:<drift.json>[:K]")
        }
        switch budget {
        case .all, .sample: return kept.sorted { $0.index < $1.index }.map { ($0.index, $0.payload) }
        default: return kept.sorted { Self.before($0, $1) }.map { ($0.index, $0.payload) }
        }
    }

    /// Larger key first; on equal keys, the earlier image.
    static func before<A, B>(_ a: (key: Double, index: Int, payload: A), _ b: (key: Double, index: Int, payload: B)) -> Bool {
        a.key != b.key ? a.key > b.key : a.index < b.index
    }
}

public struct BudgetError: Error, CustomStringConvertible, Sendable {
    public var text: String
    public var reason: String = "use all, sample:N, least-confident:K, outliers:K or drift:<drift.json>[:K]"
    public var description: String { "invalid explanation budget '\(text)': \(reason)" }
}
