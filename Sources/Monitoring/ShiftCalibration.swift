public import DroplineSupport
import Foundation
public import Imaging
public import Modeling
public import Randomness
import SystemFiles

/// Accuracy under shift, learned from shifts made on purpose: the correction that calibrated
/// confidence alone cannot make.
///
/// A calibrated model's mean confidence estimates its accuracy on images like its held-out ones, but on
/// images unlike them a model is confidently wrong (on heavy noise, confidence said 61% where the truth
/// was 26%). This follows the meta-dataset approach of Deng & Zheng ("Are labels always necessary for
/// classifier accuracy evaluation?", CVPR 2021) and Guillory et al. ("Predicting with confidence on
/// unseen distributions", ICCV 2021, who regress accuracy on the change in confidence): at training,
/// the labelled held-out images are shifted in many seeded, random ways (compositions of flips,
/// rotations, blur, lower resolution, brightness, contrast and noise, at random strengths), and on each
/// shifted set the model's accuracy is measured beside its mean calibrated confidence, which a served
/// batch also has. Where those two disagree is learned as a monotone map from mean confidence to
/// accuracy: isotonic regression (pool-adjacent-violators) through the sets, linear between them,
/// towards chance (confidence 1/classes, accuracy 1/classes) below the first knot, and with slope 1
/// above the last. A least-squares line was tried first and missed the mild shifts (its slope,
/// forced by the heavy ones, pulled every estimate down); a monotone map needs no shape.
///
/// It is kept only when it predicts the sets better than confidence alone, each set left out in turn,
/// so it never makes the estimate worse on the kinds of shift it was tested on. Its limit: a kind of
/// shift none of the sets resembles, on which the model is as sure as on its own images, still goes
/// unseen (docs/monitoring.md).
public struct ShiftCalibration: Codable, Sendable, Equatable {
    public var method = "isotonic_meta_sets"
    /// The map's knots, by non-decreasing confidence and accuracy (a pooled block is two knots at
    /// the same accuracy).
    public var knots: [Knot]
    /// The chance level, 1 / classes: the accuracy of a model that cannot tell the classes apart.
    public var chance: Double
    /// The sets it was fitted on, and how well the map and confidence alone predicted them, left out
    /// one at a time (mean absolute error, as a fraction).
    public var sets: [MetaSet]
    public var leaveOneOutError: Double
    public var confidenceOnlyError: Double

    public struct Knot: Codable, Sendable, Equatable {
        public var confidence: Double
        public var accuracy: Double

        public init(confidence: Double, accuracy: Double) {
            self.confidence = confidence
            self.accuracy = accuracy
        }
    }

    /// One shifted copy of held-out images.
    public struct MetaSet: Codable, Sendable, Equatable {
        /// The shifts applied, in order, e.g. "rotation 40°, noise 22"; "none" for a plain subsample.
        public var shift: String
        public var images: Int
        public var accuracy: Double
        public var confidence: Double

        public init(shift: String, images: Int, accuracy: Double, confidence: Double) {
            self.shift = shift
            self.images = images
            self.accuracy = accuracy
            self.confidence = confidence
        }
    }

    /// The accuracy expected at mean calibrated confidence `confidence`.
    public func estimate(confidence c: Double) -> Double {
        Self.map(knots, chance: chance, at: c)
    }

    public static func map(_ knots: [Knot], chance: Double, at c: Double) -> Double {
        guard let first = knots.first, let last = knots.last else { return c }
        if c >= last.confidence { return min(1, last.accuracy + (c - last.confidence)) }
        if c <= first.confidence {
            guard first.confidence > chance, c > chance else { return min(first.accuracy, max(c, 0)) }
            return chance + (first.accuracy - chance) * (c - chance) / (first.confidence - chance)
        }
        for (a, b) in zip(knots, knots.dropFirst()) where c <= b.confidence {
            return b.confidence > a.confidence ? a.accuracy + (b.accuracy - a.accuracy) * (c - a.confidence) / (b.confidence - a.confidence) : b.accuracy
        }
        return last.accuracy
    }

