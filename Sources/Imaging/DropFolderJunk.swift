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

    /// Why the file at `relativePath` (components separated by "/") is junk, or nil when it is not.
    public static func reason(for relativePath: String) -> String? {
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let name = components.last else { return nil }
        for folder in components.dropLast() where folders.contains(folder.lowercased()) {
            return "inside \(folder)/, a folder of NAS or desktop metadata"
        }
        if name.hasPrefix("._") { return "an AppleDouble sidecar that macOS writes on SMB shares" }
        if files.contains(name.lowercased()) { return "\(name) is desktop metadata" }
        return nil
    }
}
