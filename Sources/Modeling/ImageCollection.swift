public import DroplineSupport
import Foundation
import Synchronization
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
    /// The files' facts, parallel to `items` when the collection was read from files (empty for
    /// images made in memory).
    public var facts: [ImageFacts] = []

    /// Loads `paths`, preparing images to `side` x `side` (shorter side resized, centre crop).
    /// With `facts`, also each image's `ImageFacts` (`facts`).
    public init(paths: [String], side: Int, facts wanted: Bool = false, progress: (any ProgressReporter)? = nil) {
        let loaded = Self.load(paths, preparations: [Preprocessing(imageSize: side, normalization: .unit)], facts: wanted, progress: progress)
        self.init(items: loaded.items, images: loaded.images[0], rejected: loaded.rejected)
        facts = loaded.facts
    }

    /// The files of `paths` as they are now (folders walked recursively, sorted, junk skipped), each
    /// read and decoded once and prepared by every one of `preparations`.
    /// With `facts`, the chunk carries each image's `ImageFacts`.
    public static func load(_ paths: [String], preparations: [Preprocessing], facts: Bool = false, progress: (any ProgressReporter)? = nil) -> FrozenChunk {
        let files = ImageInspector.expandSkippingJunk(paths)
        var chunk = FrozenChunk(items: [], images: [[RGBImage]](repeating: [], count: preparations.count), rejected: [])
        for (file, result) in zip(files, ImageLoading.load(files.map(\.path), preparations: preparations, facts: facts, progress: progress)) {
            switch result {
            case .loaded(let image):
                chunk.items.append(Item(path: file.path, relativePath: file.relative, sha256: image.sha256))
                if let facts = image.facts { chunk.facts.append(facts) }
                for n in preparations.indices { chunk.images[n].append(image.images[n]) }
            case .refused(let rejection): chunk.rejected.append(rejection)
            }
        }
        return chunk
    }

    /// A collection of already decoded images (for evaluations that transform images in memory).
    public init(items: [Item], images: [RGBImage], rejected: [Rejection] = []) {
        precondition(items.count == images.count, "\(items.count) items for \(images.count) images")
        self.items = items
        self.images = images
        self.rejected = rejected
    }

    /// SHA-256 over the sorted "relative path, file hash" lines.
    public var contentHash: String { Self.contentHash(of: items) }

    /// SHA-256 over the sorted "relative path, file hash" lines of `items`.
    public static func contentHash(of items: [Item]) -> String {
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
/// loop of Dropline (collections of batches, labelled datasets, the pipelines' passes). Each file is
/// read once; its hash comes from the same bytes that are decoded, and every size wanted of it is
/// prepared from that one decode.
public enum ImageLoading {
    /// A decoded image prepared at each size asked for, and the SHA-256 of its file.
    public struct Loaded: Sendable {
        public var sha256: String
        /// One prepared image per preparation asked for, in order.
        public var images: [RGBImage]
        public var image: RGBImage { images[0] }
        /// The file's header facts and pixel measures, for the data-quality baseline and checks
        /// (only when asked for: `ImageLoading.read(..., facts: true)`).
        public var facts: ImageFacts?
    }

    public enum Outcome: Sendable {
        case loaded(Loaded)
        case refused(Rejection)
    }

    /// One outcome per path, in order: the prepared image, or why the file was refused.
    public static func load(_ paths: [String], preprocessing: Preprocessing, links: FileSystem.Links = .refuse,
                            progress: (any ProgressReporter)? = nil) -> [Outcome] {
        load(paths, preparations: [preprocessing], links: links, progress: progress)
    }

    /// One outcome per path: each file read and decoded once (at the largest scale any preparation
    /// needs), then prepared by each of `preparations`.
    public static func load(_ paths: [String], preparations: [Preprocessing], links: FileSystem.Links = .refuse, facts: Bool = false,
                            progress: (any ProgressReporter)? = nil) -> [Outcome] {
        read(paths, preparations: preparations, links: links, facts: facts, progress: progress).map(\.outcome)
    }

    /// A file as read: what became of it, and the SHA-256 and size of the bytes read (nil when the
    /// file could not be read at all: unreadable, gone, a link or special file, too large).
    public struct Read: Sendable {
        public var outcome: Outcome
        public var sha256: String?
        public var bytes: Int?
    }

    /// `load`, with each file's hash and size also for files refused after they were read.
    /// With `facts`, each loaded image also carries its `ImageFacts` (for the data-quality baseline
    /// and checks; the other readers skip that work).
    public static func read(_ paths: [String], preparations: [Preprocessing], links: FileSystem.Links = .refuse, facts wanted: Bool = false,
                            progress: (any ProgressReporter)? = nil) -> [Read] {
        var largest = DecodeOptions()
        largest.minimumSize = .square(preparations.map { Preprocessing.monitoringSide($0.imageSize) }.max() ?? 64)
        let options = largest
        // Reading waits on the disk or the network (on a share each read is several round trips), so
        // several files are read at once (`InFlight`); decoding is CPU work, on the CPUs this process
        // may use (`Parallel`). The bytes of at most `slice` files are held between the two.
        let slice = 256
        var results = [Read?](repeating: nil, count: paths.count)
        for start in stride(from: 0, to: paths.count, by: slice) {
            let part = Array(paths[start..<min(start + slice, paths.count)])
            let files = Mutex([Result<[UInt8], ImagingError>?](repeating: nil, count: part.count))
            try? InFlight.forEach(part.count) { i in
                let bytes = Result { () throws(ImagingError) in try ImageDecoder.read(part[i], links: links) }
                files.withLock { $0[i] = bytes }
            }
            let read = files.withLock { $0.map { $0! } }
            results.withUnsafeMutableBufferPointer { out in
                nonisolated(unsafe) let out = out
                Parallel.forEach(part.count) { i in
                    let path = part[i]
                    var hash: String?, size: Int?
                    do throws(ImagingError) {
                        let bytes = try read[i].get()
                        hash = SHA256.hash(bytes)
                        size = bytes.count
                        let decoded = try ImageDecoder.decode(bytes, options: options)
                        let image = decoded.image
                        let facts = wanted ? ImageFacts(info: decoded.info, fileBytes: bytes.count, pixels: image) : nil
                        out[start + i] = Read(outcome: .loaded(Loaded(sha256: hash!, images: preparations.map { $0.prepare(image) }, facts: facts)),
                                              sha256: hash, bytes: size)
                    } catch {
                        out[start + i] = Read(outcome: .refused(Rejection(path: path, outcome: error.kind.rawValue, reason: error.reason)), sha256: hash, bytes: size)
                    }
                    progress?.advance()
                }
            }
        }
        return results.map { $0! }
    }
}
