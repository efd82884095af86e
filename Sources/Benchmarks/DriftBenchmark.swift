import DriftStatistics
import DroplineSupport
import Foundation
import Randomness

/// `dropline bench drift`: two-sample Kolmogorov-Smirnov tests over K features (reference 400 vs
/// batch 40 per feature, as ../shared/PEERS.md measured scipy), with scipy timed in the same run:
/// its per-feature loop of `ks_2samp` and its vectorised `axis=0` call.
public struct DriftBenchmark {
    public struct Configuration: Sendable {
        public var featureCounts = [32, 128, 512]
        public var referenceSize = 400
        public var batchSize = 40
        public var rounds = 5
        public var pythonExecutable = "python3"
        public var log: @Sendable (String) -> Void = { _ in }
        public init() {}
    }

    public struct Case: Codable, Sendable {
        public var features: Int
        public var droplineMilliseconds: Double
        /// The same batch with the p-value table already built (later batches of the same size).
        public var droplineWarmMilliseconds: Double
        /// Sorting the reference columns, done once when drift artifacts are fitted or loaded.
        public var droplinePrepareMilliseconds: Double
        /// Building the exact p-value table for this batch size, done once by `drift fit`.
        public var droplineTableMilliseconds: Double
        public var scipyLoopMilliseconds: Double?
        public var scipyVectorizedMilliseconds: Double?
        public var ratioToScipyLoop: Double?
        public var ratioToScipyVectorized: Double?
        public var warmRatioToScipyLoop: Double?
        public var maxPValueDifference: Double?
        enum CodingKeys: String, CodingKey {
            case features
            case droplineMilliseconds = "dropline_ms"
            case droplineWarmMilliseconds = "dropline_warm_ms"
            case droplinePrepareMilliseconds = "dropline_prepare_reference_ms"
            case droplineTableMilliseconds = "dropline_fit_table_ms"
            case scipyLoopMilliseconds = "scipy_loop_ms"
            case scipyVectorizedMilliseconds = "scipy_axis0_ms"
            case ratioToScipyLoop = "ratio_to_scipy_loop"
            case ratioToScipyVectorized = "ratio_to_scipy_axis0"
            case warmRatioToScipyLoop = "warm_ratio_to_scipy_loop"
            case maxPValueDifference = "max_p_value_difference"
        }
    }

    public struct Report: Codable, Sendable {
        public var referenceSize: Int
        public var batchSize: Int
        public var cases: [Case]
        public var notes: [String]
    }

    static let script = #"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from scipy import stats
data = json.load(open(sys.argv[1])); rounds = int(sys.argv[2])
ref = np.array(data["reference"]).T; batch = np.array(data["batch"]).T   # samples x features
best_loop = best_vec = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    p = [stats.ks_2samp(ref[:, f], batch[:, f]).pvalue for f in range(ref.shape[1])]
    best_loop = min(best_loop, time.perf_counter() - t)
    t = time.perf_counter()
    stats.ks_2samp(ref, batch, axis=0)
    best_vec = min(best_vec, time.perf_counter() - t)
print(json.dumps({"loop_ms": best_loop * 1000, "axis0_ms": best_vec * 1000, "p": [float(x) for x in p]}))
"""#

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run() throws -> Report {
        let c = configuration
        var notes: [String] = []
        let scipy = (try? Pillow.run(c.pythonExecutable, ["-c", "import scipy"]))?.status == 0
        if !scipy { notes.append("scipy is not importable by \(c.pythonExecutable): no peer ratio (pip install scipy)") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-bench-drift-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var cases: [Case] = []
        for features in c.featureCounts {
            var g = SeededGenerator(seed: UInt64(features))
            let reference = (0..<features).map { _ in (0..<c.referenceSize).map { _ in g.nextGaussian() } }
            // a third of the features shifted, so p-values span the range
            let batch = (0..<features).map { f in (0..<c.batchSize).map { _ in g.nextGaussian() + (f % 3 == 0 ? 0.5 : 0) } }
            c.log("dropline: \(features) features")
            // Fitting sorts the reference columns once; each batch is then tested against them, here
            // with an empty p-value cache every round.
            var prepare = Double.infinity
            var tests = FeatureKSTests(reference: [[0]])
            for _ in 0..<c.rounds {
                let start = Stopwatch.now()
                tests = FeatureKSTests(reference: reference)
                prepare = min(prepare, Stopwatch.now() - start)
            }
            var best = Double.infinity
            var pValues: [Double] = []
            for _ in 0..<c.rounds {
                tests.resetCache()
                let start = Stopwatch.now()
                let results = tests.test(batch: batch)
                _ = MultipleTesting.adjust(results.map(\.pValue), .bonferroni)
                best = min(best, Stopwatch.now() - start)
                pValues = results.map(\.pValue)
            }
            var tableTime = Double.infinity
            for _ in 0..<max(1, c.rounds / 2) {
                let start = Stopwatch.now()
                _ = tests.pValueTable(batchSize: c.batchSize)
                tableTime = min(tableTime, Stopwatch.now() - start)
            }
            var warm = Double.infinity
            for _ in 0..<c.rounds {  // as drift artifacts run it: the table for this batch size stored at fit
                let start = Stopwatch.now()
                _ = MultipleTesting.adjust(tests.test(batch: batch).map(\.pValue), .bonferroni)
                warm = min(warm, Stopwatch.now() - start)
            }
            var row = Case(features: features, droplineMilliseconds: best * 1000, droplineWarmMilliseconds: warm * 1000,
                           droplinePrepareMilliseconds: prepare * 1000, droplineTableMilliseconds: tableTime * 1000,
                           scipyLoopMilliseconds: nil, scipyVectorizedMilliseconds: nil,
                           ratioToScipyLoop: nil, ratioToScipyVectorized: nil, warmRatioToScipyLoop: nil, maxPValueDifference: nil)
            if scipy {
                c.log("scipy: \(features) features")
                let path = scratch + "/data.json"
                try JSONSerialization.data(withJSONObject: ["reference": reference, "batch": batch]).write(to: URL(fileURLWithPath: path))
                let out = try Pillow.run(c.pythonExecutable, ["-c", Self.script, path, String(c.rounds)])
                if out.status == 0, let line = out.output.split(separator: "\n").last,
                   let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let loop = json["loop_ms"] as? Double, let vec = json["axis0_ms"] as? Double, let p = json["p"] as? [Double] {
                    row.scipyLoopMilliseconds = loop
                    row.scipyVectorizedMilliseconds = vec
                    row.ratioToScipyLoop = loop / row.droplineMilliseconds
                    row.warmRatioToScipyLoop = loop / row.droplineWarmMilliseconds
                    row.ratioToScipyVectorized = vec / row.droplineMilliseconds
                    row.maxPValueDifference = zip(p, pValues).map { abs($0 - $1) }.max()
                }
            }
            cases.append(row)
        }
        notes.append("Dropline per batch: columns sorted at load and the exact p-value table for the batch size stored by drift fit (both timed apart); 'first batch' is a batch of a size with no stored table, computing the p-values it needs; Bonferroni correction included. scipy's loop calls ks_2samp(method='auto') per feature")
        return Report(referenceSize: c.referenceSize, batchSize: c.batchSize, cases: cases, notes: notes)
    }
}
