#if canImport(Glibc)
import Glibc
#endif

/// Network and FUSE file systems: inotify cannot see into them (changes made by other hosts or by a
/// FUSE daemon produce no events), and SQLite's WAL mode and advisory locks cannot be trusted on them. The type comes from /proc/self/mountinfo (the same information
/// statfs's f_type gives, which Swift's Glibc module does not expose): the mount whose mount point is
/// the longest prefix of the path.
public enum MountKind {
    public static func isRemote(_ type: String) -> Bool {
        let t = type.lowercased()
        return t.hasPrefix("nfs") || t == "cifs" || t.hasPrefix("smb") || t.hasPrefix("fuse") || t == "9p" || t == "ceph" || t == "glusterfs"
    }

    /// The file-system type of the mount holding `path`, e.g. "ext4", "nfs4", "cifs", "fuse.sshfs".
    public static func type(of path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        let absolute = String(cString: resolved)
        free(resolved)
        guard let file = fopen("/proc/self/mountinfo", "r") else { return nil }
        defer { fclose(file) }
        var best: (point: String, type: String)?
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0, let line {
            // id parent major:minor root mount-point options [optional fields] - type source super-options
            let fields = String(cString: line).split(separator: " ").map(String.init)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            let point = fields[4].split(separator: "\\040", omittingEmptySubsequences: false).joined(separator: " ")  // mountinfo escapes spaces as \040
            let inside = absolute == point || absolute.hasPrefix(point == "/" ? "/" : point + "/")
            if inside && point.count >= (best?.point.count ?? -1) { best = (point, fields[dash + 1]) }
        }
        free(line)
        return best?.type
    }

    /// The network or FUSE file-system type `path` is on, or nil for a local one.
    public static func remote(_ path: String) -> String? {
        type(of: path).flatMap { isRemote($0) ? $0 : nil }
    }
}
