import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
import Imaging
import Modeling
import Monitoring
import Store
import SystemFiles
import Hashing
import JSONFiles

/// A published run's rows in the index, read from its manifest and files.
extension Pipelines {

    /// Writes a published run's rows from its manifest and files, in one transaction.
    func complete(manifest: RunManifest, folder: String) throws {
        var outputs: [String: String] = [:]
        for component in manifest.components {
            for (key, path) in component.outputs {
                outputs[key] = root.relative(folder + "/" + component.component.rawValue + "/" + path)
            }
        }
        // Inputs as each component saw them: a folder and the SHA-256 over its files' paths and hashes.
        let inputs = manifest.components.flatMap { component in
            component.inputs.map { RunInput(role: component.component.rawValue + "/" + $0.role, path: root.relative($0.path), sha256: $0.sha256) }
        }
        let relativeFolder = root.relative(folder)
        if manifest.kind == "train", let version = manifest.modelVersion {
            try publishModelVersion(version, from: folder)
            FaultInjection.point("train-after-model-published")
            let modelFolder = Self.versionName(version)
            let hash = String(decoding: try AtomicFile.read(root.models + "/" + modelFolder + "/model/content.sha256"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let (description, _, _) = try ModelArtifact.load(root.models + "/" + modelFolder + "/model")
            let model = NewModel(version: version, folder: "outputs/models/" + modelFolder, contentSha256: hash, stage: manifest.subject,
                                 trainRun: manifest.runId, validationAccuracy: description.metrics.accuracy,
                                 baseline: manifest.baseline.map { ($0.version, $0.accuracy) })
            try index.completeTrainRun(id: manifest.runId, folder: relativeFolder, outputs: outputs, inputs: inputs, model: model,
                                       decide: policy.automatic ? { self.answer($0) } : nil)
        } else {
            try index.completeServeRun(id: manifest.runId, folder: relativeFolder, outputs: outputs, inputs: inputs,
                                       rows: try serveRows(manifest: manifest, folder: folder))
        }
    }

    /// Publishes outputs/models/vNNNN (the model and the drift artifacts fitted for it) from a
    /// published training run folder, unless it is already there (completion may be repeated after a crash).
    func publishModelVersion(_ version: Int, from runFolder: String) throws {
        let destination = root.models + "/" + Self.versionName(version)
        guard !FileManager.default.fileExists(atPath: destination) else { return }
        let staging = root.staging + "/" + Self.versionName(version)
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: runFolder + "/algorithm/model", toPath: staging + "/model")
        try FileManager.default.copyItem(atPath: runFolder + "/monitoring/artifacts", toPath: staging + "/drift")
        // a run trained before data quality was learned has no baseline; its version then checks none
        let quality = runFolder + "/monitoring/" + MonitoringComponent.qualityFolder
        if FileSystem.entryType(quality) != nil {
            try FileManager.default.copyItem(atPath: quality, toPath: staging + "/" + MonitoringComponent.qualityFolder)
        }
        try root.publish(staging: staging, as: destination)
    }

    /// The rows of a published serve run, read from its files.
    func serveRows(manifest: RunManifest, folder: String) throws -> ServeRows {
        let processing = manifest.components.first { $0.component == .processing }!
        let batchInput = processing.inputs[0]
        let processed = try ProcessedBatch(folder: folder + "/processing")
        var images = processed.entries.map { entry in
            ServeRows.Image(path: root.relative(entry.original), sha256: entry.sha256, bytes: Int(FileSystem.size(entry.original) ?? 0), outcome: "ok", reason: nil)
        }
        for r in processing.rejected {
            // a refused link or special file is never opened: no hash (zeros), its own size
            let regular = FileSystem.entryType(r.path) == .regular
            images.append(ServeRows.Image(path: root.relative(r.path),
                                          sha256: (regular ? try? SHA256.hash(file: r.path, links: .refuse) : nil) ?? String(repeating: "0", count: 64),
                                          bytes: regular ? Int(FileSystem.size(r.path) ?? 0) : 0, outcome: r.outcome, reason: r.reason))
        }
        var predictions: [ServeRows.Prediction] = []
        let rows = try CSV.parse(String(decoding: try AtomicFile.read(folder + "/algorithm/predictions.csv"), as: UTF8.self), file: folder + "/algorithm/predictions.csv").dropFirst()
        for row in rows where row.count == 10 {
            let top = stride(from: 4, to: 10, by: 2).compactMap { i -> TopClass? in
                row[i].isEmpty ? nil : TopClass(label: row[i], probability: Double(row[i + 1]) ?? 0)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            predictions.append(ServeRows.Prediction(path: root.relative(row[0]), imageSha256: row[1], predicted: row[2], confidence: Double(row[3]) ?? 0,
                                                    top3: String(decoding: try encoder.encode(top), as: UTF8.self)))
        }
        let report = try Self.readDriftReport(run: folder)
        let results = report.detectors.flatMap { detector in
            detector.features.map { f in
                ServeRows.DriftResult(detector: detector.name, feature: f.feature, statistic: f.statistic, pValue: f.pValue,
                                      adjustedPValue: f.adjustedPValue, psi: f.psi, psiTier: f.psiTier.rawValue)
            }
        }
        let explanations = try SnakeCaseJSON.read([Explanation].self, from: folder + "/explainability/explanations/explanations.json").map { e in
            ServeRows.Explanation(path: root.relative(e.path), imageSha256: e.sha256, heatmap: root.relative(folder + "/explainability/explanations/" + e.heatmap),
                                  predicted: e.predicted, steps: e.steps, delta: e.delta, relativeDelta: e.relativeDelta)
        }
        var serveRows = ServeRows(batchName: manifest.subject, batchFolder: root.relative(batchInput.path), batchSha256: batchInput.sha256,
                             batchImages: batchInput.files, landedAt: manifest.startedAt, images: images, predictions: predictions, drift: report.drift,
                             driftReason: report.reason, artifactsSha256: report.artifacts, batchSize: report.batchSize, referenceSize: report.referenceSize,
                             driftResults: results, explanations: explanations)
        serveRows.estimatedAccuracy = report.estimate?.accuracy
        serveRows.estimatedAccuracyDrop = report.estimate?.accuracyDrop
        // a run served before data quality was checked has no quality.json: no rows
        let qualityFile = folder + "/monitoring/" + MonitoringComponent.qualityReportFile
        if FileSystem.entryType(qualityFile) != nil {
            let quality = try SnakeCaseJSON.read(QualityReport.self, from: qualityFile)
            serveRows.quality = ServeRows.QualityCheck(
                baselineSha256: quality.baseline, images: quality.images, refused: quality.refused,
                violations: quality.violations.map {
                    QualityViolationRow(property: $0.property, check: $0.check, observed: $0.observed, allowed: $0.allowed, detail: $0.detail,
                                        concerned: $0.count, images: $0.images.map(root.relative))
                })
        }
        return serveRows
    }

    /// One of a prediction's top classes, as the index stores them (JSON).
    struct TopClass: Encodable {
        var label: String
        var probability: Double
    }
}
