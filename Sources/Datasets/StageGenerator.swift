public import DroplineSupport
import Foundation
public import Imaging
import Randomness
import Synchronization
import SystemFiles
import Hashing

/// A labelled dataset laid out for training and testing: `<root>/{train,validation,test}/<class>/<images>`.
public struct LabelledDataset: Sendable {
    public static let splits = ["train", "validation", "test"]

    public let root: String
    public let classes: [String]
    /// Per split, the images as (class, path relative to the class folder).
    public let files: [String: [(label: String, relative: String)]]

    /// Reads the layout; an error names the folder and says what is missing.
    public init(root: String) throws {
        let fm = FileManager.default
        let folders = ImageInspector.classFolders(in:)
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetFileError(path: root, reason: "is not a folder", remedy: "give a folder with train/, validation/ and test/, each with one sub-folder per class")
        }
        let classes = folders(root + "/train")
        guard classes.count >= 2 else {
            throw DatasetFileError(path: root + "/train", reason: "has \(classes.count) class folder(s)",
                                   remedy: "a labelled dataset has train/, validation/ and test/, each with one sub-folder per class (at least two)")
        }
        var files: [String: [(String, String)]] = [:]
        for split in Self.splits {
            let found = folders(root + "/" + split)
            guard !found.isEmpty else {
                throw DatasetFileError(path: root + "/" + split, reason: "is missing or has no class folders",
                                       remedy: "add \(split)/<class>/ folders with the same class names as train/ (\(classes.joined(separator: ", ")))")
            }
            let unknown = Set(found).subtracting(classes)
            guard unknown.isEmpty else {
                throw DatasetFileError(path: root + "/" + split, reason: "has classes that train/ does not have: \(unknown.sorted().joined(separator: ", "))",
                                       remedy: "use the same class folders in train/, validation/ and test/")
            }
            let list = LabelledFiles(folder: root + "/" + split, classes: found).files.map { ($0.label, $0.entry.relative) }
            guard !list.isEmpty else {
                throw DatasetFileError(path: root + "/" + split, reason: "holds no images", remedy: "add JPEG or PNG files to its class folders")
            }
            files[split] = list
        }
        self.root = root
        self.classes = classes
        self.files = files
    }

    public func path(split: String, label: String, relative: String) -> String { "\(root)/\(split)/\(label)/\(relative)" }

    /// Images over all splits: what each stage holds.
    public var imageCount: Int { Self.splits.reduce(0) { $0 + (files[$1]?.count ?? 0) } }
}

/// Writes the seven drift stages of a labelled dataset (`DriftStage`: original, stage-1 ... stage-5,
/// noisy), each split of each stage into a folder `destination(stage, split)` with the class folders.
///
/// Original images are copied byte for byte; the others are decoded (EXIF orientation applied),
/// transformed and written as PNG (lossless, so that the only difference from the original is the
/// stage's transform). Each image's randomness comes from a generator seeded with
/// SHA-256(seed, stage, split, class, file): the same seed gives the same images on any machine, in
/// any order, on any number of threads. Files already there are kept, so an interrupted run resumes.
public struct StageGenerator: Sendable {
    public var seed: UInt64 = 1
    public var stages = DriftStage.allCases

    public init(seed: UInt64 = 1) { self.seed = seed }

    /// A file that could not be used, and why.
    public struct Skipped: Sendable, Codable {
        public var path: String
        public var reason: String
    }

    /// Generates the stages. Returns the files that could not be decoded (left out of every stage).
    public func generate(_ dataset: LabelledDataset, splits: [String] = LabelledDataset.splits,
                         destination: @Sendable (DriftStage, String) -> String, progress: (any ProgressReporter)? = nil) throws -> [Skipped] {
        var work: [(stage: DriftStage, split: String, label: String, relative: String)] = []
        for stage in stages {
            for split in splits {
                for file in dataset.files[split] ?? [] { work.append((stage, split, file.label, file.relative)) }
            }
        }
        for stage in stages {
            for split in splits {
                for label in dataset.classes {
                    try FileManager.default.createDirectory(atPath: destination(stage, split) + "/" + label, withIntermediateDirectories: true)
                }
            }
        }
        let items = work
        let skipped = Mutex<[String: String]>([:])
        defer { progress?.finish() }
        try concurrentForEach(items.count) { n in
            let item = items[n]
            defer { progress?.advance() }
            let source = dataset.path(split: item.split, label: item.label, relative: item.relative)
            if skipped.withLock({ $0[source] != nil }) { return }
            let folder = destination(item.stage, item.split) + "/" + item.label
            if item.stage == .original {
                let target = folder + "/" + item.relative
                guard !FileManager.default.fileExists(atPath: target) else { return }
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try AtomicFile.write(try AtomicFile.read(source), to: target)
                return
            }
            let target = folder + "/" + (item.relative as NSString).deletingPathExtension + ".png"
            guard !FileManager.default.fileExists(atPath: target) else { return }
            let image: RGBImage
            do { image = try ImageDecoder.decode(file: source).image } catch let error as ImagingError {
                skipped.withLock { $0[source] = "\(error.kind.rawValue): \(error.reason)" }
                return
            }
            var generator = SeededGenerator(seed: Self.seed(seed, item.stage, item.split, item.label, item.relative))
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try ImageEncoder.write(item.stage.apply(image, using: &generator), to: target, format: .png)
        }
        let bad = skipped.withLock { $0 }
        // an image skipped for one stage is removed from the others (copied originals included), so
        // that every stage holds the same images
        for (source, _) in bad {
            let relative = String(source.dropFirst(dataset.root.count + 1))
            let parts = relative.split(separator: "/", maxSplits: 2).map(String.init)
            for stage in stages where parts.count == 3 {
                let folder = destination(stage, parts[0]) + "/" + parts[1] + "/"
                try? FileManager.default.removeItem(atPath: folder + parts[2])
                try? FileManager.default.removeItem(atPath: folder + (parts[2] as NSString).deletingPathExtension + ".png")
            }
        }
        return bad.map { Skipped(path: $0.key, reason: $0.value) }.sorted { $0.path < $1.path }
    }

    /// The per-image seed: the first 8 bytes of SHA-256 over the seed and the image's place.
    static func seed(_ seed: UInt64, _ stage: DriftStage, _ split: String, _ label: String, _ relative: String) -> UInt64 {
        let hex = SHA256.hash(Array("\(seed)\n\(stage.rawValue)\n\(split)\n\(label)\n\(relative)".utf8))
        return UInt64(hex.prefix(16), radix: 16)!
    }
}
