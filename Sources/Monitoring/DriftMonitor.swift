import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
public import Modeling
import NeuralNetwork
import Tensor
import SystemFiles
import JSONFiles
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

/// Fits drift artifacts and checks batches against them.
public final class DriftMonitor {
    public let description: DriftArtifactsDescription
    public let contentHash: String
    /// The thresholds a batch is tested with: the artifacts' own, unless changed (a root's
    /// dropline.yaml); the report records the ones used.
    public var thresholds: DriftThresholds
    let encoderNetwork: Network
    let encoderParameters: Parameters
    /// The encoder, built once and run on every chunk of a batch.
    let encoder: Predictor
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

    // MARK: - Load (the artifacts folder, hashes verified)

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
        thresholds = description.thresholds
        let (parameters, hash) = try description.encoder.parameters()
        guard hash == description.encoderSha256 else {
            throw MonitoringError(reason: "this Dropline generates different encoder weights from seed \(description.encoder.seed) than the one that fitted '\(folder)'; fit the artifacts again")
        }
        encoderNetwork = description.encoder.network
        encoderParameters = parameters
        encoder = try Predictor(network: description.encoder.network, parameters: parameters)
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
        (mean, inverseCovariance) = Mahalanobis.gaussian(reference["encoder"]!)
    }
}