    /// Pool-adjacent-violators: the non-decreasing least-squares fit of accuracy on confidence. Each
    /// pooled block is flat from its lowest to its highest confidence, as scikit-learn's
    /// IsotonicRegression predicts (pinned by scripts/make_isotonic_fixtures.py).
    public static func isotonic(_ sets: [MetaSet]) -> [Knot] {
        var blocks: [(low: Double, high: Double, sum: Double, count: Double)] = []
        for s in sets.sorted(by: { $0.confidence != $1.confidence ? $0.confidence < $1.confidence : $0.accuracy < $1.accuracy }) {
            blocks.append((s.confidence, s.confidence, s.accuracy, 1))
            while blocks.count > 1, blocks[blocks.count - 2].sum / blocks[blocks.count - 2].count > blocks[blocks.count - 1].sum / blocks[blocks.count - 1].count {
                let b = blocks.removeLast()
                blocks[blocks.count - 1].high = b.high
                blocks[blocks.count - 1].sum += b.sum
                blocks[blocks.count - 1].count += b.count
            }
        }
        return blocks.flatMap { b -> [Knot] in
            let accuracy = b.sum / b.count
            return b.high > b.low ? [Knot(confidence: b.low, accuracy: accuracy), Knot(confidence: b.high, accuracy: accuracy)]
                                  : [Knot(confidence: b.low, accuracy: accuracy)]
        }
    }

    /// Fits the map on `sets` for a model of `classes` classes; nil when it does not beat confidence
    /// alone with each set left out in turn, or with too few sets to tell.
    public static func fit(_ sets: [MetaSet], classes: Int) -> ShiftCalibration? {
        guard sets.count >= 6, classes >= 2 else { return nil }
        let chance = 1 / Double(classes)
        var mapped = 0.0, confidence = 0.0
        for i in sets.indices {
            var rest = sets
            let out = rest.remove(at: i)
            mapped += abs(map(isotonic(rest), chance: chance, at: out.confidence) - out.accuracy)
            confidence += abs(out.confidence - out.accuracy)
        }
        mapped /= Double(sets.count)
        confidence /= Double(sets.count)
        guard mapped < confidence else { return nil }
        return ShiftCalibration(knots: isotonic(sets), chance: chance, sets: sets, leaveOneOutError: mapped, confidenceOnlyError: confidence)
    }

    /// How many shifted sets are made, and of how many held-out images each (drawn without
    /// replacement): 32 x 100 classifications and the shifts, on 2 cores about 8 s for MobileNetV2 at 224
    /// px (the monitoring stage of an imagenette-mini training took 10.2 s with them, 1.8 s before).
    public static let setCount = 32
    public static let imagesPerSet = 100
    /// Seed of the shifts and subsamples, so that a training is reproducible.
    public static let seed: UInt64 = 0x5EED_5E75

    /// Makes the shifted sets from labelled held-out `images` (at the monitoring side), measures
    /// them with `classifier` at `temperature`, and fits the map. The first two sets are unshifted
    /// subsamples, measured from `probabilities`, the classifier's softmax on `images` (rows of
    /// `classes` values), which the caller has already computed.
    public static func learn(images: [RGBImage], labels: [Int], probabilities held: [Double], classifier: Classifier, temperature: Double,
                             progress: (any ProgressReporter)? = nil) throws -> ShiftCalibration? {
        let k = classifier.classes.count
        precondition(images.count == labels.count && held.count == images.count * k,
                     "\(images.count) images for \(labels.count) labels and \(held.count / max(k, 1)) rows of probabilities")
        guard images.count >= 20 else { return nil }
        var generator = SeededGenerator(seed: seed)
        var sets: [MetaSet] = []
        for index in 0..<setCount {
            var order = Array(images.indices)
            order.shuffle(using: &generator)
            let chosen = Array(order.prefix(imagesPerSet))
            let shift = index < 2 ? nil : SyntheticShift.random(using: &generator)
            // each image's randomness from its own seed, drawn in order, so the sets do not depend on
            // how the images are spread over the cores
            let seeds = chosen.map { _ in generator.next() }
            let probabilities: [Double]
            if let shift {
                var shifted = chosen.map { images[$0] }
                shifted.withUnsafeMutableBufferPointer { buffer in
                    nonisolated(unsafe) let out = buffer
                    Parallel.forEach(chosen.count) { i in
                        var own = SeededGenerator(seed: seeds[i])
                        out[i] = shift.apply(to: out[i], using: &own)
                    }
                }
                probabilities = try DriftMonitor.softmax(shifted, classifier: classifier)
            } else {
                probabilities = chosen.flatMap { held[($0 * k)..<(($0 + 1) * k)] }
            }
            let correct = chosen.indices.filter { Calibration.isRight(probabilities, row: $0, classes: k, label: labels[chosen[$0]]) }.count
            let confidence = Calibration.confidences(probabilities, classes: k, temperature: temperature)
            sets.append(MetaSet(shift: shift?.description ?? "none", images: chosen.count, accuracy: Double(correct) / Double(chosen.count),
                                confidence: confidence.reduce(0, +) / Double(confidence.count)))
            progress?.advance(by: 1, note: sets.last!.shift)
        }
        progress?.finish()
        return fit(sets, classes: classifier.classes.count)
    }
}

