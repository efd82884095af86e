public import DroplineSupport
import Foundation
public import Imaging
import Synchronization
import SystemFiles
import Hashing

/// A batch as it was when it was declared complete: every entry's path, size and SHA-256, captured
/// once. Every component of a serve run reads exactly these files and checks each file's hash as
/// it reads it, so a file that changed or vanished since is an error of the run (`BatchChanged`),
/// never silently different inputs. Its `contentSha256` is the batch's content hash, the same one
/// the daemon's queue records for the job.
public struct FrozenBatch: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        /// The path below the batch folder.
        public var relative: String
        public var bytes: Int64
        /// The file's SHA-256; nil for a link or special file (never opened).
        public var sha256: String?
        /// What a link or special file is ("symbolic link", "FIFO", ...); nil for a regular file.
        public var special: String?
    }

    public var folder: String
    public var frozenAt: String
    /// Sorted by `relative`.
    public var entries: [Entry]
    /// SHA-256 over the "file hash  relative path" lines (a special entry: the hash of what it is, and "(special)").
    public var contentSha256: String

    /// Hashes every entry of `listing` (paths below `folder`; special ones with what they are).
    /// Throws when a regular file cannot be read (the caller decides when to look again).
    /// Several files are read at once (`InFlight`): on a network mount each read waits on round trips.
    public static func capture(folder: String, listing: [(relative: String, special: String?)]) throws -> FrozenBatch {
        let sorted = listing.sorted(by: { $0.relative < $1.relative })
        let hashed = Mutex([Entry?](repeating: nil, count: sorted.count))
        try InFlight.forEach(sorted.count) { i in
            let (relative, special) = sorted[i]
            let entry: Entry
            if let special {
                entry = Entry(relative: relative, bytes: 0, sha256: nil, special: special)
            } else {
                let path = folder + "/" + relative
                let hash = try SHA256.hash(file: path, links: .refuse)
                entry = Entry(relative: relative, bytes: FileSystem.size(path) ?? 0, sha256: hash, special: nil)
            }
            hashed.withLock { $0[i] = entry }
        }
        let entries = hashed.withLock { $0.map { $0! } }
        var listingText = ""
        for entry in entries {
            if let special = entry.special {
                listingText += "\(SHA256.hash(Array(special.utf8)))  \(entry.relative) (special)\n"
            } else {
                listingText += "\(entry.sha256!)  \(entry.relative)\n"
            }
        }
        return FrozenBatch(folder: folder, frozenAt: ISOTime.now(), entries: entries, contentSha256: SHA256.hash(Array(listingText.utf8)))
    }
}

/// Files of a frozen batch that changed or vanished since it was frozen.
public struct BatchChanged: Error, CustomStringConvertible, Sendable {
    public var folder: String
    public var frozenAt: String
    /// Relative path and what happened to it.
    public var files: [(path: String, change: String)]

    public var description: String {
        let shown = files.prefix(5).map { "\(DisplayText.escaped($0.path)) (\($0.change))" }.joined(separator: ", ")
        return "\(files.count) file(s) of \(folder) changed since the batch was frozen at \(frozenAt): \(shown)\(files.count > 5 ? ", ..." : ""); "
            + "the run is failed rather than served with different inputs (the daemon serves the batch again once it settles)"
    }
}

extension ImageCollection {
    /// Exactly the files of a frozen batch, each checked against its frozen hash as it is read: a
    /// file that changed or vanished throws `BatchChanged`; a link or special file is refused
    /// without being opened; a file that is the same but not a usable image is refused as usual.
    public init(frozen batch: FrozenBatch, side: Int, progress: (any ProgressReporter)? = nil) throws {
        let paths = batch.entries.map { batch.folder + "/" + $0.relative }
        // links and special files go through the same reading, which refuses them without opening them
        let loaded = ImageLoading.load(paths, preprocessing: Preprocessing(imageSize: side, normalization: .unit), progress: progress)
        var items: [Item] = [], images: [RGBImage] = [], rejected: [Rejection] = [], changed: [(path: String, change: String)] = []
        for ((entry, path), result) in zip(zip(batch.entries, paths), loaded) {
            switch result {
            case .loaded(let image):
                if entry.special == nil && image.sha256 == entry.sha256 {
                    items.append(Item(path: path, relativePath: entry.relative, sha256: image.sha256))
                    images.append(image.image)
                } else {
                    changed.append((entry.relative, entry.special == nil ? "its content changed" : "it was a \(entry.special!) and is a file now"))
                }
            case .refused(let rejection):
                if entry.special != nil {
                    rejected.append(rejection)
                } else if FileSystem.entryType(path) == nil {
                    changed.append((entry.relative, "it vanished"))
                } else if let now = try? SHA256.hash(file: path, links: .refuse), now == entry.sha256 {
                    rejected.append(rejection)  // the same file, not a usable image
                } else {
                    changed.append((entry.relative, "it was replaced or changed"))
                }
            }
        }
        if !changed.isEmpty { throw BatchChanged(folder: batch.folder, frozenAt: batch.frozenAt, files: changed) }
        self.init(items: items, images: images, rejected: rejected)
    }
}
