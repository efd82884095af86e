import DroplineSupport
import SystemFiles

/// Scans the production inbox: one snapshot per batch folder, counting only finished files, and
/// the entries that cannot be batches, each with its reason. Nothing is followed through a link.
public struct InboxScanner: Sendable {
    /// The marker file a producer writes last (default `_READY`).
    public var marker: String

    public init(marker: String = "_READY") { self.marker = marker }

    /// Whether a file name is ignored: files being written (`*.part`, `*.tmp`, `~$*`), hidden names, and
    /// desktop or NAS metadata (`DropFolderJunk`, the list the image listings use too).
    public func ignored(_ name: String) -> Bool { DropFolderJunk.isIgnoredName(name) }

    /// Folder names whose whole content is metadata.
    static var junkFolders: Set<String> { DropFolderJunk.folders }

    /// An inbox entry that is not served, and why (a link, a special file, a file outside any batch
    /// folder, or a name Dropline will not build paths from).
    public struct Refusal: Sendable, Equatable, Hashable {
        /// The entry's path below the scanned folder ("b1", "stage-2/b1").
        public var path: String
        public var reason: String
    }

    /// One scan of the production inbox.
    public struct Scan: Sendable, Equatable {
        /// Batch name ("b1", or "stage-2/b1" one level down) -> snapshot.
        public var batches: [String: BatchSnapshot]
        public var refused: [Refusal]
    }

    /// Every batch folder of `inbox`: its real sub-folders, or one level down (`<stage>/<batch>`) for
    /// a stage folder that holds batch folders and no files of its own. Links, special files, loose
    /// files and unsafe names (`SafeName`) are refused, never followed.
    public func scan(_ inbox: String) -> Scan {
        scan(inbox, listing: children(of:), snapshot: { _, folder in snapshot(folder) })
    }

    /// The same, with the listing of the inbox and stage folders and the snapshot of each batch
    /// (name, folder) given: `IncrementalScanner` reuses what has not changed.
    func scan(_ inbox: String, listing: (String) -> [(name: String, type: EntryType)], snapshot: (String, String) -> BatchSnapshot) -> Scan {
        var result = Scan(batches: [:], refused: [])
        for (name, type) in listing(inbox) {
            guard let folder = checkedFolder(inbox, name, name, type, &result.refused) else { continue }
            let inside = listing(folder)
            // links are neither: a link in a stage folder is refused, one in a batch is an entry serving refuses
            let hasFiles = inside.contains { $0.type != .directory && !isLink($0.type) && $0.name != marker }
            let subfolders = inside.filter { $0.type == .directory || isLink($0.type) }
            if !hasFiles && !subfolders.isEmpty && !inside.contains(where: { $0.name == marker }) {
                // a stage folder holding batches
                for (sub, subType) in subfolders {
                    let relative = name + "/" + sub
                    if let batch = checkedFolder(folder, sub, relative, subType, &result.refused) { result.batches[relative] = snapshot(relative, batch) }
                }
            } else {
                result.batches[name] = snapshot(name, folder)
            }
        }
        return result
    }

    /// The entries of `folder` that count (not ignored, not junk), with their types.
    func children(of folder: String) -> [(name: String, type: EntryType)] {
        FileSystem.names(in: folder).compactMap { name in
            guard !ignored(name), !Self.junkFolders.contains(name.lowercased()), let type = FileSystem.entryType(folder + "/" + name) else { return nil }
            return (name, type)
        }
    }

    func isLink(_ type: EntryType) -> Bool { if case .symbolicLink = type { true } else { false } }

    /// The path of a batch (or stage) folder, or nil with a refusal recorded when it cannot be one.
    func checkedFolder(_ parent: String, _ name: String, _ relative: String, _ type: EntryType, _ refused: inout [Refusal]) -> String? {
        guard type == .directory else {
            let why = type == .regular
                ? "a file outside any batch folder; put images in a batch folder (production/<batch>/ or production/<stage>/<batch>/)"
                : "\(type); batches must be real folders inside the inbox, and links are never followed"
            refused.append(Refusal(path: relative, reason: why))
            return nil
        }
        if let problem = SafeName.problem(name, what: "folder name") {
            refused.append(Refusal(path: relative, reason: "\(problem); \(SafeName.remedy)"))
            return nil
        }
        return parent + "/" + name
    }

    /// The finished files of one batch folder (recursively, without following links), and whether
    /// its marker is there. Links and special files inside count as entries (`special`): they are
    /// part of what the producer dropped, and serving refuses each with its reason.
    public func snapshot(_ folder: String) -> BatchSnapshot {
        var hasMarker = false
        let entries = FileSystem.walk(folder) { relative, _ in
            let name = relative.split(separator: "/").last.map(String.init) ?? relative
            if relative == marker { hasMarker = true; return true }
            return ignored(name) || Self.junkFolders.contains(name.lowercased())
        }
        var files: [String: FileStamp] = [:], special: [String: String] = [:]
        for entry in entries {
            files[entry.relative] = FileStamp(size: entry.size, modified: entry.modified)
            if entry.type != .regular { special[entry.relative] = entry.type.description }
        }
        return BatchSnapshot(files: files, hasMarker: hasMarker, special: special)
    }
}
