import DriftStatistics
public import DroplineSupport
import Foundation
import Imaging
public import Modeling
import NeuralNetwork
import Tensor
import SystemFiles
import Hashing
import JSONFiles

/// Train mode: reference features of raw training images, written as the artifacts folder.
extension DriftMonitor {

    /// Computes reference features of `images` (raw: not augmented) and writes the artifacts folder.
    @discardableResult
    /// With a model, its softmax reference comes from `holdout` (e.g. the validation images) when given.
    public static func fit(images: ImageCollection, trainingData: String, to folder: String, model: Classifier? = nil,
                           holdout: ImageCollection? = nil, encoder: DriftEncoder = DriftEncoder(),
                           thresholds: DriftThresholds = DriftThresholds(), psiBins: Int = 10,
                           expectedBatchSize: Int? = 40, holdoutLabels: [Int]? = nil, progress: (any ProgressReporter)? = nil) throws -> String {
        guard images.images.count >= 20 else {
            throw MonitoringError(reason: "'\(trainingData)' has \(images.images.count) usable images; the drift reference needs at least 20")
        }
        let fm = FileManager.default
        guard !fm.fileExists(atPath: folder) else {
            throw MonitoringError(reason: "'\(folder)' already exists; choose another output folder or remove it")
        }
        let (parameters, hash) = try encoder.parameters()
        var matrices: [String: Tensor] = [:]
        var tables: [String: [Double]] = [:]
        var calibration: Calibration?
        let encoded = try encode(images.images, encoder: encoder, predictor: try Predictor(network: encoder.network, parameters: parameters))
        matrices["encoder"] = Tensor(shape: [images.images.count, encoder.features], data: encoded.map(Float.init))
        if let model {
            let source = holdout ?? images
            guard source.images.count >= 20 else {
                throw MonitoringError(reason: "the held-out images have \(source.images.count) usable images; the softmax reference needs at least 20")
            }
            let probabilities = try softmax(source.images, classifier: model)
            matrices["softmax"] = Tensor(shape: [source.images.count, model.classes.count], data: probabilities.map(Float.init))
            // the same probabilities the served batches' softmax detector sees, with their true classes
            if let labels = holdoutLabels, labels.count == source.images.count {
                var fitted = Calibration.fit(probabilities: probabilities, labels: labels, classes: model.classes.count)
                fitted.shiftCalibration = try ShiftCalibration.learn(images: source.images, labels: labels, probabilities: probabilities, classifier: model,
                                                                     temperature: fitted.temperature, progress: progress)
                calibration = fitted
            }
        }
        for (name, matrix) in matrices where !name.hasPrefix("psi_edges") {
            let columns = columnsOf(matrix)
            // Exact KS p-values for the expected batch size, so that checks of that size look them up.
            if let n2 = expectedBatchSize, let table = FeatureKSTests(reference: columns, alternative: thresholds.alternative).pValueTable(batchSize: n2) {
                tables["ks_pvalues.\(name).\(n2)"] = table
            }
            let edges = columns.map { PopulationStability.edges(reference: $0, bins: psiBins) }
            let width = edges.map(\.count).max() ?? 0
            // edges padded with +infinity to a rectangle
            matrices["psi_edges.\(name)"] = Tensor(shape: [edges.count, width], data: edges.flatMap { e in
                (e + [Double](repeating: .infinity, count: width - e.count)).map(Float.init) })
        }
        var description = DriftArtifactsDescription(
            encoder: encoder, encoderSha256: hash, detectors: model == nil ? ["encoder"] : ["encoder", "softmax"],
            model: model.map { _ in "given" }, modelContentSha256: model?.contentHash, classes: model?.classes,
            thresholds: thresholds, psiBins: psiBins, referenceImages: images.images.count,
            softmaxReferenceImages: model == nil ? nil : (holdout ?? images).images.count,
            softmaxReferenceSha256: model == nil ? nil : (holdout ?? images).contentHash, trainingData: trainingData,
            trainingDataSha256: images.contentHash, rejected: images.rejected, createdAt: Self.timestamp(),
            droplineVersion: DroplineVersion.current)
        description.calibration = calibration
        let staging = folder + ".partial-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            try AtomicFile.write(try SafeTensors.encode(matrices, doubles: tables, metadata: ["producer": "dropline \(DroplineVersion.current)"]),
                                 to: staging + "/" + referenceFile)
            let json = try SnakeCaseJSON.encoder().encode(description)
            try AtomicFile.write(Array(json), to: staging + "/" + descriptionFile)
            let content = contentHash(json: Array(json), reference: try AtomicFile.read(staging + "/" + referenceFile))
            try AtomicFile.write(Array((content + "\n").utf8), to: staging + "/" + hashFile)
            try Syscall.retrying("rename", path: folder) { rename(staging, folder) }
            return content
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }

    static func contentHash(json: [UInt8], reference: [UInt8]) -> String {
        var h = SHA256()
        h.update(Array(SHA256.hash(json).utf8))
        h.update(Array(SHA256.hash(reference).utf8))
        return h.finalize()
    }
}
