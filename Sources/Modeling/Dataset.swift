public import DroplineSupport
import Foundation
public import Imaging
public import SystemFiles
import Hashing

/// One image file of a labelled dataset.
public struct LabelledImage: Sendable, Codable {
    public var path: String
    /// Path relative to the dataset folder (class/name).
    public var relativePath: String
    public var label: Int
    public var sha256: String
}

/// A file that could not be used, and why.
public struct Rejection: Sendable, Codable {
    public var path: String
    public var outcome: String
    public var reason: String
}

/// Images in class folders (`<root>/<class>/<image>`), decoded and prepared at a fixed size.
///
/// Classes are the sub-folder names, sorted. Junk is skipped silently; files that cannot be decoded
/// are listed in `rejected` with their reason and left out; hashes identify the exact data a model
/// was trained on.
public struct ImageFolderDataset: Sendable {
    public let root: String
    public let classes: [String]
    public let items: [LabelledImage]
    /// The prepared images, parallel to `items`.
    public let images: [RGBImage]
    public let rejected: [Rejection]
    /// The files' facts (header, pixel measures), parallel to `items` when the dataset was read from
    /// its folder (empty for datasets made in memory).
    public var facts: [ImageFacts] = []

    /// SHA-256 over the sorted "relative path, file hash" lines: one hash for the exact data.
    public var contentHash: String {
        var h = SHA256()
        for item in items.sorted(by: { $0.relativePath < $1.relativePath }) {
            h.update(Array("\(item.relativePath)\t\(item.sha256)\n".utf8))
        }
        return h.finalize()
    }

    /// Loads `root`. With `classes`, that list (in its order) is used and other folders are an error;
    /// otherwise the sub-folders define it.
    /// Files inside are read without following links (`links: .refuse`, as for everything in the
    /// inbox) unless the caller says the folder is the user's own (`.follow`: `model train` and
    /// `model eval`, where a dataset made of links is a normal way to take a subset).
    public init(root: String, preprocessing: Preprocessing, classes expected: [String]? = nil,
                progress: (any ProgressReporter)? = nil, links: FileSystem.Links = .refuse) throws {
        self = try Self.load(root: root, preparations: [preprocessing], classes: expected, progress: progress, links: links).dataset
    }

    /// A dataset of images already prepared (the training pipeline's, from its one read of a stage).
    public init(root: String, classes: [String], items: [LabelledImage], images: [RGBImage], rejected: [Rejection]) {
        precondition(items.count == images.count, "\(items.count) items for \(images.count) images")
        self.root = root
        self.classes = classes
        self.items = items
        self.images = images
        self.rejected = rejected
    }

    /// Loads `root` as `init` does, each file read and decoded once and prepared by every one of
    /// `preparations`: the dataset holds the first preparation's images, `images` all of them.
    /// With `facts`, the dataset also holds each image's `ImageFacts` (the training pipeline's data-quality baseline).
    public static func load(root: String, preparations: [Preprocessing], classes expected: [String]? = nil,
                            progress: (any ProgressReporter)? = nil, links: FileSystem.Links = .refuse,
                            facts wanted: Bool = false) throws -> (dataset: ImageFolderDataset, images: [[RGBImage]]) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError(path: root, reason: "is not a folder", remedy: "give a folder with one sub-folder per class")
        }
        let found = ImageInspector.classFolders(in: root)
        let classes: [String]
        if let expected {
            let unknown = Set(found).subtracting(expected)
            guard unknown.isEmpty else {
                throw DatasetError(path: root, reason: "has class folders the model does not know: \(unknown.sorted().joined(separator: ", "))",
                                   remedy: "the model's classes are \(expected.joined(separator: ", "))")
            }
            classes = expected
        } else {
            classes = found
        }
        guard classes.count >= 2 else {
            throw DatasetError(path: root, reason: "has \(classes.count) class folder\(classes.count == 1 ? "" : "s")",
                               remedy: "put each class's images in its own sub-folder (at least two classes)")
        }
        let labels = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let files = LabelledFiles(folder: root, classes: classes).files.map { ($0.entry.path, $0.label + "/" + $0.entry.relative, labels[$0.label]!) }
        var items: [LabelledImage] = [], images = [[RGBImage]](repeating: [], count: preparations.count), rejected: [Rejection] = []
        var facts: [ImageFacts] = []
        for ((path, relative, label), result) in zip(files, ImageLoading.load(files.map(\.0), preparations: preparations, links: links, facts: wanted, progress: progress)) {
            switch result {
            case .loaded(let image):
                items.append(LabelledImage(path: path, relativePath: relative, label: label, sha256: image.sha256))
                if let f = image.facts { facts.append(f) }
                for n in preparations.indices { images[n].append(image.images[n]) }
            case .refused(let rejection): rejected.append(rejection)
            }
        }
        guard !items.isEmpty else {
            throw DatasetError(path: root, reason: "holds no readable images", remedy: "add JPEG or PNG files to the class folders")
        }
        var dataset = ImageFolderDataset(root: root, classes: classes, items: items, images: images[0], rejected: rejected)
        dataset.facts = facts
        return (dataset, images)
    }

    /// Counts per class.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classes.count)
        for item in items { counts[item.label] += 1 }
        return counts
    }

    /// How many files `root` would load (for progress totals).
    public static func fileCount(_ root: String) -> Int {
        ImageInspector.expand([root]).filter { DropFolderJunk.reason(for: $0.relative) == nil }.count
    }
}

/// A dataset folder that cannot be used: which folder, why, and what to do.
public struct DatasetError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var remedy: String
    public var description: String { "'\(path)' \(reason); \(remedy)" }
}
