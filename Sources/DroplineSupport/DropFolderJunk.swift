/// Files that desktop clients and NAS appliances leave in shared folders. They are skipped, never
/// quarantined, and never counted as images.
public enum DropFolderJunk {
    /// Folder names whose whole content is metadata: Synology thumbnails, recycle bins, snapshots.
    public static let folders: Set<String> = [
        "@eadir", "#recycle", "#snapshot", ".snapshot", ".snapshots", "@recycle", "@recently-snapshot",
        ".@__thumb", ".appledouble", ".trashes", ".spotlight-v100", ".fseventsd", ".temporaryitems",
        "$recycle.bin", "system volume information", ".recycle", "lost+found",
    ]
    /// File names that are metadata wherever they appear.
    public static let files: Set<String> = [".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".localized", "icon\r"]

    /// Why the file at `relativePath` (components separated by "/") is junk, or nil when it is not:
    /// metadata, or a file still being written under a temporary name.
    public static func reason(for relativePath: String) -> String? {
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let name = components.last else { return nil }
        for folder in components.dropLast() where folders.contains(folder.lowercased()) {
            return "inside \(folder)/, a folder of NAS or desktop metadata"
        }
        if name.hasPrefix("._") { return "an AppleDouble sidecar that macOS writes on SMB shares" }
        if files.contains(name.lowercased()) { return "\(name) is desktop metadata" }
        if isBeingWritten(name) { return "\(name) is still being written (a temporary name); the finished file is read once it is renamed" }
        return nil
    }

    /// Suffixes of files that copies and downloads write before renaming them.
    public static let temporarySuffixes = [".part", ".tmp", ".crdownload"]

    /// Whether `name` is a file still being written: a copy's or download's temporary name
    /// (`*.part`, `*.tmp`, `*.crdownload`) or an office lock file (`~$*`).
    public static func isBeingWritten(_ name: String) -> Bool {
        let lower = name.lowercased()
        return temporarySuffixes.contains { lower.hasSuffix($0) } || name.hasPrefix("~$")
    }

    /// Whether the inbox scanner leaves `name` out of a batch: hidden names, files being written, and
    /// metadata files (the one list the scanner and the image listings share).
    public static func isIgnoredName(_ name: String) -> Bool {
        name.hasPrefix(".") || isBeingWritten(name) || files.contains(name.lowercased())
    }
}
