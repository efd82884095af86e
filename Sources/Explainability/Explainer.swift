import DroplineSupport
import Foundation
public import Imaging
public import Modeling
import NeuralNetwork
import Randomness
import JSONFiles
import SystemFiles
import Tensor

/// What the path starts from.
public enum Baseline: String, Sendable, Codable, CaseIterable {
    /// An all-black image (Captum's zero baseline, in pixel space).
    case black
    /// The image blurred with a gaussian of sigma = side / 16: keeps colours, removes detail.
    case blur
    /// Uniform noise pixels, seeded by the image's position in the run.
    case noise

    func image(for prepared: RGBImage, seed: UInt64) -> RGBImage {
        switch self {
        case .black:
            return RGBImage(width: prepared.width, height: prepared.height)
        case .blur:
            return prepared.blurred(sigma: Double(prepared.width) / 16)
        case .noise:
            var g = SeededGenerator(seed: seed)
            return RGBImage(width: prepared.width, height: prepared.height,
                            pixels: (0..<(prepared.pixels.count)).map { _ in UInt8(truncatingIfNeeded: g.next() >> 56) })
        }
    }
}

/// One explained image, as written to `<name>.json` beside its heatmap.
public struct Explanation: Codable, Sendable {
    public struct Region: Codable, Sendable {
        /// In the network input's pixels.
        public var x: Int
        public var y: Int
        public var width: Int
        public var height: Int
        /// Share of the total attribution magnitude.
        public var share: Double
    }

    public var path: String
    public var sha256: String?
    public var heatmap: String
    public var predicted: String
    public var confidence: Double
    public var target: String
    public var baseline: Baseline
    public var method: Quadrature
    public var steps: Int
    public var outputAtInput: Double
    public var outputAtBaseline: Double
    public var attributionSum: Double
    public var delta: Double
    public var relativeDelta: Double
    /// The 4x4 grid cells holding the most attribution, largest first (top 3).
    public var topRegions: [Region]
    /// The raw per-pixel attribution's file (`<stem>.attribution.safetensors`); absent in older explanations.
    public var attribution: String? = nil
    /// The sigma in model-input pixels of the smoothing the heatmap shows, and the smoothed value
    /// drawn at full colour (`AttributionView`); absent in older explanations.
    public var smoothingSigma: Double? = nil
    public var colourScale: Double? = nil
}

/// Explains a classifier's predictions with integrated gradients and writes heatmaps.
public final class Explainer {
    public let classifier: Classifier
    public let engine: IntegratedGradients
    public var steps = 50
    public var method: Quadrature = .gaussLegendre
    public var baseline: Baseline = .black
    /// Spend the path points where the images need them (`explainAll`): every image at `steps`, then
    /// the images whose relative completeness delta is still at or above `tolerance`, while the whole
    /// set stays within `passesPerImage` passes (path points) per image. A nested rule
    /// (`Quadrature.isNested`) is refined in rounds that add points to an image's (`refine`); another
    /// is attributed again once at twice the steps, worst first.
    public var adaptive = false
    public var tolerance = 0.01
    public var passesPerImage = 250

    public init(classifier: Classifier) throws {
        self.classifier = classifier
        engine = try IntegratedGradients(network: classifier.description.network, parameters: classifier.parameters)
    }

    /// Explains each image for its predicted class; writes `<stem>.png` (heatmap over the image) and
    /// `<stem>.json` into `folder`, which must exist.
    public func explain(_ image: RGBImage, path: String, sha256: String? = nil, stem: String, folder: String,
                        seed: UInt64 = 0) throws -> Explanation {
        let prepared = classifier.preprocessing.prepare(image)
        return try explain(prepared: prepared, prediction: try classifier.predict([prepared])[0], path: path, sha256: sha256, stem: stem,
                           folder: folder, seed: seed)
    }

    /// Explains an image already prepared at the model's input for its prediction there (a pipeline
    /// that predicted it already does not run the model on it again).
    public func explain(prepared: RGBImage, prediction: Prediction, path: String, sha256: String? = nil, stem: String, folder: String,
                        seed: UInt64 = 0) throws -> Explanation {
        try write(try attribution(prepared: prepared, target: prediction.index, seed: seed, steps: steps), prepared: prepared, prediction: prediction,
                  path: path, sha256: sha256, stem: stem, folder: folder)
    }

    /// One image to explain: prepared at the model's input, with its prediction.
    public struct Candidate: Sendable {
        public var prepared: RGBImage
        public var prediction: Prediction
        public var path: String
        public var sha256: String?
        public var seed: UInt64
        /// File names' stem; nil: its position in the set, "0001", "0002", ...
        public var stem: String?
        public init(prepared: RGBImage, prediction: Prediction, path: String, sha256: String?, seed: UInt64, stem: String? = nil) {
            self.stem = stem
            self.prepared = prepared
            self.prediction = prediction
            self.path = path
            self.sha256 = sha256
            self.seed = seed
        }
    }

