public import DroplineSupport
import Foundation
public import Imaging
public import SystemFiles
import Hashing

/// Images from files and folders (walked recursively, sorted, junk skipped), decoded at reduced size
/// and prepared to a square side, with each file's SHA-256. Files that cannot be used are listed in
/// `rejected` with their reason; the rest of the collection is unaffected.
public struct ImageCollection: Sendable {
    public struct Item: Sendable, Codable {
        public var path: String
        /// The path below the folder it was found in (the file name for files given directly).
        public var relativePath: String
        public var sha256: String

        public init(path: String, relativePath: String, sha256: String) {
            self.path = path
            self.relativePath = relativePath
            self.sha256 = sha256
        }
    }

    public let items: [Item]
    /// Prepared images, parallel to `items`.
    public let images: [RGBImage]
    public let rejected: [Rejection]

    /// Loads `paths`, preparing images to `side` x `side` (shorter side resized, centre crop).
    public init(paths: [String], side: Int, progress: (any ProgressReporter)? = nil) {
        let files = ImageInspector.expandSkippingJunk(paths)
        let loaded = ImageLoading.load(files.map(\.path), preprocessing: Preprocessing(imageSize: side, normalization: .unit), progress: progress)
        var items: [Item] = [], images: [RGBImage] = [], rejected: [Rejection] = []
        for (file, result) in zip(files, loaded) {
            switch result {
            case .loaded(let image):
                items.append(Item(path: file.path, relativePath: file.relative, sha256: image.sha256))
                images.append(image.image)
            case .refused(let rejection): rejected.append(rejection)
            }
        }
        self.items = items
        self.images = images
        self.rejected = rejected
    }

    /// A collection of already decoded images (for evaluations that transform images in memory).
    public init(items: [Item], images: [RGBImage], rejected: [Rejection] = []) {
        precondition(items.count == images.count, "\(items.count) items for \(images.count) images")
        self.items = items
        self.images = images
        self.rejected = rejected
    }

    /// SHA-256 over the sorted "relative path, file hash" lines.
    public var contentHash: String {
        var h = SHA256()
        for item in items.sorted(by: { $0.relativePath < $1.relativePath }) { h.update(Array("\(item.relativePath)\t\(item.sha256)\n".utf8)) }
        return h.finalize()
    }

    /// How many files `paths` would load (for progress totals).
    public static func fileCount(_ paths: [String]) -> Int {
        ImageInspector.expand(paths).filter { DropFolderJunk.reason(for: $0.relative) == nil }.count
    }
}

/// Reading, hashing, decoding and preparing image files on every core: the one concurrent decode
/// loop of Dropline (collections of batches, labelled datasets). Each file is read once; its hash
/// comes from the same bytes that are decoded.
public enum ImageLoading {
    /// A decoded, prepared image and the SHA-256 of its file.
    public struct Loaded: Sendable {
        public var sha256: String
        public var image: RGBImage
    }

    public enum Outcome: Sendable {
        case loaded(Loaded)
        case refused(Rejection)
    }

    /// One outcome per path, in order: the prepared image, or why the file was refused.
    public static func load(_ paths: [String], preprocessing: Preprocessing, links: FileSystem.Links = .refuse,
                            progress: (any ProgressReporter)? = nil) -> [Outcome] {
        var results = [Outcome?](repeating: nil, count: paths.count)
        let options = preprocessing.decodeOptions
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: paths.count) { i in
                let path = paths[i]
                do throws(ImagingError) {
                    let bytes = try ImageDecoder.read(path, links: links)
                    let image = try ImageDecoder.decode(bytes, options: options).image
                    out[i] = .loaded(Loaded(sha256: SHA256.hash(bytes), image: preprocessing.prepare(image)))
                } catch {
                    out[i] = .refused(Rejection(path: path, outcome: error.kind.rawValue, reason: error.reason))
                }
                progress?.advance()
            }
        }
        return results.map { $0! }
    }
}
