#if canImport(Glibc)
import Glibc
#endif

/// Scans the production inbox: one snapshot per batch folder, counting only finished files.
public struct InboxScanner: Sendable {
    /// The marker file a producer writes last (default `_READY`).
    public var marker: String

    public init(marker: String = "_READY") { self.marker = marker }

    /// Whether a file name is ignored: files being written (`*.part`, `*.tmp`, `.~*`), hidden names, and
    /// desktop or NAS metadata.
    public func ignored(_ name: String) -> Bool {
        let lower = name.lowercased()
        return name.hasPrefix(".") || lower.hasSuffix(".part") || lower.hasSuffix(".tmp") || lower.hasSuffix(".crdownload")
            || lower == "thumbs.db" || lower == "desktop.ini" || name.hasPrefix("~$")
    }

    /// Folder names whose whole content is metadata.
    static let junkFolders: Set<String> = ["@eadir", "#recycle", "#snapshot", "@recycle", "lost+found", "$recycle.bin"]

    /// Batch name -> snapshot for every sub-folder of `inbox` (batches may also sit one level down,
    /// `<stage>/<batch>`, named `<stage>/<batch>`).
    public func scan(_ inbox: String) -> [String: BatchSnapshot] {
        var result: [String: BatchSnapshot] = [:]
        for name in Self.entries(inbox) where Self.isDirectory(inbox + "/" + name) && !ignored(name) && !Self.junkFolders.contains(name.lowercased()) {
            let folder = inbox + "/" + name
            let children = Self.entries(folder)
            let hasImages = children.contains { !Self.isDirectory(folder + "/" + $0) && !ignored($0) && $0 != marker }
            let subfolders = children.filter { Self.isDirectory(folder + "/" + $0) && !ignored($0) && !Self.junkFolders.contains($0.lowercased()) }
            if !hasImages && !subfolders.isEmpty && !children.contains(marker) {
                // a stage folder holding batches
                for sub in subfolders { result[name + "/" + sub] = snapshot(folder + "/" + sub) }
            } else {
                result[name] = snapshot(folder)
            }
        }
        return result
    }

    /// The finished files of one batch folder (recursively), and whether its marker is there.
    public func snapshot(_ folder: String) -> BatchSnapshot {
        var files: [String: FileStamp] = [:]
        var hasMarker = false
        func walk(_ path: String, _ relative: String) {
            for name in Self.entries(path) {
                let full = path + "/" + name
                var info = stat()
                guard lstat(full, &info) == 0 else { continue }
                if relative.isEmpty && name == marker {
                    hasMarker = true
                    continue
                }
                if ignored(name) || Self.junkFolders.contains(name.lowercased()) { continue }
                let rel = relative.isEmpty ? name : relative + "/" + name
                if (info.st_mode & S_IFMT) == S_IFDIR {
                    walk(full, rel)
                } else if (info.st_mode & S_IFMT) == S_IFREG {
                    files[rel] = FileStamp(info)
                }
            }
        }
        walk(folder, "")
        return BatchSnapshot(files: files, hasMarker: hasMarker)
    }

    public static func entries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