    /// Explains a set of images, written as `0001.png`/`.json`, ... With `adaptive`, every image is
    /// first attributed at `steps`; then the images whose relative completeness delta is at or above
    /// `tolerance` get more points as long as the set's passes stay within `passesPerImage` per image:
    /// a fixed cost for the set, spent where the quadrature needs more points. With a nested rule that
    /// is `refine`; otherwise, worst first, an attribution again at twice the steps (kept when its
    /// delta is smaller). Which images are refined depends only on deltas, so the refinements run side
    /// by side like the first attributions.
    public func explainAll(_ candidates: [Candidate], folder: String, progress: (@Sendable () -> Void)? = nil) throws -> [Explanation] {
        let nested = adaptive && method.isNested
        var attributions = try attributions(candidates.indices.map { Job(index: $0, steps: steps, keepSum: nested) }, of: candidates,
                                            progress: progress)
        if nested {
            try refine(&attributions, of: candidates)
        } else if adaptive {
            let spare = max(0, (passesPerImage - steps) * candidates.count)
            let worstFirst = attributions.indices.filter { attributions[$0].relativeDelta >= tolerance }
                .sorted { (attributions[$0].relativeDelta, $1) > (attributions[$1].relativeDelta, $0) }
            let chosen = Array(worstFirst.prefix(spare / (2 * steps)))
            let finer = try self.attributions(chosen.map { Job(index: $0, steps: 2 * steps) }, of: candidates)
            for (index, attribution) in zip(chosen, finer) where attribution.relativeDelta < attributions[index].relativeDelta {
                attributions[index] = attribution
            }
        }
        return try zip(candidates, attributions).enumerated().map { n, pair in
            try write(pair.1, prepared: pair.0.prepared, prediction: pair.0.prediction, path: pair.0.path, sha256: pair.0.sha256,
                      stem: pair.0.stem ?? String(format: "%04d", n + 1), folder: folder)
        }
    }

    /// Refines attributions of a nested rule in rounds, each image's rule of n points to the rule of
    /// 2n + 1 that holds it, while its relative delta is at or above `tolerance` and the set's points
    /// stay within `passesPerImage` per image. In each round the images go by relative delta per point
    /// the refinement adds (the delta it is expected to halve, per unit of cost), largest first, and
    /// each one that still fits the points left is refined. A refinement is always kept: it is the
    /// better estimate of the same integral, whatever its delta. The choice depends only on the deltas,
    /// so one round's refinements run side by side.
    func refine(_ attributions: inout [Attribution], of candidates: [Candidate]) throws {
        var spare = passesPerImage * candidates.count - attributions.reduce(0) { $0 + $1.steps }
        while true {
            for index in attributions.indices where attributions[index].relativeDelta < tolerance { attributions[index].weightedSum = nil }
            let open = attributions.indices.filter { attributions[$0].relativeDelta >= tolerance }
                .map { ($0, attributions[$0].relativeDelta / Double(attributions[$0].steps + 1)) }
                .sorted { ($0.1, $1.0) > ($1.1, $0.0) }
            var chosen: [Int] = []
            for (index, _) in open where attributions[index].steps + 1 <= spare {
                chosen.append(index)
                spare -= attributions[index].steps + 1
            }
            guard !chosen.isEmpty else { break }
            let finer = try self.attributions(chosen.map { Job(index: $0, steps: 2 * attributions[$0].steps + 1, coarser: attributions[$0],
                                                               keepSum: true) }, of: candidates)
            for (index, attribution) in zip(chosen, finer) { attributions[index] = attribution }
        }
        for index in attributions.indices { attributions[index].weightedSum = nil }
    }

    /// One attribution to compute: a candidate, the rule's points, and for a nested rule the coarser
    /// attribution it refines.
    struct Job {
        var index: Int
        var steps: Int
        var coarser: Attribution? = nil
        var keepSum = false
    }

    /// How many images (or parts of one) are attributed at once, each on one core
    /// (`ParallelAttribution`); 1: one at a time on `engine`, with oneDNN's own threads.
    public var workers = CPUBudget.available
    private var parallel: ParallelAttribution?

    /// Attributions for `jobs` (a candidate and a step count each), in order; at most 8 per worker
    /// have their network inputs in memory at once.
    func attributions(_ jobs: [Job], of candidates: [Candidate], progress: (@Sendable () -> Void)? = nil) throws -> [Attribution] {
        func job(_ job: Job) -> ParallelAttribution.Job {
            let c = candidates[job.index], ends = path(prepared: c.prepared, seed: c.seed)
            return ParallelAttribution.Job(input: ends.input, baseline: ends.baseline, target: c.prediction.index, steps: job.steps,
                                           method: method, coarser: job.coarser, keepSum: job.keepSum)
        }
        guard workers > 1 else {
            return try jobs.map { j in
                defer { progress?() }
                return try engine.attribute(job(j))
            }
        }
        if parallel?.workers != workers {
            parallel = ParallelAttribution(network: classifier.description.network, parameters: classifier.parameters, workers: workers)
        }
        var results: [Attribution] = []
        for start in stride(from: 0, to: jobs.count, by: 8 * workers) {
            results += try parallel!.attribute(jobs[start..<min(jobs.count, start + 8 * workers)].map(job), progress: progress)
        }
        return results
    }

