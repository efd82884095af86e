public import DroplineSupport
import Foundation
public import Imaging

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
    public init(paths: [String], side: Int, progress: TerminalProgress? = nil) {
        let files = ImageInspector.expandSkippingJunk(paths)
        let preprocessing = Preprocessing(imageSize: side, normalization: .unit)
        var loaded = [(Item, RGBImage)?](repeating: nil, count: files.count)
        var failures = [Rejection?](repeating: nil, count: files.count)
        loaded.withUnsafeMutableBufferPointer { out in
            failures.withUnsafeMutableBufferPointer { bad in
                nonisolated(unsafe) let out = out, bad = bad
                DispatchQueue.concurrentPerform(iterations: files.count) { i in
                    let file = files[i]
                    do {
                        let bytes = try ImageDecoder.read(file.path)
                        let image = try ImageDecoder.decode(bytes, options: preprocessing.decodeOptions).image
                        out[i] = (Item(path: file.path, relativePath: file.relative, sha256: SHA256.hash(bytes)), preprocessing.prepare(image))
                    } catch let error as ImagingError {
                        bad[i] = Rejection(path: file.path, outcome: error.kind.rawValue, reason: error.reason)
                    } catch {
                        bad[i] = Rejection(path: file.path, outcome: "unreadable", reason: "\(error)")
                    }
                    progress?.advance()
                }
            }
        }
        items = loaded.compactMap { $0?.0 }
        images = loaded.compactMap { $0?.1 }
        rejected = failures.compactMap { $0 }
    }

    /// A collection of already decoded images (for evaluations that transform images in memory).
    public init(items: [Item], images: [RGBImage]) {
        precondition(items.count == images.count, "\(items.count) items for \(images.count) images")
        self.items = items
        self.images = images
        rejected = []
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
