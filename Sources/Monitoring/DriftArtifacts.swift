public import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
public import Modeling
public import NeuralNetwork
import Tensor
import Hashing

/// The untrained encoder's definition.
public struct DriftEncoder: Codable, Sendable, Equatable {
    public var side: Int = 64
    public var channels: [Int] = [32, 64, 128]
    public var features: Int = 32
    public var seed: UInt64 = 7

    public init(features: Int = 32, seed: UInt64 = 7) {
        self.features = features
        self.seed = seed
    }

    /// 4x4 stride-2 convolutions with ReLU, flatten, dense to `features`.
    public var network: Network {
        var layers = [Layer("input", .input(channels: 3, height: side, width: side), inputs: [])]
        var previous = "input"
        for (i, c) in channels.enumerated() {
            layers.append(Layer("conv\(i)", .conv2d(filters: c, kernel: [4, 4], stride: [2, 2], padding: .same, groups: 1, bias: true), inputs: [previous]))
            layers.append(Layer("relu\(i)", .relu, inputs: ["conv\(i)"]))
            previous = "relu\(i)"
        }
        layers.append(Layer("flatten", .flatten, inputs: [previous]))
        layers.append(Layer("encoding", .dense(units: features, bias: true), inputs: ["flatten"]))
        return Network(layers: layers)
    }

    /// The seeded weights and their SHA-256 (over the safetensors encoding), which pins them: a change
    /// in how weights are generated is detected instead of silently comparing different features.
    public func parameters() throws -> (Parameters, String) {
        let parameters = try Parameters(for: network)
        parameters.initialize(seed: seed)
        var tensors: [String: Tensor] = [:]
        for name in parameters.names { tensors[name] = parameters[name]! }
        return (parameters, SHA256.hash(try SafeTensors.encode(tensors)))
    }
}

/// Thresholds of the decision.
public struct DriftThresholds: Codable, Sendable, Equatable {
    /// Corrected p-value below which a feature has drifted.
    public var pValue: Double = 0.05
    /// The drifted feature's KS statistic must also reach this (an effect-size floor, as SageMaker's
    /// distance threshold), so that very large batches do not flag trivial shifts.
    public var minimumStatistic: Double = 0.1
    public var correction: MultipleTesting.Correction = .bonferroni
    public var alternative: KolmogorovSmirnov.Alternative = .twoSided
    public init() {}
}

/// What `drift fit` stores besides the reference matrices.
public struct DriftArtifactsDescription: Codable, Sendable {
    public static let currentFormat = 1
    public var formatVersion = currentFormat
    public var encoder: DriftEncoder
    public var encoderSha256: String
    public var detectors: [String]
    /// Model the softmax detector used (its content hash), when one was given.
    public var model: String?
    public var modelContentSha256: String?
    public var classes: [String]?
    public var thresholds: DriftThresholds
    public var psiBins: Int
    public var referenceImages: Int
    /// Images behind the softmax reference, when held-out images were given.
    public var softmaxReferenceImages: Int?
    public var softmaxReferenceSha256: String?
    public var trainingData: String
    public var trainingDataSha256: String
    public var rejected: [Rejection]
    public var createdAt: String
    public var droplineVersion: String
    /// The model's confidences calibrated on the held-out labelled images (temperature scaling), for
    /// estimating served batches' accuracy without labels; absent without a model or labels, and in
    /// artifacts fitted before it existed.
    public var calibration: Calibration? = nil
}