    /// The network inputs at the path's two ends, for an image prepared at the model's input.
    func path(prepared: RGBImage, seed: UInt64) -> (input: [Float], baseline: [Float]) {
        let p = classifier.preprocessing
        precondition(prepared.width == p.imageSize && prepared.height == p.imageSize, "the image is not prepared at the model's input")
        return (prepared.floats(layout: .chw, normalization: p.normalization),
                baseline.image(for: prepared, seed: seed).floats(layout: .chw, normalization: p.normalization))
    }

    /// The attribution of the predicted class `target` for a prepared image, on `engine`.
    public func attribution(prepared: RGBImage, target: Int, seed: UInt64, steps: Int) throws -> Attribution {
        let (input, base) = path(prepared: prepared, seed: seed)
        return try engine.attribute(input: input, baseline: base, target: target, steps: steps, method: method)
    }

    /// Writes into `folder`: `<stem>.png`, the attribution aggregated to regions over the image at a
    /// readable size (`AttributionView`); `<stem>.attribution.safetensors`, the raw per-pixel
    /// attribution (tensor `attribution`, float32 [height, width], the sum over channels); `<stem>.json`.
    func write(_ attribution: Attribution, prepared: RGBImage, prediction: Prediction, path: String, sha256: String?, stem: String,
               folder: String) throws -> Explanation {
        let (_, regions) = Self.heat(attribution.values, width: prepared.width, height: prepared.height)
        let perPixel = AttributionView.perPixel(attribution.values, width: prepared.width, height: prepared.height)
        let (view, scale) = AttributionView.render(perPixel: perPixel, prepared: prepared)
        let heatmapName = stem + ".png", rawName = stem + ".attribution.safetensors"
        try ImageEncoder.write(view, to: folder + "/" + heatmapName)
        let raw = try SafeTensors.encode(["attribution": Tensor(shape: [prepared.height, prepared.width], data: perPixel)],
                                         metadata: ["what": "integrated-gradients attribution summed over RGB channels, model input pixels",
                                                    "target": prediction.label])
        try AtomicFile.write(raw, to: folder + "/" + rawName)
        var explanation = Explanation(
            path: path, sha256: sha256, heatmap: heatmapName, predicted: prediction.label, confidence: prediction.confidence,
            target: prediction.label, baseline: baseline, method: attribution.method, steps: attribution.steps,
            outputAtInput: attribution.outputAtInput, outputAtBaseline: attribution.outputAtBaseline, attributionSum: attribution.sum,
            delta: attribution.delta, relativeDelta: attribution.relativeDelta, topRegions: regions)
        explanation.attribution = rawName
        explanation.smoothingSigma = Double(max(prepared.width, prepared.height)) * AttributionView.smoothingFraction
        explanation.colourScale = Double(scale)
        try SnakeCaseJSON.write(explanation, to: folder + "/" + stem + ".json")
        return explanation
    }

    /// Attribution magnitude summed over channels, scaled to [0, 1] by its 99th percentile, and the
    /// top 3 cells of a 4x4 grid by attribution mass.
    static func heat(_ values: [Float], width: Int, height: Int) -> ([Float], [Explanation.Region]) {
        let plane = width * height
        var heat = [Float](repeating: 0, count: plane)
        for c in 0..<3 { for i in 0..<plane { heat[i] += abs(values[c * plane + i]) } }
        let total = heat.reduce(0, +)
        let sorted = heat.sorted()
        let scale = max(sorted[min(plane - 1, Int(Double(plane) * 0.99))], 1e-12)
        let normalized = heat.map { min($0 / scale, 1) }
        var regions: [Explanation.Region] = []
        let cw = max(width / 4, 1), ch = max(height / 4, 1)
        for gy in 0..<4 {
            for gx in 0..<4 {
                let x0 = gx * cw, y0 = gy * ch
                let x1 = gx == 3 ? width : min(width, x0 + cw), y1 = gy == 3 ? height : min(height, y0 + ch)
                guard x1 > x0, y1 > y0 else { continue }
                var mass: Float = 0
                for y in y0..<y1 { for x in x0..<x1 { mass += heat[y * width + x] } }
                regions.append(.init(x: x0, y: y0, width: x1 - x0, height: y1 - y0, share: total > 0 ? Double(mass / total) : 0))
            }
        }
        regions.sort { $0.share > $1.share }
        return (normalized, Array(regions.prefix(3)))
    }
}
