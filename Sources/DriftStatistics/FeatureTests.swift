import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Kolmogorov-Smirnov tests of many features at once against a fixed reference.
///
/// Each reference column is sorted once, at construction (drift artifacts do this when fitted or
/// loaded). An exact p-value depends only on the sizes, the alternative and the integer
/// h = round(D * lcm(n1, n2)), so it is computed once per distinct h and kept in a table per batch
/// size: a batch of hundreds of features evaluates only the few values that have not occurred yet,
/// on all cores, and later batches of the same size only look them up. Results are identical to
/// `KolmogorovSmirnov.test` run feature by feature. Not thread-safe (the tables): one instance per
/// thread.
public final class FeatureKSTests {
    public let alternative: KolmogorovSmirnov.Alternative
    public let method: KolmogorovSmirnov.Method
    public let featureCount: Int
    /// Values per reference column (all columns have the same count).
    public let referenceSize: Int
    /// Sorted reference columns, one after another.
    private let sortedReference: [Double]
    /// Per batch size: p-value by h (NaN until computed).
    private var tables: [Int: [Double]] = [:]

    /// `columns[f]` holds feature f's reference values; all columns must have the same length.
    public init(reference columns: [[Double]], alternative: KolmogorovSmirnov.Alternative = .twoSided,
                method: KolmogorovSmirnov.Method = .auto) {
        precondition(!columns.isEmpty && !columns[0].isEmpty, "the reference needs at least one value per feature")
        precondition(columns.allSatisfy { $0.count == columns[0].count }, "every reference column needs the same number of values")
        featureCount = columns.count
        referenceSize = columns[0].count
        sortedReference = columns.flatMap { $0.sorted() }
        self.alternative = alternative
        self.method = method
    }

    /// Feature f's sorted reference values.
    public func reference(_ f: Int) -> ArraySlice<Double> { sortedReference[(f * referenceSize)..<((f + 1) * referenceSize)] }

    /// Forgets computed p-values (for benchmarks that time a cold start).
    public func resetCache() { tables.removeAll() }

    /// The exact p-value for every h in 0...lcm(referenceSize, batchSize), computed on all cores (nil
    /// when exact p-values do not apply to these sizes). Drift artifacts store it for the expected
    /// batch size, so checks of that size never compute one.
    public func pValueTable(batchSize n2: Int) -> [Double]? {
        let n1 = referenceSize
        let g = KolmogorovSmirnov.gcd(n1, n2)
        let lcm = (n1 / g) * n2
        // (a table is worth storing only for moderate sizes)
        guard KolmogorovSmirnov.usesExact(n1: n1, n2: n2, method: method), lcm <= 1_000_000 else { return nil }
        var table = [Double](repeating: -1, count: lcm + 1)
        let alternative = self.alternative
        table.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: lcm + 1) { h in
                out[h] = KolmogorovSmirnov.exact(n1: n1, n2: n2, g: g, d: Double(h) / Double(lcm), alternative: alternative)?.1 ?? -1
            }
        }
        return table
    }

    /// Installs a table made by `pValueTable(batchSize:)` (e.g. loaded from drift artifacts).
    public func install(table: [Double], batchSize n2: Int) {
        let g = KolmogorovSmirnov.gcd(referenceSize, n2)
        precondition(table.count == (referenceSize / g) * n2 + 1, "a p-value table for batch size \(n2) needs \((referenceSize / g) * n2 + 1) entries, got \(table.count)")
        // -1 marks sizes where the exact computation failed; keep them as "fall back to asymptotic"
        tables[n2] = table.map { $0 < 0 ? -1 : $0 }
    }

    /// One result per feature for a batch given as columns (`batch[f]` = feature f's values, all of
    /// the same length).
    public func test(batch: [[Double]]) -> [KolmogorovSmirnov.Result] {
        precondition(batch.count == featureCount, "batch has \(batch.count) features, the reference \(featureCount)")
        let n1 = referenceSize, n2 = batch[0].count
        precondition(n2 > 0 && batch.allSatisfy { $0.count == n2 }, "every batch column needs the same, non-zero number of values")
        let g = KolmogorovSmirnov.gcd(n1, n2)
        let lcm = (n1 / g) * n2
        // The exactness rule is KolmogorovSmirnov's; a table of p-values by h serves the features only
        // while it stays small (otherwise each feature goes through testSorted, the same rule).
        let tabled = KolmogorovSmirnov.usesExact(n1: n1, n2: n2, method: method) && lcm <= 10_000_000

        // Statistics on all cores; sorted batch columns kept for any p-value computed below.
        var sortedBatch = [Double](repeating: 0, count: featureCount * n2)
        var results = [KolmogorovSmirnov.Result](repeating: KolmogorovSmirnov.Result(statistic: 0, pValue: .nan, location: 0, sign: 1, method: .exact),
                                                 count: featureCount)
        let alternative = self.alternative
        sortedReference.withUnsafeBufferPointer { reference in
            sortedBatch.withUnsafeMutableBufferPointer { sorted in
                results.withUnsafeMutableBufferPointer { out in
                    nonisolated(unsafe) let reference = reference, sorted = sorted, out = out
                    let workers = min(Cores.online, featureCount), featureCount = self.featureCount
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        for f in stride(from: w, to: featureCount, by: workers) {
                            var column = UnsafeMutableBufferPointer(rebasing: sorted[(f * n2)..<((f + 1) * n2)])
                            _ = column.update(fromContentsOf: batch[f])
                            column.sort()
                            out[f] = KolmogorovSmirnov.statistic(UnsafeBufferPointer(rebasing: reference[(f * n1)..<((f + 1) * n1)]),
                                                                 UnsafeBufferPointer(column), alternative: alternative)
                        }
                    }
                }
            }
        }
        guard tabled else {
            return (0..<featureCount).map { f in
                KolmogorovSmirnov.testSorted(Array(reference(f)), Array(sortedBatch[(f * n2)..<((f + 1) * n2)]), alternative: alternative, method: method)
            }
        }
        var table = tables[n2] ?? [Double](repeating: .nan, count: lcm + 1)
        let hs = results.map { Int(KolmogorovSmirnov.roundHalfEven($0.statistic * Double(lcm))) }
        var firstFeature: [Int: Int] = [:]
        for (f, h) in hs.enumerated() where table[h].isNaN && firstFeature[h] == nil { firstFeature[h] = f }
        if !firstFeature.isEmpty {
            let work = Array(firstFeature)
            var computed = [Double](repeating: .nan, count: work.count)
            computed.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                DispatchQueue.concurrentPerform(iterations: work.count) { w in
                    let h = work[w].key
                    out[w] = KolmogorovSmirnov.exact(n1: n1, n2: n2, g: g, d: Double(h) / Double(lcm), alternative: alternative)?.1 ?? -1
                }
            }
            for (w, entry) in work.enumerated() { table[entry.key] = computed[w] }
            tables[n2] = table
        }
        for f in 0..<featureCount {
            let p = table[hs[f]]
            if p >= 0 {
                results[f].statistic = Double(hs[f]) / Double(lcm)
                results[f].pValue = p
                results[f].method = .exact
            } else {  // exact arithmetic failed for this h: scipy falls back to asymptotic
                results[f] = KolmogorovSmirnov.testSorted(Array(reference(f)), Array(sortedBatch[(f * n2)..<((f + 1) * n2)]),
                                                          alternative: alternative, method: .asymp)
            }
        }
        return results
    }
}

enum Cores {
    /// Online processors.
    static var online: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
}
