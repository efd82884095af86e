public import Imaging
public import NeuralNetwork

/// One image's classification.
public struct Prediction: Codable, Sendable, Equatable {
    public var label: String
    public var index: Int
    public var confidence: Double
    /// The three most likely classes with their probabilities, most likely first.
    public var top: [ClassProbability]
}

public struct ClassProbability: Codable, Sendable, Equatable {
    public var label: String
    public var probability: Double
}

/// A trained model ready to classify images.
public final class Classifier {
    public let description: ModelDescription
    public let parameters: Parameters
    public let contentHash: String
    public let predictor: Predictor

    /// Loads and checks a model folder.
    public init(model folder: String) throws {
        let (description, parameters, hash) = try ModelArtifact.load(folder)
        self.description = description
        self.parameters = parameters
        contentHash = hash
        predictor = try Predictor(network: description.network, parameters: parameters)
    }

    public var preprocessing: Preprocessing { description.preprocessing }
    public var classes: [String] { description.classes }

    /// Logits for prepared images, in chunks.
    static func logits(predictor: Predictor, images: [RGBImage], preprocessing: Preprocessing, chunk: Int = 32) throws -> [Float] {
        try predictor.predict(count: images.count, chunk: chunk) { i, slot in preprocessing.write(images[i], into: slot) }
    }

    /// Logits for decoded images of any size (they are prepared here).
    public func logits(_ images: [RGBImage]) throws -> [Float] {
        try Self.logits(predictor: predictor, images: images.map(preprocessing.prepare), preprocessing: preprocessing)
    }

    /// Predictions for decoded images of any size.
    public func predict(_ images: [RGBImage]) throws -> [Prediction] {
        try classify(images).predictions
    }

    /// Predictions and the whole softmax (images x classes) for decoded images of any size.
    public func classify(_ images: [RGBImage]) throws -> (predictions: [Prediction], probabilities: [Double]) {
        let logits = try self.logits(images)
        let k = classes.count
        let probabilities = logits.withUnsafeBufferPointer { SoftmaxCrossEntropy.probabilities(logits: $0, classes: k) }.map { Double($0) }
        let predictions = (0..<images.count).map { i in
            let row = Array(probabilities[(i * k)..<((i + 1) * k)])
            let ranked = row.indices.sorted { row[$0] > row[$1] }
            return Prediction(label: classes[ranked[0]], index: ranked[0], confidence: row[ranked[0]],
                              top: ranked.prefix(3).map { ClassProbability(label: classes[$0], probability: row[$0]) })
        }
        return (predictions, probabilities)
    }

    /// Accuracy, loss and per-class metrics on a labelled dataset loaded with this model's classes.
    public func evaluate(_ dataset: ImageFolderDataset) throws -> ClassificationMetrics {
        let logits = try Self.logits(predictor: predictor, images: dataset.images, preprocessing: preprocessing)
        return Trainer.metrics(logits: logits, labels: dataset.items.map(\.label), classes: classes)
    }
}
