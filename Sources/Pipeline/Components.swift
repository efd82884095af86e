public import DroplineSupport
import Foundation
public import Imaging
public import Modeling
import Randomness
import SystemFiles
import JSONFiles

/// # Pipeline
///
/// The four components of the cloud design, each a batch job with a train and a serve mode that reads
/// folders and writes its outputs and a `manifest.json` into its own output folder, so each can run
/// alone (`dropline component ...`) or chained (the two pipelines).

/// The components.
public enum ComponentName: String, Sendable, Codable, CaseIterable {
    case processing, algorithm, monitoring, explainability
}

public enum ComponentMode: String, Sendable, Codable, CaseIterable {
    case train, serve
}

/// What a component run did: written as `manifest.json` in its output folder.
public struct ComponentManifest: Codable, Sendable {
    public struct Input: Codable, Sendable {
        public var role: String
        public var path: String
        public var files: Int
        /// SHA-256 over the sorted "relative path, file hash" lines of its images.
        public var sha256: String
    }

    public var component: ComponentName
    public var mode: ComponentMode
    public var inputs: [Input]
    /// Output key (with the component's prefix, as the index stores it) -> path relative to the output folder.
    public var outputs: [String: String]
    public var parameters: [String: String]
    public var rejected: [Rejection]
    public var droplineVersion: String
    public var startedAt: String
    public var finishedAt: String
    public var outcome: String

    public static let fileName = "manifest.json"

    func write(to folder: String) throws {
        try SnakeCaseJSON.write(self, to: folder + "/" + Self.fileName)
    }

    public static func read(from folder: String) throws -> ComponentManifest {
        try SnakeCaseJSON.read(ComponentManifest.self, from: folder + "/" + fileName)
    }
}

public struct ComponentError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Shared bookkeeping for component runs.
enum ComponentRun {
    static func now() -> String {
        ISOTime.now()
    }

    /// Creates the output folder; an existing non-empty one is refused (outputs are never mixed).
    static func prepare(_ folder: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder), !((try? fm.contentsOfDirectory(atPath: folder))?.isEmpty ?? true) {
            throw ComponentError("output folder '\(folder)' is not empty; give a new or empty folder")
        }
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    static func requireFolder(_ path: String, _ what: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ComponentError("\(what) '\(path)' is not a folder")
        }
    }
}

/// Processing: decode and resize; in train mode also a seeded random rotation of every training image.
public struct ProcessingComponent {
    /// Square side of the processed images.
    public var imageSize: Int
    /// Training copies are rotated by a uniform angle within ±rotationDegrees (0: no rotated copies).
    public var rotationDegrees: Double = 15
    public var seed: UInt64 = 1
    public var progress: (@Sendable () -> Void)?

    public init(imageSize: Int) { self.imageSize = imageSize }

    /// Train mode: `stage` holds train/<class>/ and validation/<class>/. Writes train/<class>/<name>.png
    /// (and <name>.rotated.png), validation/<class>/<name>.png.
    public func train(stage: String, output: String) throws -> ComponentManifest {
        try train(StageImages.load(stage: stage, imageSize: imageSize, alsoAt: nil), output: output, writeImages: true).manifest
    }

    /// Train mode on a stage already read: the training images and a seeded rotated copy of each, the
    /// validation images, as the datasets the algorithm trains on; written as PNGs into `output`
    /// (train/<class>/<name>.png and <name>.rotated.png, validation/<class>/<name>.png) when
    /// `writeImages` (the training pipeline writes them only when asked: `dropline train --keep-processed`).
    public func train(_ stage: StageImages, output: String, writeImages: Bool) throws -> (manifest: ComponentManifest, train: ImageFolderDataset, validation: ImageFolderDataset) {
        let started = ComponentRun.now()
        try ComponentRun.prepare(output)
        var generator = SeededGenerator(seed: seed)
        var items: [LabelledImage] = [], images: [RGBImage] = []
        for (item, image) in zip(stage.train.items, stage.train.images) {
            items.append(item)
            images.append(image)
            if rotationDegrees > 0 {
                var rotated = item
                rotated.relativePath = (item.relativePath as NSString).deletingPathExtension + ".rotated.png"
                items.append(rotated)
                images.append(image.randomlyRotated(upTo: rotationDegrees, using: &generator))
            }
            progress?()
        }
        let train = ImageFolderDataset(root: stage.train.root, classes: stage.train.classes, items: items, images: images, rejected: stage.train.rejected)
        var outputs: [String: String] = [:]
        if writeImages {
            for (split, dataset) in [("train", train), ("validation", stage.validation)] {
                outputs["processing/" + split] = split
                let folder = output + "/" + split
                for c in dataset.classes { try FileManager.default.createDirectory(atPath: folder + "/" + c, withIntermediateDirectories: true) }
                let items = dataset.items, images = dataset.images
                try InFlight.forEach(items.count) { n in
                    try ImageEncoder.write(images[n], to: folder + "/" + Self.pngName(items[n].relativePath), format: .png)
                }
            }
        }
        let manifest = ComponentManifest(
            component: .processing, mode: .train,
            inputs: [.init(role: "train", path: stage.train.root, files: stage.train.items.count, sha256: stage.train.contentHash),
                     .init(role: "validation", path: stage.validation.root, files: stage.validation.items.count, sha256: stage.validation.contentHash)],
            outputs: outputs,
            parameters: ["image_size": "\(imageSize)", "rotation_degrees": "\(rotationDegrees)", "seed": "\(seed)", "images_written": "\(writeImages)"],
            rejected: stage.train.rejected + stage.validation.rejected, droplineVersion: DroplineVersion.current, startedAt: started,
            finishedAt: ComponentRun.now(), outcome: "succeeded")
        try manifest.write(to: output)
        return (manifest, train, stage.validation)
    }

