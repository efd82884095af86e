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
        return make(folder: folder, entries: hashed.withLock { $0.map { $0! } })
    }

    /// A batch frozen from its entries (sorted), its content hash computed from them.
    static func make(folder: String, entries: [Entry]) -> FrozenBatch {
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

    /// Freezes a batch in the same pass that reads its images: each regular file of `listing` is
    /// read once, and the bytes read are both hashed (its entry) and decoded (prepared by each of
    /// `preparations`, handed to `body` a chunk of `chunkSize` at a time, in order). Links and special
    /// files are entries that are never opened. The result is the batch exactly as it was read, the
    /// same value `capture` gives when nothing changes between the two; a caller that queued a
    /// content hash compares it after the pass. Throws when a regular file cannot be read (as
    /// `capture` does) or when `body` throws.
    public static func freezing(folder: String, listing: [(relative: String, special: String?)], preparations: [Preprocessing],
                                progress: (any ProgressReporter)? = nil, _ body: (FrozenChunk) throws -> Void) throws -> FrozenBatch {
        let sorted = listing.sorted(by: { $0.relative < $1.relative })
        var entries: [Entry] = []
        entries.reserveCapacity(sorted.count)
        for start in stride(from: 0, to: sorted.count, by: chunkSize) {
            let part = sorted[start..<min(start + chunkSize, sorted.count)]
            // links and special files go through the same reading, which refuses them without opening them
            let reads = ImageLoading.read(part.map { folder + "/" + $0.relative }, preparations: preparations, facts: true, progress: progress)
            var chunk = FrozenChunk(items: [], images: [[RGBImage]](repeating: [], count: preparations.count), rejected: [])
            for ((relative, special), read) in zip(part, reads) {
                let path = folder + "/" + relative
                if let special, case .refused(let rejection) = read.outcome {
                    entries.append(Entry(relative: relative, bytes: 0, sha256: nil, special: special))
                    chunk.rejected.append(rejection)
                    continue
                }
                switch read.outcome {
                case .loaded(let image):
                    entries.append(Entry(relative: relative, bytes: Int64(read.bytes!), sha256: image.sha256, special: nil))
                    chunk.items.append(ImageCollection.Item(path: path, relativePath: relative, sha256: image.sha256))
                    if let facts = image.facts { chunk.facts.append(facts) }
                    for n in preparations.indices { chunk.images[n].append(image.images[n]) }
                case .refused(let rejection):
                    if let sha256 = read.sha256 {  // read, but not a usable image
                        entries.append(Entry(relative: relative, bytes: Int64(read.bytes!), sha256: sha256, special: nil))
                    } else if rejection.outcome == ImagingError.Kind.tooLarge.rawValue {
                        // refused before reading: hashed by streaming, so the entry still pins its content
                        entries.append(Entry(relative: relative, bytes: FileSystem.size(path) ?? 0,
                                             sha256: try SHA256.hash(file: path, links: .refuse), special: nil))
                    } else if rejection.outcome == ImagingError.Kind.notRegular.rawValue {
                        // listed as a file, a link or special file when read: an entry for what it is now
                        entries.append(Entry(relative: relative, bytes: 0, sha256: nil, special: "not a regular file"))
                    } else {
                        throw BatchUnreadable(path: path, reason: rejection.reason)
                    }
                    chunk.rejected.append(rejection)
                }
            }
            try body(chunk)
        }
        return make(folder: folder, entries: entries)
    }
}

/// A regular file of a batch that could not be read while the batch was frozen (removed, or not
/// readable by this user): the batch cannot be served as it is now.
public struct BatchUnreadable: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String {
        "\(DisplayText.escaped(path)) could not be read (\(reason)); check that it exists and is readable by the user running Dropline, then serve the batch again"
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

/// Part of a frozen batch, read, checked against its hashes and prepared: what the pipelines' passes
/// take one at a time, so that memory holds one chunk of images however large the batch.
public struct FrozenChunk: Sendable {
    /// The usable images' files, in the batch's order.
    public var items: [ImageCollection.Item]
    /// Per preparation asked for, the prepared images parallel to `items`.
    public var images: [[RGBImage]]
    public var rejected: [Rejection]
    /// The usable images' facts (header, pixel measures), parallel to `items`.
    public var facts: [ImageFacts] = []

    public init(items: [ImageCollection.Item], images: [[RGBImage]], rejected: [Rejection]) {
        self.items = items
        self.images = images
        self.rejected = rejected
    }
}

extension FrozenBatch {
    /// How many entries a pass takes at a time: enough for the engine's batches and every core's
    /// decoding, small enough that a chunk of 224 px images stays near 30 MB.
    public static let chunkSize = 64

    /// The entries in `range`, each read once, checked against its frozen hash and prepared by every
    /// one of `preparations`: a file that changed or vanished throws `BatchChanged`; a link or special
    /// file is refused without being opened; a file that is the same but not a usable image is refused.
    /// With `facts`, the chunk carries each image's `ImageFacts`.
    public func load(_ range: Range<Int>, preparations: [Preprocessing], facts wanted: Bool = false, progress: (any ProgressReporter)? = nil) throws -> FrozenChunk {
        let chosen = entries[range]
        let paths = chosen.map { folder + "/" + $0.relative }
        // links and special files go through the same reading, which refuses them without opening them
        let loaded = ImageLoading.load(paths, preparations: preparations, facts: wanted, progress: progress)
        var items: [ImageCollection.Item] = [], images = [[RGBImage]](repeating: [], count: preparations.count), facts: [ImageFacts] = []
        var rejected: [Rejection] = [], changed: [(path: String, change: String)] = []
        for ((entry, path), result) in zip(zip(chosen, paths), loaded) {
            switch result {
            case .loaded(let image):
                if entry.special == nil && image.sha256 == entry.sha256 {
                    items.append(ImageCollection.Item(path: path, relativePath: entry.relative, sha256: image.sha256))
                    if let f = image.facts { facts.append(f) }
                    for n in preparations.indices { images[n].append(image.images[n]) }
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
        if !changed.isEmpty { throw BatchChanged(folder: folder, frozenAt: frozenAt, files: changed) }
        var chunk = FrozenChunk(items: items, images: images, rejected: rejected)
        chunk.facts = facts
        return chunk
    }

    /// The batch in chunks of `chunkSize` entries, each loaded as `load` does, passed to `body` in order.
    public func forEachChunk(preparations: [Preprocessing], facts: Bool = false, progress: (any ProgressReporter)? = nil,
                             _ body: (FrozenChunk) throws -> Void) throws {
        for start in stride(from: 0, to: entries.count, by: Self.chunkSize) {
            try body(try load(start..<min(start + Self.chunkSize, entries.count), preparations: preparations, facts: facts, progress: progress))
        }
    }
}

extension ImageCollection {
    /// Exactly the files of a frozen batch, each checked against its frozen hash as it is read
    /// (`FrozenBatch.load`), all in memory: for the components run alone on a frozen batch.
    public init(frozen batch: FrozenBatch, side: Int, progress: (any ProgressReporter)? = nil) throws {
        let chunk = try batch.load(0..<batch.entries.count, preparations: [Preprocessing(imageSize: side, normalization: .unit)], progress: progress)
        self.init(items: chunk.items, images: chunk.images[0], rejected: chunk.rejected)
    }
}
