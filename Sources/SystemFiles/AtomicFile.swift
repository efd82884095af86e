#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic writes.
///
/// A write goes to a temporary name in the same folder, is flushed to disk, and is renamed over the
/// destination, so a reader never sees a half-written file and a crash leaves the old file intact.
/// (FileManager.replaceItemAt deletes the original before failing on Linux in Swift 6.3.1; rename(2)
/// is atomic within a file system.)
public enum AtomicFile {
    /// Writes `bytes` to `path` atomically, replacing any existing file.
    public static func write(_ bytes: some Collection<UInt8>, to path: String, permissions: UInt32 = 0o644) throws {
        try replace(path, permissions: permissions) { fd, temporary in try writeAll(fd: fd, bytes: bytes, path: temporary) }
    }

    /// Copies the regular file `source` to `path` atomically (as `write`), a chunk at a time, so a
    /// large file (the index's snapshot) never sits whole in memory. `source` is refused as `read`
    /// refuses it (not a regular file; with `links: .refuse` a link).
    public static func copy(_ source: String, to path: String, links: FileSystem.Links = .follow, permissions: UInt32 = 0o644) throws {
        let input = try FileSystem.openForReading(source, links: links)
        defer { close(input) }
        try replace(path, permissions: permissions) { fd, temporary in
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try chunk.withUnsafeMutableBytes { buffer in
                    try Syscall.retrying("read", path: source) { Glibc.read(input, buffer.baseAddress!, buffer.count) }
                }
                if n == 0 { break }
                try writeAll(fd: fd, bytes: chunk[..<n], path: temporary)
            }
        }
    }

    /// Fills a temporary file beside `path` (`fill` gets its descriptor and name), flushes it to disk
    /// and renames it over `path`; the temporary file is removed if anything fails.
    private static func replace(_ path: String, permissions: UInt32, fill: (Int32, String) throws -> Void) throws {
        let directory = parentDirectory(of: path)
        let base = lastComponent(of: path)
        var template = Array("\(directory)/.\(base).tmp-XXXXXX".utf8CString)
        let fd = try template.withUnsafeMutableBufferPointer { buffer in
            try Syscall.retrying("mkstemp", path: path) { mkstemp(buffer.baseAddress!) }
        }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var published = false
        defer {
            if !published { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            try fill(fd, temporary)
            try Syscall.retrying("fchmod", path: temporary) { fchmod(fd, mode_t(permissions)) }
            try Syscall.retrying("fsync", path: temporary) { fsync(fd) }
        }
        try Syscall.retrying("rename", path: path) { rename(temporary, path) }
        published = true
    }

    /// Reads a whole regular file. Refuses files larger than `limit` bytes, and anything but a
    /// regular file (a FIFO or device is refused without blocking: `FileSystem.openForReading`);
    /// with `links: .refuse` a symbolic link too (inbox content).
    public static func read(_ path: String, limit: Int = 1 << 30, links: FileSystem.Links = .follow) throws -> [UInt8] {
        let fd = try FileSystem.openForReading(path, links: links)
        defer { close(fd) }
        var info = stat()
        try Syscall.retrying("fstat", path: path) { fstat(fd, &info) }
        let size = Int(info.st_size)
        if size > limit { throw SystemError(call: "read", path: path, errno: EFBIG) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while offset < size {
                let n = try Syscall.retrying("read", path: path) {
                    Glibc.read(fd, buffer.baseAddress! + offset, size - offset)
                }
                if n == 0 { break }  // the file shrank while we read it
                offset += n
            }
        }
        if offset < size { bytes.removeLast(size - offset) }
        return bytes
    }

    private static func writeAll(fd: Int32, bytes: some Collection<UInt8>, path: String) throws {
        // an array or a slice of one is written in place; any other collection is gathered first
        if try bytes.withContiguousStorageIfAvailable({ try writeAll(fd: fd, buffer: UnsafeRawBufferPointer($0), path: path) }) != nil { return }
        try Array(bytes).withUnsafeBytes { try writeAll(fd: fd, buffer: $0, path: path) }
    }

    private static func writeAll(fd: Int32, buffer: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let n = try Syscall.retrying("write", path: path) {
                Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            offset += n
        }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