/// A random composition of image shifts at random strengths, drawn from a seeded generator: the
/// shifted sets the accuracy map is fitted on. Strengths are relative to the image's side where they
/// depend on it (blur, resolution), so they mean the same at 64 and at 224 px.
public struct SyntheticShift: Sendable, CustomStringConvertible {
    public enum Step: Sendable, Equatable {
        case flip
        case rotation(maxDegrees: Double)
        case blur(sigmaPerSide: Double)
        case lowResolution(scale: Double)
        case brightness(Double)
        case contrast(Double)
        case noise(sigma: Double)
    }

    public var steps: [Step]

    public init(steps: [Step]) {
        self.steps = steps
    }

    /// Each kind of shift is drawn with probability 0.35 (at least one), in a fixed order: geometry,
    /// then optics, then exposure, then sensor noise.
    public static func random(using generator: inout SeededGenerator) -> SyntheticShift {
        func uniform(_ range: ClosedRange<Double>) -> Double { range.lowerBound + generator.nextUnitDouble() * (range.upperBound - range.lowerBound) }
        var steps: [Step] = []
        while steps.isEmpty {
            if generator.nextUnitDouble() < 0.35 { steps.append(.flip) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.rotation(maxDegrees: uniform(5...90))) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.blur(sigmaPerSide: uniform(0.002...0.02))) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.lowResolution(scale: uniform(0.12...0.6))) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.brightness(uniform(0.35...1.6))) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.contrast(uniform(0.3...1.5))) }
            if generator.nextUnitDouble() < 0.35 { steps.append(.noise(sigma: uniform(3...50))) }
        }
        return SyntheticShift(steps: steps)
    }

    public func apply(to image: RGBImage, using generator: inout SeededGenerator) -> RGBImage {
        var out = image
        let side = Double(min(image.width, image.height))
        for step in steps {
            switch step {
            case .flip: out = out.randomlyFlippedHorizontally(using: &generator)
            case .rotation(let degrees): out = out.randomlyRotated(upTo: degrees, using: &generator)
            case .blur(let sigma): out = out.blurred(sigma: sigma * side)
            case .lowResolution(let scale):
                let small = Size(width: max(4, Int(Double(out.width) * scale)), height: max(4, Int(Double(out.height) * scale)))
                out = out.resized(to: small).resized(to: Size(width: image.width, height: image.height))
            case .brightness(let f): out = out.adjustingBrightness(f)
            case .contrast(let f): out = out.adjustingContrast(f)
            case .noise(let sigma): out = out.withGaussianNoise(sigma: sigma, using: &generator)
            }
        }
        return out
    }

    public var description: String {
        steps.map { step -> String in
            switch step {
            case .flip: return "flip"
            case .rotation(let d): return "rotation \(Int(d.rounded()))°"
            case .blur(let s): return "blur \(String(format: "%.3f", s)) of the side"
            case .lowResolution(let s): return "resolution x\(String(format: "%.2f", s))"
            case .brightness(let f): return "brightness x\(String(format: "%.2f", f))"
            case .contrast(let f): return "contrast x\(String(format: "%.2f", f))"
            case .noise(let s): return "noise \(Int(s.rounded()))"
            }
        }.joined(separator: ", ")
    }
}
