public import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
public import Modeling
public import NeuralNetwork
import Tensor

/// # Monitoring
///
/// Learns the distribution of raw training images (train mode) and tests production batches against
/// it (serve mode), with two detectors:
/// - **encoder**: a fixed, seeded, untrained convolutional encoder reduces each 64x64 image to K
///   features (default 32). Untrained random projections keep most of the structure of the input
///   distribution in few dimensions, the untrained-autoencoder approach alibi-detect documents for images.
/// - **softmax** (when a model is given): the model's class probabilities, black-box shift detection
///   (Lipton et al. 2018): a change in what the model sees shows in what it predicts.
/// Each detector runs a two-sample Kolmogorov-Smirnov test per feature against the reference and
/// corrects for the number of features (Bonferroni by default); the batch drifts when a detector has a
/// corrected p-value below `pValue` divided by the number of detectors (Bonferroni across detectors,
/// so the false-alarm rate of the whole decision stays at `pValue`) and that feature's KS statistic
/// reaches `minimumStatistic`. The softmax reference should come from held-out images: on its own
/// training images a model is more confident than on any new batch, which would read as drift.

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
}

/// One feature's test.
public struct FeatureDrift: Codable, Sendable {
    public var feature: Int
    public var statistic: Double
    public var pValue: Double
    public var adjustedPValue: Double
    public var psi: Double
    public var psiTier: PopulationStability.Tier
}

/// One detector's verdict.
public struct DetectorDrift: Codable, Sendable {
    public var name: String
    public var drift: Bool
    public var minimumAdjustedPValue: Double
    public var maximumStatistic: Double
    public var driftedFeatures: Int
    public var maximumPsi: Double
    public var features: [FeatureDrift]
}

/// An image's distance from the reference in encoder feature space.
public struct RankedImage: Codable, Sendable {
    public var path: String
    public var sha256: String
    public var score: Double
}

/// The result of `drift check` (drift.json).
public struct DriftReport: Codable, Sendable {
    public var drift: Bool
    public var reason: String
    public var batch: String
    public var batchSize: Int
    public var referenceSize: Int
    /// content.sha256 of the drift artifacts: which reference this batch was compared with.
    public var artifacts: String
    public var thresholds: DriftThresholds
    public var detectors: [DetectorDrift]
    /// Batch images ranked by Mahalanobis distance to the reference's encoder features, farthest first.
    public var outliers: [RankedImage]
    public var rejected: [Rejection]
    public var createdAt: String
}

public struct MonitoringError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// Fits drift artifacts and checks batches against them.
public final class DriftMonitor {
    public let description: DriftArtifactsDescription
    public let contentHash: String
    let encoderNetwork: Network
    let encoderParameters: Parameters
    let classifier: Classifier?
    /// Reference matrices per detector, [images][features].
    let reference: [String: [[Double]]]
    let tests: [String: FeatureKSTests]
    let psiEdges: [String: [[Double]]]
    let psiShares: [String: [[Double]]]
    /// Inverse covariance and mean of the encoder reference (ridge-regularised), for outlier scores.
    let mean: [Double]
    let inverseCovariance: [Double]

    public static let descriptionFile = "drift.json"
    public static let referenceFile = "reference.safetensors"
    public static let hashFile = "content.sha256"

    // MARK: - Fit

