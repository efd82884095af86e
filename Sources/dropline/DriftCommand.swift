import ArgumentParser
import DriftStatistics
import DroplineSupport
import Foundation
import Imaging
import Modeling
import Monitoring
import SystemFiles

struct DriftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drift",
        abstract: "Learn the training images' distribution and test batches for drift.",
        subcommands: [Fit.self, Check.self, Evaluate.self]
    )

    struct Fit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute reference features of raw training images and write drift artifacts.",
            discussion: """
            Features: a fixed, seeded, untrained convolutional encoder (64x64 input, K features), and with \
            --model the model's class probabilities. The folder holds drift.json, reference.safetensors \
            (reference matrices and PSI bin edges, little-endian float32) and content.sha256.
            """
        )

        @Option(help: "A folder of training images (walked recursively; class sub-folders are fine).")
        var images: String

        @Option(help: "The artifacts folder to create (must not exist).")
        var out: String

        @Option(help: "A model folder: adds the softmax detector.")
        var model: String?

        @Option(help: "Held-out images (e.g. the validation split) for the softmax detector's reference; recommended with --model.")
        var holdout: String?

        @Option(help: "Expected production batch size: its exact KS p-value table is stored with the artifacts.")
        var batchSize = 40

        @Option(help: "Encoder features.")
        var features = 32

        @Option(help: "Encoder seed.")
        var seed: UInt64 = 7

        @Option(help: "Corrected p-value below which a feature drifts.")
        var pValue = 0.05

        @Option(help: "Smallest KS statistic that counts as drift (effect-size floor).")
        var minStatistic = 0.1

        @Option(help: "bonferroni, fdr_bh or none.")
        var correction = "bonferroni"

        @Flag(help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            guard MultipleTesting.Correction(rawValue: correction) != nil else { throw ValidationError("--correction must be bonferroni, fdr_bh or none") }
            guard features > 0 && features <= 1024 else { throw ValidationError("--features must be between 1 and 1024") }
            guard pValue > 0 && pValue < 1 else { throw ValidationError("--p-value must be between 0 and 1") }
        }

        func run() throws {
            let classifier = try model.map { try Classifier(model: $0) }
            let side = max(64, classifier?.preprocessing.imageSize ?? 64)
            let collection = Loading.collection([images], side: side)
            var thresholds = DriftThresholds()
            thresholds.pValue = pValue
            thresholds.minimumStatistic = minStatistic
            thresholds.correction = MultipleTesting.Correction(rawValue: correction)!
            if classifier != nil && holdout == nil {
                Console.note("warning: without --holdout the softmax reference comes from the training images, where the model is more confident than on new data; expect more false alarms")
            }
            let held = holdout.map { Loading.collection([$0], side: side) }
            let hash = try DriftMonitor.fit(images: collection, trainingData: images, to: out, model: classifier, holdout: held,
                                            encoder: DriftEncoder(features: features, seed: seed), thresholds: thresholds,
                                            expectedBatchSize: batchSize)
            if json {
                try JSONOutput.print(["artifacts": out, "content_sha256": hash, "reference_images": "\(collection.images.count)"])
            } else {
                print("drift artifacts: \(out) (content sha256 \(hash.prefix(16))...), reference of \(collection.images.count) images")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Test a batch of images against drift artifacts; writes drift.json with --out.",
            discussion: "Exit status 0 whether or not the batch drifted; the decision is in the output (drift: true/false)."
        )

        @Option(help: "A drift artifacts folder.")
        var artifacts: String

        @Option(help: "The model the artifacts were fitted with (needed when they include its softmax detector).")
        var model: String?

        @Argument(help: "The batch: a folder of images, or image files.")
        var batch: [String]

        @Option(help: "Also write the report to this file (atomically).")
        var out: String?

        @Option(help: "How many of the most outlying images to list in human output.")
        var top = 5

        @Flag(help: "Print the report as JSON.")
        var json = false

        func run() throws {
            let classifier = try model.map { try Classifier(model: $0) }
            let monitor = try DriftMonitor(artifacts: artifacts, model: classifier)
            let side = max(64, classifier?.preprocessing.imageSize ?? 64)
            let collection = Loading.collection(batch, side: side)
            let report = try monitor.check(collection, name: batch.count == 1 ? batch[0] : "\(batch.count) paths")
            if let out {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                encoder.keyEncodingStrategy = .convertToSnakeCase
                try AtomicFile.write(Array(try encoder.encode(report)), to: out)
            }
            if json {
                try JSONOutput.print(report)
                return
            }
            print((report.drift ? "DRIFT: " : "") + report.reason)
            var table = TextTable("DETECTOR", "DRIFT", "MIN CORRECTED P", "MAX KS", "DRIFTED FEATURES", "MAX PSI")
            for d in report.detectors {
                table.add([d.name, d.drift ? "yes" : "no", String(format: "%.3g", d.minimumAdjustedPValue), String(format: "%.3f", d.maximumStatistic),
                           "\(d.driftedFeatures)/\(d.features.count)", String(format: "%.3f", d.maximumPsi)])
            }
            print(table.render())
            print("most outlying images (Mahalanobis distance to the reference in encoder space):")
            for r in report.outliers.prefix(top) { print(String(format: "  %7.2f  %@", r.score, r.path)) }
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "False-alarm and detection rates on random batches of each drift stage.",
            discussion: "Draws random batches from the images (e.g. a test split), applies each stage's transform (see `dropline dataset stages`), and counts how often the monitor flags drift. On the original stage that is the false-alarm rate."
        )

        @Option(help: "A drift artifacts folder.")
        var artifacts: String

        @Option(help: "The model the artifacts were fitted with, if any.")
        var model: String?

        @Option(help: "Images to draw batches from (e.g. a test split).")
        var images: String

        @Option(help: "Batches per stage.")
        var batches = 200

        @Option(help: "Images per batch.")
        var batchSize = 40

        @Option(help: "Seed for batch draws and transforms.")
        var seed: UInt64 = 11

        @Flag(help: "Print the table as JSON.")
        var json = false

        func run() throws {
            let classifier = try model.map { try Classifier(model: $0) }
            let monitor = try DriftMonitor(artifacts: artifacts, model: classifier)
            let collection = Loading.collection([images], side: max(64, classifier?.preprocessing.imageSize ?? 64))
            var evaluation = DriftEvaluation(monitor: monitor)
            evaluation.batches = batches
            evaluation.batchSize = batchSize
            evaluation.seed = seed
            let progress = TerminalProgress("checking batches", total: batches * DriftStage.allCases.count, unit: "batches")
            let rows = try evaluation.run(images: collection) { _, _ in progress.advance() }
            progress.finish()
            if json {
                try JSONOutput.print(rows)
                return
            }
            var table = TextTable("STAGE", "TRANSFORM", "FLAGGED", "RATE", "PER DETECTOR", "MEDIAN MIN P")
            for r in rows {
                table.add([r.stage, r.transform, "\(r.flagged)/\(r.batches)", String(format: "%.1f%%", r.rate * 100),
                           r.detectorRates.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f%%", $0.value * 100))" }.joined(separator: ", "),
                           String(format: "%.3g", r.medianSmallestAdjustedPValue)])
            }
            print(table.render())
        }
    }
}

extension Loading {
    static func collection(_ paths: [String], side: Int) -> ImageCollection {
        let progress = TerminalProgress("loading images", total: ImageCollection.fileCount(paths), unit: "images")
        let collection = ImageCollection(paths: paths, side: side, progress: progress)
        progress.finish()
        for r in collection.rejected { Console.note("skipped \(r.path): \(r.outcome): \(r.reason)") }
        return collection
    }
}
