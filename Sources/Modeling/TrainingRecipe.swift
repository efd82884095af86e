import Foundation
import Hashing
import SystemFiles

/// What a training run is told beyond a model's recipe: another architecture, input size or number
/// of epochs (the command line, a rule's `train` action). Empty: the recipe as it is.
public struct TrainingOverrides: Codable, Sendable, Equatable {
    /// `scratch`, `small-cnn` or `backbone:<model.json>`.
    public var arch: String?
    public var imageSize: Int?
    public var epochs: Int?

    public init(arch: String? = nil, imageSize: Int? = nil, epochs: Int? = nil) {
        self.arch = arch
        self.imageSize = imageSize
        self.epochs = epochs
    }

    public var isEmpty: Bool { arch == nil && imageSize == nil && epochs == nil }

    /// `recipe` with these choices applied: another architecture starts from that architecture's
    /// defaults (keeping the seed), a same one keeps the recipe (head, augmentation, optimizer).
    public func applied(to recipe: TrainingConfiguration) throws -> TrainingConfiguration {
        var c = recipe
        if let arch {
            let asked = try TrainingConfiguration.defaults(forArch: arch)
            if asked.architecture != recipe.architecture || asked.backbonePath != recipe.backbonePath {
                c = asked
                c.seed = recipe.seed
            }
        }
        if let imageSize { c.imageSize = imageSize }
        if let epochs { c.epochs = epochs }
        return c
    }

    /// In words, for logs and job details.
    public var summary: String {
        [arch.map { "arch \($0)" }, imageSize.map { "\($0) px" }, epochs.map { "\($0) epochs" }].compactMap { $0 }.joined(separator: ", ")
    }
}

extension TrainingConfiguration {
    /// A recipe in words: architecture (and backbone), input size, epochs, head, augmentation.
    public var summary: String {
        var parts = [architecture + (backbonePath.map { " on \((($0 as NSString).deletingLastPathComponent as NSString).lastPathComponent)" } ?? "")]
        parts.append("\(imageSize) px")
        if !fitsLinearProbe { parts.append("\(epochs) epochs") }
        if architecture == "backbone" {
            parts.append((hiddenUnits ?? 0) > 0 ? "head of \(hiddenUnits!) units" : fitsLinearProbe ? "logistic head (L2 chosen on validation)" : "linear head")
        }
        if rotationDegrees > 0 { parts.append("rotation ±\(Int(rotationDegrees))°") }
        if horizontalFlip { parts.append("flips") }
        return parts.joined(separator: ", ")
    }
}

extension BackboneOrigin {
    /// The SHA-256 of a TF.js backbone's model.json and of its weight shards (the `.bin` files
    /// beside it, in name order, concatenated): what identifies the backbone a model was built on.
    public static func fileHashes(modelJson path: String) throws -> (topology: String, weights: String) {
        let topology = try SHA256.hash(file: path)
        let folder = (path as NSString).deletingLastPathComponent
        let shards = FileSystem.names(in: folder).filter { $0.hasSuffix(".bin") }.sorted()
        var weights = SHA256()
        for shard in shards { weights.update(try AtomicFile.read(folder + "/" + shard)) }
        return (topology, weights.finalize())
    }

    /// Whether the backbone at `modelJson` is still the one recorded; nil when it is, else why not.
    public func changed() -> String? {
        guard let now = try? Self.fileHashes(modelJson: modelJson) else { return "it is no longer readable at \(modelJson)" }
        if now.topology != topologySha256 { return "its model.json at \(modelJson) changed since (SHA-256 \(now.topology.prefix(12)), recorded \(topologySha256.prefix(12)))" }
        if now.weights != weightsSha256 { return "its weight shards beside \(modelJson) changed since" }
        return nil
    }
}
