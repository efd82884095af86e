import DroplineSupport
import Foundation
public import NeuralNetwork
import Tensor
import SystemFiles
import Hashing
import JSONFiles

/// Where a pretrained base came from.
public struct BackboneOrigin: Codable, Sendable, Equatable {
    public var modelJson: String
    /// SHA-256 of model.json and of the concatenated weight shards.
    public var topologySha256: String
    public var weightsSha256: String
    public var cut: String
    public var frozenLayers: Int
    /// The last N convolutions trained with the head (nil or 0: the whole base frozen).
    public var fineTunedConvolutions: Int?

    public init(modelJson: String, topologySha256: String, weightsSha256: String, cut: String, frozenLayers: Int, fineTunedConvolutions: Int?) {
        self.modelJson = modelJson
        self.topologySha256 = topologySha256
        self.weightsSha256 = weightsSha256
        self.cut = cut
        self.frozenLayers = frozenLayers
        self.fineTunedConvolutions = fineTunedConvolutions
    }
}

/// The data a model was trained or validated on.
public struct DataSummary: Codable, Sendable, Equatable {
    public var folder: String
    public var images: Int
    public var perClass: [Int]
    public var sha256: String
    public var rejected: Int
}

/// One epoch of training.
public struct EpochRecord: Codable, Sendable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var validationLoss: Double
    public var validationAccuracy: Double
    public var learningRate: Double
    public var imagesPerSecond: Double
    public var seconds: Double
}

/// How a logistic head was chosen: every penalty tried (with and without the flipped copies) and
/// its validation accuracy and loss, and the one kept.
public struct HeadSelection: Codable, Sendable, Equatable {
    public var chosen: LinearProbe.Candidate
    public var candidates: [LinearProbe.Candidate]
}

/// Everything about a trained model except its weights (model.json).
public struct ModelDescription: Codable, Sendable {
    public static let currentFormat = 1
    public var formatVersion: Int = currentFormat
    public var architecture: String
    public var backbone: BackboneOrigin?
    public var network: Network
    public var preprocessing: Preprocessing
    public var classes: [String]
    public var training: DataSummary
    public var validation: DataSummary
    /// Validation metrics of the kept (best) epoch.
    public var metrics: ClassificationMetrics
    public var bestEpoch: Int
    public var history: [EpochRecord]
    /// A logistic head's choice on the validation split (nil for heads trained by epochs).
    public var headSelection: HeadSelection? = nil
    public var configuration: TrainingConfiguration
    public var seed: UInt64
    public var trainingSeconds: Double
    /// SHA-256 of weights.safetensors.
    public var weightsSha256: String = ""
    public var createdAt: String
    public var droplineVersion: String
}

/// A model folder: `weights.safetensors` (every parameter, PyTorch layouts), `model.json` (the
/// description, which pins the weights' SHA-256) and `content.sha256` (the SHA-256 of model.json:
/// the model's identity). Written into a staging folder and renamed into place when complete.
public enum ModelArtifact {
    public static let weightsFile = "weights.safetensors"
    public static let descriptionFile = "model.json"
    public static let hashFile = "content.sha256"

    /// Writes a new model folder at `folder`, which must not exist. Returns the content hash.
    @discardableResult
    public static func save(_ description: ModelDescription, parameters: Parameters, to folder: String) throws -> String {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: folder) else {
            throw ArtifactError(folder: folder, reason: "already exists", remedy: "choose another output folder or remove it")
        }
        let staging = folder + ".partial-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            var tensors: [String: Tensor] = [:]
            for name in parameters.names { tensors[name] = parameters[name]! }
            let weights = try SafeTensors.encode(tensors, metadata: ["format": "pt", "producer": "dropline \(DroplineVersion.current)"])
            try AtomicFile.write(weights, to: staging + "/" + weightsFile)
            var described = description
            described.weightsSha256 = SHA256.hash(weights)
            let json = try SnakeCaseJSON.encoder().encode(described)
            try AtomicFile.write(Array(json), to: staging + "/" + descriptionFile)
            let hash = SHA256.hash(Array(json))
            try AtomicFile.write(Array((hash + "\n").utf8), to: staging + "/" + hashFile)
            try Syscall.retrying("rename", path: folder) { rename(staging, folder) }
            return hash
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

    /// Loads a model folder, checking its hashes and every parameter's presence and shape.
    public static func load(_ folder: String) throws -> (description: ModelDescription, parameters: Parameters, contentHash: String) {
        func read(_ name: String) throws -> [UInt8] {
            do { return try AtomicFile.read(folder + "/" + name) } catch {
                throw ArtifactError(folder: folder, reason: "has no readable \(name) (\(error))", remedy: "point --model at a folder written by `dropline model train`")
            }
        }
        let json = try read(descriptionFile)
        let recorded = String(decoding: try read(hashFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let hash = SHA256.hash(json)
        guard hash == recorded else {
            throw ArtifactError(folder: folder, reason: "model.json does not match content.sha256 (it was changed after training)", remedy: "restore the original model folder")
        }
        let description: ModelDescription
        do { description = try SnakeCaseJSON.decoder().decode(ModelDescription.self, from: Data(json)) } catch {
            throw ArtifactError(folder: folder, reason: "has a model.json Dropline cannot read (\(error))", remedy: "retrain the model with this version of Dropline")
        }
        guard description.formatVersion <= ModelDescription.currentFormat else {
            throw ArtifactError(folder: folder, reason: "uses model format \(description.formatVersion), newer than this Dropline understands", remedy: "upgrade Dropline")
        }
        let weights = try read(weightsFile)
        guard SHA256.hash(weights) == description.weightsSha256 else {
            throw ArtifactError(folder: folder, reason: "weights.safetensors does not match the hash in model.json (damaged or replaced)", remedy: "restore the original model folder")
        }
        let tensors = try SafeTensors.decode(weights).tensors
        let parameters = try Parameters(for: description.network)
        for name in parameters.names {
            guard let t = tensors[name] else {
                throw ArtifactError(folder: folder, reason: "weights.safetensors lacks parameter '\(name)'", remedy: "restore the original model folder")
            }
            do { try parameters.set(name, t) } catch {
                throw ArtifactError(folder: folder, reason: "\(error)", remedy: "restore the original model folder")
            }
        }
        if let extra = Set(tensors.keys).subtracting(parameters.names).sorted().first {
            throw ArtifactError(folder: folder, reason: "weights.safetensors has parameter '\(extra)', which the network does not use", remedy: "restore the original model folder")
        }
        return (description, parameters, hash)
    }
}

/// A model folder that cannot be written or loaded.
public struct ArtifactError: Error, CustomStringConvertible, Sendable {
    public var folder: String
    public var reason: String
    public var remedy: String
    public var description: String { "model '\(folder)' \(reason); \(remedy)" }
}