    /// Serve mode: resizes a batch into images/ and writes files.csv (processed name, original path,
    /// SHA-256), so later components can name the original files.
    /// With `frozen`, exactly the files of the frozen batch, each checked against its hash (`BatchChanged`).
    public func serve(batch: String, output: String, frozen: FrozenBatch? = nil) throws -> ComponentManifest {
        let session = try ServeSession(self, batch: batch, output: output, writeImages: true)
        try ImageCollection.forEachChunk(of: batch, frozen: frozen, preparations: [.serving(imageSize)]) { chunk in
            try session.add(chunk.items, images: chunk.images[0], rejected: chunk.rejected)
        }
        return try session.finish()
    }

    /// `class/name.jpg` -> `class/name.png` (a rotated copy, `class/name.rotated.png`, stays as it is).
    static func pngName(_ relative: String) -> String {
        let stem = (relative as NSString).deletingPathExtension
        return stem + ".png"
    }
}

/// A training stage read once: train/ and validation/, each file read and decoded once and prepared
/// at the model's input (the datasets) and, when it differs, at the drift monitor's side.
public struct StageImages: Sendable {
    public var train: ImageFolderDataset
    public var validation: ImageFolderDataset
    /// The same images at the monitoring side (`Preprocessing.monitoringSide`), parallel to the datasets' items.
    public var trainMonitored: [RGBImage]
    public var validationMonitored: [RGBImage]

    /// Reads `stage`/train and `stage`/validation (whose classes must be among train's), preparing each
    /// image at `imageSize` and, with `alsoAt`, at that side too (one decode for both).
    public static func load(stage: String, imageSize: Int, alsoAt other: Int?, progress: (any ProgressReporter)? = nil) throws -> StageImages {
        try ComponentRun.requireFolder(stage + "/train", "training data")
        try ComponentRun.requireFolder(stage + "/validation", "validation data")
        var preparations: [Preprocessing] = [.serving(imageSize)]
        if let other, other != imageSize { preparations.append(.serving(other)) }
        // the raw images' facts too: the monitoring component learns the data-quality baseline from them
        let train = try ImageFolderDataset.load(root: stage + "/train", preparations: preparations, progress: progress, facts: true)
        let validation = try ImageFolderDataset.load(root: stage + "/validation", preparations: preparations, classes: train.dataset.classes,
                                                     progress: progress, facts: true)
        return StageImages(train: train.dataset, validation: validation.dataset, trainMonitored: train.images[preparations.count - 1],
                           validationMonitored: validation.images[preparations.count - 1])
    }

    /// How many files the stage holds (for progress totals).
    public static func fileCount(stage: String) -> Int {
        ImageFolderDataset.fileCount(stage + "/train") + ImageFolderDataset.fileCount(stage + "/validation")
    }
}

/// RFC 4180 fields: quoted when they hold a comma, a quote or a line break; read back with `CSVReader`.
public enum CSV {
    public static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The rows of a CSV file Dropline wrote (`CSVReader`); a malformed file is an error naming
    /// the file, the line and the column.
    public static func parse(_ text: String, file: String) throws -> [[String]] {
        do { return try CSVReader().rows(text).map(\.values) } catch {
            throw ComponentError("\(file):\(error)")
        }
    }
}
