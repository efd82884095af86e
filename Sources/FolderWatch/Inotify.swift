import DroplineSupport
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// Wake-ups from Linux inotify for a folder tree: "something changed, scan again". Not recursive in
/// the kernel, so every directory gets its own watch, and a directory created (or moved in) gets one
/// as soon as its event arrives (the scan that follows finds files created before the watch). A full
/// event queue (IN_Q_OVERFLOW) is just another reason to scan. Running out of watches (ENOSPC) is
/// reported so the caller can fall back to polling.
public final class InotifyWatcher {
    public enum Failure: Error, CustomStringConvertible, Sendable {
        case unavailable(String)
        case outOfWatches(String)
        public var description: String {
            switch self {
            case .unavailable(let m): "inotify unavailable: \(m)"
            case .outOfWatches(let path):
                "out of inotify watches at '\(path)' (fs.inotify.max_user_watches); falling back to polling; raise the limit with sysctl to watch again"
            }
        }
    }

    private let fd: Int32
    private var watches: [Int32: String] = [:]
    private var depths: [Int32: Int] = [:]
    private let mask: UInt32

    public init(root: String) throws {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw Failure.unavailable(String(cString: strerror(errno))) }
        self.fd = fd
        mask = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_ATTRIB)
        do {
            try addRecursively(root)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Directories watched.
    public var watchCount: Int { watches.count }

    /// The deepest folder watched below the root; deeper ones are still found by the scans.
    public static let maximumDepth = 32

    /// Watches `path` and the real folders below it. Links are never followed (IN_DONT_FOLLOW,
    /// IN_ONLYDIR, and lstat when listing), and a folder already watched (the same device and inode,
    /// e.g. through a bind mount) is not walked again, so a link loop cannot trap the set-up.
    func addRecursively(_ path: String, depth: Int = 0) throws {
        guard depth <= Self.maximumDepth, FileSystem.isRealDirectory(path) else { return }
        let wd = inotify_add_watch(fd, path, mask | UInt32(IN_DONT_FOLLOW) | UInt32(IN_ONLYDIR))
        if wd < 0 {
            if errno == ENOSPC { throw Failure.outOfWatches(path) }
            return  // vanished or unreadable: the next scan reports it
        }
        if watches[wd] != nil { return }  // the kernel gives the same descriptor for the same inode: already walked
        watches[wd] = path
        depths[wd] = depth
        for name in FileSystem.names(in: path) where FileSystem.isRealDirectory(path + "/" + name) {
            try addRecursively(path + "/" + name, depth: depth + 1)
        }
    }

    /// Waits up to `timeout` seconds for changes; returns true when something changed (or the event
    /// queue overflowed), false on timeout. New directories are watched before it returns.
    public func wait(timeout: Double) throws -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(max(0, timeout * 1000)))
        if ready <= 0 { return false }
        var changed = false
        let size = 16 + Int(NAME_MAX) + 1
        var buffer = [UInt8](repeating: 0, count: 64 * size)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            while offset + 16 <= n {
                let (wd, eventMask, length) = buffer.withUnsafeBytes { raw in
                    (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let name = String(decoding: buffer[(offset + 16)..<min(offset + 16 + length, n)].prefix { $0 != 0 }, as: UTF8.self)
                offset += 16 + length
                changed = true
                if eventMask & UInt32(IN_Q_OVERFLOW) != 0 { continue }  // wd -1: rescan, which the caller does anyway
                if eventMask & UInt32(IN_IGNORED) != 0 { watches[wd] = nil; depths[wd] = nil; continue }
                if eventMask & UInt32(IN_ISDIR) != 0 && eventMask & UInt32(IN_CREATE | IN_MOVED_TO) != 0, let parent = watches[wd] {
                    try addRecursively(parent + "/" + name, depth: (depths[wd] ?? 0) + 1)
                }
            }
        }
        return changed
    }
}
