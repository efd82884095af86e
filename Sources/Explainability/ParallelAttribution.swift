public import NeuralNetwork
import Synchronization
import SystemFiles

/// Integrated gradients of several inputs side by side: at most `workers` parts at once, each on a
/// thread of its own with one oneDNN thread (`ComputeThreads`) and an engine of its own.
///
/// One image's passes (a few path points per pass on MobileNetV2 at 224) are too small to keep two
/// cores busy: every layer ends in a barrier and small layers leave a thread waiting. Measured with
/// `dropline explain` on 8 imagenette photos at 50 points with that model: one image at a time on
/// both cores 1.95 s of attribution, one image per core 1.5 s. Each image's points are split into
/// whole passes shared out among the workers, and the parts are added in order, so that a lone
/// attribution (one image at 400 points: 2.1 s alone, 1.0 s split) or an odd number of them does not
/// leave a core idle. Split or whole made no difference to the speed otherwise (16 photos, 63 points
/// each: 3.6-3.9 s either way).
///
/// Results do not depend on which worker computes which part; they can differ in the last bits from
/// `IntegratedGradients.attribute` on one engine (another summation order, another thread count).
public final class ParallelAttribution {
    public struct Job: Sendable {
        public var input: [Float]
        public var baseline: [Float]
        public var target: Int
        public var steps: Int
        public var method: Quadrature
        /// For a nested rule: the attribution of the rule with (steps - 1) / 2 points to refine. Only
        /// the points the rule of `steps` adds are computed.
        public var coarser: Attribution?
        /// Whether the attribution keeps its weighted gradient sum (`Attribution.weightedSum`), so
        /// that it can be refined in turn.
        public var keepSum: Bool
        public init(input: [Float], baseline: [Float], target: Int, steps: Int, method: Quadrature = .gaussLegendre,
                    coarser: Attribution? = nil, keepSum: Bool = false) {
            precondition(coarser == nil || (coarser!.weightedSum != nil && 2 * coarser!.steps + 1 == steps && method.isNested),
                         "a refinement needs the coarser nested rule's sum, at (steps - 1) / 2 points")
            self.input = input
            self.baseline = baseline
            self.target = target
            self.steps = steps
            self.method = method
            self.coarser = coarser
            self.keepSum = keepSum
        }

        /// The points to compute: the whole rule, or what the rule adds to the coarser one.
        var points: [(alpha: Double, weight: Double)] {
            guard let coarser else { return method.rule(steps: steps) }
            return method.refinement(of: coarser.steps).points
        }

        /// The attribution from the sums over `points`, in parts added in order.
        func attribution(_ parts: [[Double]], ends: (atInput: Double, atBaseline: Double)) -> Attribution {
            var sum = parts[0]
            for part in parts.dropFirst() { for i in sum.indices { sum[i] += part[i] } }
            if let coarser, let old = coarser.weightedSum {
                let keep = method.refinement(of: coarser.steps).keep
                for i in sum.indices { sum[i] += keep * old[i] }
            }
            var result = IntegratedGradients.attribution(sum, input: input, baseline: baseline, ends: ends, target: target,
                                                         steps: steps, method: method)
            if keepSum { result.weightedSum = sum }
            return result
        }
    }

    public let network: Network
    public let parameters: Parameters
    public let workers: Int
    /// Engines made when first needed, each used by one worker at a time; their executors are
    /// compiled on the worker's thread, for one oneDNN thread.
    private var engines: [Engine] = []

    /// `workers` nil: the CPUs this process may use (`CPUBudget`).
    public init(network: Network, parameters: Parameters, workers: Int? = nil) {
        self.network = network
        self.parameters = parameters
        self.workers = max(1, workers ?? CPUBudget.available)
    }

    /// The attributions of `jobs`, in order. `progress` is called once per job, when it is complete.
    public func attribute(_ jobs: [Job], progress: (@Sendable () -> Void)? = nil) throws -> [Attribution] {
        guard !jobs.isEmpty else { return [] }
        while engines.count < workers {
            engines.append(Engine(try IntegratedGradients(network: network, parameters: parameters)))
        }
        let rules = jobs.map(\.points)
        let parts = Self.parts(rules.map(\.count), workers: workers, pass: engines[0].ig.chunk)
        let free = Mutex(engines)
        let sums = Mutex(jobs.indices.map { j in [[Double]?](repeating: nil, count: parts.filter { $0.job == j }.count) })
        let ends = Mutex([(atInput: Double, atBaseline: Double)?](repeating: nil, count: jobs.count))
        try InFlight.forEach(parts.count, width: workers) { n in
            guard let engine = free.withLock({ $0.popLast() }) else { preconditionFailure("more workers than engines") }
            defer { free.withLock { $0.append(engine) } }
            ComputeThreads.limitCallingThread(to: 1)
            let part = parts[n], job = jobs[part.job]
            let sum = try engine.ig.partialSum(rules[part.job][part.points], input: job.input, baseline: job.baseline, target: job.target)
            if part.index == 0 {
                let e = try job.coarser.map { ($0.outputAtInput, $0.outputAtBaseline) }
                    ?? engine.ig.ends(input: job.input, baseline: job.baseline, target: job.target)
                ends.withLock { $0[part.job] = e }
            }
            let complete = sums.withLock { s in
                s[part.job][part.index] = sum
                return s[part.job].allSatisfy { $0 != nil }
            }
            if complete { progress?() }
        }
        let allSums = sums.withLock { $0 }, allEnds = ends.withLock { $0 }
        return jobs.indices.map { j in jobs[j].attribution(allSums[j].map { $0! }, ends: allEnds[j]!) }
    }

    /// Each job's points in `workers` contiguous parts of whole passes (`pass` points each), so that
    /// the workers end together whatever the number of jobs: with whole jobs, a refinement round of 5
    /// images on 2 workers left one idle for a whole image.
    public static func parts(_ steps: [Int], workers: Int, pass: Int) -> [(job: Int, index: Int, points: Range<Int>)] {
        let splits = workers
        var parts: [(job: Int, index: Int, points: Range<Int>)] = []
        for (j, n) in steps.enumerated() {
            let size = ((n + splits - 1) / splits + pass - 1) / pass * pass
            for (index, start) in stride(from: 0, to: n, by: size).enumerated() {
                parts.append((j, index, start..<min(n, start + size)))
            }
        }
        return parts
    }

    /// An engine handed to one worker at a time.
    final class Engine: @unchecked Sendable {
        let ig: IntegratedGradients
        init(_ ig: IntegratedGradients) { self.ig = ig }
    }
}