    /// Computes reference features of `images` (raw: not augmented) and writes the artifacts folder.
    @discardableResult
    /// With a model, its softmax reference comes from `holdout` (e.g. the validation images) when given.
    public static func fit(images: ImageCollection, trainingData: String, to folder: String, model: Classifier? = nil,
                           holdout: ImageCollection? = nil, encoder: DriftEncoder = DriftEncoder(),
                           thresholds: DriftThresholds = DriftThresholds(), psiBins: Int = 10,
                           expectedBatchSize: Int? = 40) throws -> String {
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
        let encoded = try encode(images.images, encoder: encoder, parameters: parameters)
        matrices["encoder"] = Tensor(shape: [images.images.count, encoder.features], data: encoded.map(Float.init))
        if let model {
            let source = holdout ?? images
            guard source.images.count >= 20 else {
                throw MonitoringError(reason: "the held-out images have \(source.images.count) usable images; the softmax reference needs at least 20")
            }
            let probabilities = try softmax(source.images, classifier: model)
            matrices["softmax"] = Tensor(shape: [source.images.count, model.classes.count], data: probabilities.map(Float.init))
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
        let description = DriftArtifactsDescription(
            encoder: encoder, encoderSha256: hash, detectors: model == nil ? ["encoder"] : ["encoder", "softmax"],
            model: model.map { _ in "given" }, modelContentSha256: model?.contentHash, classes: model?.classes,
            thresholds: thresholds, psiBins: psiBins, referenceImages: images.images.count,
            softmaxReferenceImages: model == nil ? nil : (holdout ?? images).images.count,
            softmaxReferenceSha256: model == nil ? nil : (holdout ?? images).contentHash, trainingData: trainingData,
            trainingDataSha256: images.contentHash, rejected: images.rejected, createdAt: Self.timestamp(),
            droplineVersion: DroplineVersion.current)
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

    // MARK: - Load

    /// Loads an artifacts folder, checking its hash and regenerating (and checking) the encoder.
    /// `model` is required when the artifacts include the softmax detector; it must be the same model.
    public init(artifacts folder: String, model: Classifier? = nil) throws {
        func read(_ name: String) throws -> [UInt8] {
            do { return try AtomicFile.read(folder + "/" + name) } catch {
                throw MonitoringError(reason: "drift artifacts '\(folder)' have no readable \(name); point --artifacts at a folder written by `dropline drift fit`")
            }
        }
        let json = try read(Self.descriptionFile)
        let referenceBytes = try read(Self.referenceFile)
        let recorded = String(decoding: try read(Self.hashFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        contentHash = Self.contentHash(json: json, reference: referenceBytes)
        guard contentHash == recorded else {
            throw MonitoringError(reason: "drift artifacts '\(folder)' do not match their content.sha256 (changed after fitting); fit them again")
        }
        description = try SnakeCaseJSON.decoder().decode(DriftArtifactsDescription.self, from: Data(json))
        let (parameters, hash) = try description.encoder.parameters()
        guard hash == description.encoderSha256 else {
            throw MonitoringError(reason: "this Dropline generates different encoder weights from seed \(description.encoder.seed) than the one that fitted '\(folder)'; fit the artifacts again")
        }
        encoderNetwork = description.encoder.network
        encoderParameters = parameters
        if description.detectors.contains("softmax") {
            guard let model else {
                throw MonitoringError(reason: "drift artifacts '\(folder)' include the model's softmax detector; give the model (--model) they were fitted with")
            }
            guard model.contentHash == description.modelContentSha256 else {
                throw MonitoringError(reason: "the model given (content \(model.contentHash.prefix(12))) is not the one '\(folder)' was fitted with (\(description.modelContentSha256?.prefix(12) ?? "?")); fit the drift artifacts for this model")
            }
            classifier = model
        } else {
            classifier = nil
        }
        let decoded = try SafeTensors.decodeAll(referenceBytes)
        let tensors = decoded.tensors
        var reference: [String: [[Double]]] = [:], tests: [String: FeatureKSTests] = [:]
        var edges: [String: [[Double]]] = [:], shares: [String: [[Double]]] = [:]
        for name in description.detectors {
            guard let matrix = tensors[name], let e = tensors["psi_edges.\(name)"] else {
                throw MonitoringError(reason: "drift artifacts '\(folder)' lack the \(name) reference")
            }
            let columns = Self.columnsOf(matrix)
            reference[name] = columns
            let featureTests = FeatureKSTests(reference: columns, alternative: description.thresholds.alternative)
            for (key, table) in decoded.doubles where key.hasPrefix("ks_pvalues.\(name).") {
                if let n2 = Int(key.split(separator: ".").last!) { featureTests.install(table: table, batchSize: n2) }
            }
            tests[name] = featureTests
            let width = e.shape[1]
            let featureEdges = (0..<e.shape[0]).map { f in (0..<width).map { Double(e.data[f * width + $0]) }.filter(\.isFinite) }
            edges[name] = featureEdges
            shares[name] = zip(columns, featureEdges).map { PopulationStability.shares($0.0, edges: $0.1) }
        }
        self.reference = reference
        self.tests = tests
        psiEdges = edges
        psiShares = shares
        (mean, inverseCovariance) = Self.gaussian(reference["encoder"]!)
    }

    // MARK: - Check

    /// Tests a batch against the reference.
    public func check(_ batch: ImageCollection, name: String) throws -> DriftReport {
        guard batch.images.count >= 2 else {
            throw MonitoringError(reason: "batch '\(name)' has \(batch.images.count) usable image\(batch.images.count == 1 ? "" : "s"); a drift test needs at least 2")
        }
        let t = description.thresholds
        var features: [String: [[Double]]] = [:]
        let encoded = try Self.encode(batch.images, encoder: description.encoder, parameters: encoderParameters)
        features["encoder"] = Self.columns(encoded, rows: batch.images.count, width: description.encoder.features)
        if let classifier {
            features["softmax"] = Self.columns(try Self.softmax(batch.images, classifier: classifier), rows: batch.images.count, width: classifier.classes.count)
        }
        var detectors: [DetectorDrift] = []
        for name in description.detectors {
            let columns = features[name]!
            let results = tests[name]!.test(batch: columns)
            let adjusted = MultipleTesting.adjust(results.map(\.pValue), t.correction)
            var rows: [FeatureDrift] = []
            for f in results.indices {
                let psi = PopulationStability.index(batch: columns[f], referenceShares: psiShares[name]![f], edges: psiEdges[name]![f])
                rows.append(FeatureDrift(feature: f, statistic: results[f].statistic, pValue: results[f].pValue, adjustedPValue: adjusted[f],
                                         psi: psi, psiTier: PopulationStability.Tier(psi: psi)))
            }
            let level = t.pValue / Double(description.detectors.count)
            let drifted = rows.filter { $0.adjustedPValue < level && $0.statistic >= t.minimumStatistic }
            detectors.append(DetectorDrift(name: name, drift: !drifted.isEmpty, minimumAdjustedPValue: adjusted.min() ?? 1,
                                           maximumStatistic: results.map(\.statistic).max() ?? 0, driftedFeatures: drifted.count,
                                           maximumPsi: rows.map(\.psi).max() ?? 0, features: rows))
        }
        let drift = detectors.contains(where: \.drift)
        let reason: String
        let level = t.pValue / Double(description.detectors.count)
        if let d = detectors.first(where: \.drift) {
            reason = String(format: "%@: %d of %d features drifted (smallest corrected p-value %.3g < %.3g, largest KS statistic %.3f >= %.3f)",
                            d.name, d.driftedFeatures, d.features.count, d.minimumAdjustedPValue, level, d.maximumStatistic, t.minimumStatistic)
        } else {
            let d = detectors.min { $0.minimumAdjustedPValue < $1.minimumAdjustedPValue }!
            reason = String(format: "no drift: smallest corrected p-value %.3g (%@) is not below %.3g with a KS statistic of at least %.3f",
                            d.minimumAdjustedPValue, d.name, level, t.minimumStatistic)
        }
        let scores = (0..<batch.images.count).map { i in
            Self.mahalanobis(Array(encoded[(i * description.encoder.features)..<((i + 1) * description.encoder.features)]), mean: mean, inverse: inverseCovariance)
        }
        let outliers = scores.indices.sorted { scores[$0] > scores[$1] }.map {
            RankedImage(path: batch.items[$0].path, sha256: batch.items[$0].sha256, score: scores[$0])
        }
        return DriftReport(drift: drift, reason: reason, batch: name, batchSize: batch.images.count, referenceSize: description.referenceImages,
                           artifacts: contentHash, thresholds: t, detectors: detectors, outliers: outliers, rejected: batch.rejected,
                           createdAt: Self.timestamp())
    }

    // MARK: - Features

    static func encode(_ images: [RGBImage], encoder: DriftEncoder, parameters: Parameters) throws -> [Double] {
        let predictor = try Predictor(network: encoder.network, parameters: parameters)
        return try predictor.predict(count: images.count) { i, slot in
            let image = images[i].width == encoder.side && images[i].height == encoder.side ? images[i] : images[i].resizedAndCropped(to: .square(encoder.side))
            image.writeFloats(into: slot, layout: .chw, normalization: .unit)
        }.map(Double.init)
    }

    static func softmax(_ images: [RGBImage], classifier: Classifier) throws -> [Double] {
        let logits = try classifier.logits(images)
        let k = classifier.classes.count
        return logits.withUnsafeBufferPointer { SoftmaxCrossEntropy.probabilities(logits: $0, classes: k) }.map(Double.init)
    }

    static func columnsOf(_ matrix: Tensor) -> [[Double]] {
        columns(matrix.data.map(Double.init), rows: matrix.shape[0], width: matrix.shape[1])
    }

    static func columns(_ values: [Double], rows: Int, width: Int) -> [[Double]] {
        (0..<width).map { f in (0..<rows).map { values[$0 * width + f] } }
    }

    /// Mean and inverse covariance (ridge 1e-3 of the average variance) of reference columns.
    static func gaussian(_ columns: [[Double]]) -> ([Double], [Double]) {
        let k = columns.count, n = columns[0].count
        let mean = columns.map { $0.reduce(0, +) / Double(n) }
        var covariance = [Double](repeating: 0, count: k * k)
        for a in 0..<k {
            for b in a..<k {
                var s = 0.0
                for i in 0..<n { s += (columns[a][i] - mean[a]) * (columns[b][i] - mean[b]) }
                covariance[a * k + b] = s / Double(max(n - 1, 1))
                covariance[b * k + a] = covariance[a * k + b]
            }
        }
        let ridge = 1e-3 * (0..<k).reduce(0.0) { $0 + covariance[$1 * k + $1] } / Double(k) + 1e-12
        for a in 0..<k { covariance[a * k + a] += ridge }
        return (mean, invert(covariance, k))
    }

    /// Gauss-Jordan inverse of a symmetric positive-definite matrix (k is small: the feature count).
    static func invert(_ matrix: [Double], _ k: Int) -> [Double] {
        var a = matrix
        var inverse = [Double](repeating: 0, count: k * k)
        for i in 0..<k { inverse[i * k + i] = 1 }
        for column in 0..<k {
            var pivot = column
            for r in column..<k where abs(a[r * k + column]) > abs(a[pivot * k + column]) { pivot = r }
            if pivot != column {
                for c in 0..<k {
                    a.swapAt(pivot * k + c, column * k + c)
                    inverse.swapAt(pivot * k + c, column * k + c)
                }
            }
            let p = a[column * k + column]
            for c in 0..<k {
                a[column * k + c] /= p
                inverse[column * k + c] /= p
            }
            for r in 0..<k where r != column {
                let f = a[r * k + column]
                if f == 0 { continue }
                for c in 0..<k {
                    a[r * k + c] -= f * a[column * k + c]
                    inverse[r * k + c] -= f * inverse[column * k + c]
                }
            }
        }
        return inverse
    }

    static func mahalanobis(_ x: [Double], mean: [Double], inverse: [Double]) -> Double {
        let k = mean.count
        let d = (0..<k).map { x[$0] - mean[$0] }
        var s = 0.0
        for a in 0..<k {
            var row = 0.0
            for b in 0..<k { row += inverse[a * k + b] * d[b] }
            s += d[a] * row
        }
        return max(s, 0).squareRoot()
    }

    static func timestamp() -> String {
        ISOTime.now()
    }
}
