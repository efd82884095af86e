public import Imaging
public import Modeling
import Randomness

/// How often a monitor flags drift on random batches of each drift stage: on the original stage
/// this is the false-alarm rate, on the others the detection rate.
public struct DriftEvaluation {
    public struct Row: Codable, Sendable {
        public var stage: String
        public var transform: String
        public var batches: Int
        public var flagged: Int
        public var rate: Double
        /// Flag rate per detector.
        public var detectorRates: [String: Double]
        public var medianSmallestAdjustedPValue: Double
    }

    public let monitor: DriftMonitor
    public var batches = 200
    public var batchSize = 40
    public var seed: UInt64 = 11
    public var stages = DriftStage.allCases

    public init(monitor: DriftMonitor) { self.monitor = monitor }

    /// Draws `batches` random batches (without replacement within a batch) from `images` per stage,
    /// transforms each image with the stage, and checks it.
    public func run(images: ImageCollection, progress: ((Int, Int) -> Void)? = nil) throws -> [Row] {
        precondition(images.images.count >= batchSize, "need at least \(batchSize) images, have \(images.images.count)")
        var rows: [Row] = []
        var done = 0
        for stage in stages {
            var generator = SeededGenerator(seed: seed &+ UInt64(DriftStage.allCases.firstIndex(of: stage)!))
            var flagged = 0
            var perDetector: [String: Int] = [:]
            var smallest: [Double] = []
            for b in 0..<batches {
                var indices = Array(images.images.indices)
                indices.shuffle(using: &generator)
                let chosen = indices.prefix(batchSize)
                let transformed = chosen.map { stage.apply(images.images[$0], using: &generator) }
                let batch = ImageCollection(items: chosen.map { images.items[$0] }, images: transformed)
                let report = try monitor.check(batch, name: "\(stage.rawValue)-\(b)")
                if report.drift { flagged += 1 }
                for d in report.detectors where d.drift { perDetector[d.name, default: 0] += 1 }
                smallest.append(report.detectors.map(\.minimumAdjustedPValue).min() ?? 1)
                done += 1
                progress?(done, batches * stages.count)
            }
            smallest.sort()
            rows.append(Row(stage: stage.rawValue, transform: stage.summary, batches: batches, flagged: flagged,
                            rate: Double(flagged) / Double(batches),
                            detectorRates: Dictionary(uniqueKeysWithValues: monitor.description.detectors.map { ($0, Double(perDetector[$0] ?? 0) / Double(batches)) }),
                            medianSmallestAdjustedPValue: smallest[smallest.count / 2]))
        }
        return rows
    }
}
