import DroplineSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a directory entry is, as `lstat` sees it: links are never followed.
public enum EntryType: Sendable, Equatable, CustomStringConvertible {
    case regular
    case directory
    /// A symbolic link, with what it points to (the link's own text, never followed).
    case symbolicLink(target: String)
    case fifo
    case socket
    case characterDevice
    case blockDevice
    case unknown

    init(mode: mode_t, path: String) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symbolicLink(target: FileSystem.linkTarget(path) ?? "?")
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .unknown
        }
    }

    /// Words for messages: "a symbolic link to '/etc/passwd'", "a FIFO (named pipe)".
    public var description: String {
        switch self {
        case .regular: "a regular file"
        case .directory: "a folder"
        case .symbolicLink(let target): "a symbolic link to '\(DisplayText.escaped(target))'"
        case .fifo: "a FIFO (named pipe)"
        case .socket: "a socket"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .unknown: "a special file"
        }
    }
}

/// A file that is not a regular file where only regular files are read: what it is, and the remedy.
public struct NotRegularFile: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let type: EntryType

    public init(path: String, type: EntryType) {
        self.path = path
        self.type = type
    }

    public var reason: String {
        "\(type); Dropline reads only regular files (links, pipes, sockets and devices are never opened)"
    }

    public static let remedy = "copy the file itself into the folder instead of a link or a special file"

    public var description: String { "'\(DisplayText.escaped(path))' is \(reason); \(Self.remedy)" }
}

/// Listing, typing and opening files without following links or blocking on special files: what
/// every read of inbox content goes through (the inbox is written by other people and programs).
///
/// Written on the C calls rather than FileManager because FileManager follows symbolic links in
/// `fileExists` and its enumerator, and opens FIFOs blocking.
public enum FileSystem {
    /// Whether opening a path may follow a symbolic link in its last component.
    public enum Links: Sendable {
        /// Follow links (files the user named, the root's own configuration and models).
        case follow
        /// Refuse links: inbox content, batches, flags and labels.
        case refuse
    }

    /// The type of the entry at `path` (lstat: a link is a link), or nil when there is none.
    public static func entryType(_ path: String) -> EntryType? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return EntryType(mode: info.st_mode, path: path)
    }

    /// The file-system identity of the entry at `path` (device, inode, change time in ns; lstat): a
    /// file written again, or removed and dropped again, has another one, even with the same content.
    public static func identity(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return "\(info.st_dev):\(info.st_ino):\(Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec))"
    }

    /// The size of the entry at `path` (lstat: a link's own size, never its target's).
    public static func size(_ path: String) -> Int64? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// The modification time of the entry at `path` in seconds since 1970 (lstat).
    public static func modificationTime(_ path: String) -> Double? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    /// Whether `path` is a directory itself (not a link to one).
    public static func isRealDirectory(_ path: String) -> Bool { entryType(path) == .directory }

    /// The text of the symbolic link at `path`.
    public static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory (without "." and ".."), sorted; empty when it cannot be read.
    public static func names(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The absolute path with every link resolved, or nil when it does not exist.
    public static func resolved(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// Whether `path`, with every link resolved, lies inside `folder` (also resolved). A path that does
    /// not exist is not inside anything.
    public static func isInside(_ path: String, _ folder: String) -> Bool {
        guard let inner = resolved(path), let outer = resolved(folder) else { return false }
        return inner.hasPrefix(outer == "/" ? "/" : outer + "/")
    }

    /// Opens a file for reading: never blocks on a FIFO or device (O_NONBLOCK, cleared once the file is
    /// known to be regular), refuses anything but a regular file, and with `.refuse` refuses a link
    /// in the last component (O_NOFOLLOW). The caller closes the descriptor.
    public static func openForReading(_ path: String, links: Links) throws -> Int32 {
        var flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY
        if links == .refuse { flags |= O_NOFOLLOW }
        let fd: Int32
        do {
            fd = try Syscall.retrying("open", path: path) { open(path, flags) }
        } catch let error as SystemError where error.errno == ELOOP && links == .refuse {
            throw NotRegularFile(path: path, type: entryType(path) ?? .symbolicLink(target: "?"))
        }
        var info = stat()
        do {
            try Syscall.retrying("fstat", path: path) { fstat(fd, &info) }
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                if (info.st_mode & S_IFMT) == S_IFDIR { throw SystemError(call: "read", path: path, errno: EISDIR) }
                throw NotRegularFile(path: path, type: EntryType(mode: info.st_mode, path: path))
            }
            let current = fcntl(fd, F_GETFL)
            if current >= 0 { _ = fcntl(fd, F_SETFL, current & ~O_NONBLOCK) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// One entry found by `walk`.
    public struct WalkEntry: Sendable, Equatable {
        /// Path below the walked folder, components joined by "/".
        public var relative: String
        public var type: EntryType
        public var size: Int64
        /// Modification time in nanoseconds since the epoch.
        public var modified: Int64
    }

    /// Every entry below `folder` that `skip` keeps, sorted by name at each level, without following
    /// links: a link to a folder is reported as a link, never walked, so link loops cannot trap the
    /// walk; folders already seen (bind mounts) and folders deeper than `maxDepth` are not walked again.
    /// `skip(relative, type)` drops an entry (and a folder's whole content).
    public static func walk(_ folder: String, maxDepth: Int = 32, skip: (String, EntryType) -> Bool = { _, _ in false }) -> [WalkEntry] {
        var found: [WalkEntry] = []
        var seen = Set<[UInt64]>()
        func visit(_ path: String, _ relative: String, depth: Int) {
            var own = stat()
            guard lstat(path, &own) == 0, seen.insert([UInt64(own.st_dev), UInt64(own.st_ino)]).inserted else { return }
            for name in names(in: path) {
                let full = path + "/" + name
                var info = stat()
                guard lstat(full, &info) == 0 else { continue }  // vanished since the listing
                let rel = relative.isEmpty ? name : relative + "/" + name
                let type = EntryType(mode: info.st_mode, path: full)
                if skip(rel, type) { continue }
                if type == .directory {
                    if depth < maxDepth { visit(full, rel, depth: depth + 1) }
                    continue
                }
                found.append(WalkEntry(relative: rel, type: type, size: Int64(info.st_size),
                                       modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)))
            }
        }
        visit(folder, "", depth: 0)
        return found
    }
}
