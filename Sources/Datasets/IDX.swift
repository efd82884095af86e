internal import CCodecs
import DroplineSupport
import SystemFiles

/// An IDX array (the format of MNIST and Fashion-MNIST): unsigned bytes with their dimensions.
/// http://yann.lecun.com/exdb/mnist/ describes it: two zero bytes, a type code (0x08 = unsigned
/// byte), the number of dimensions, then each dimension as a big-endian 32-bit integer, then the data.
public struct IDXArray: Sendable {
    public let dimensions: [Int]
    public let values: [UInt8]

    /// Parses IDX bytes; `source` names the file in errors.
    public init(_ bytes: [UInt8], source: String) throws {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw DatasetFileError(path: source, reason: "is not an IDX file (it does not start with two zero bytes)",
                                   remedy: "give the Fashion-MNIST or MNIST .idx (or .idx.gz) files")
        }
        guard bytes[2] == 0x08 else {
            throw DatasetFileError(path: source, reason: "holds IDX type 0x\(String(bytes[2], radix: 16)), not unsigned bytes (0x08)",
                                   remedy: "give the Fashion-MNIST or MNIST image and label files")
        }
        let count = Int(bytes[3])
        guard count >= 1, bytes.count >= 4 + 4 * count else {
            throw DatasetFileError(path: source, reason: "has a truncated IDX header", remedy: "the file is damaged; reinstall it")
        }
        var dimensions: [Int] = []
        for d in 0..<count {
            let at = 4 + 4 * d
            dimensions.append(bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) })
        }
        let total = dimensions.reduce(1, *)
        let start = 4 + 4 * count
        guard bytes.count - start == total else {
            throw DatasetFileError(path: source, reason: "holds \(bytes.count - start) data bytes where its header announces \(total)",
                                   remedy: "the file is truncated or damaged; reinstall it")
        }
        self.dimensions = dimensions
        values = Array(bytes[start...])
    }

    /// Reads an IDX file, gunzipping it when its name ends in .gz.
    public init(file path: String) throws {
        var bytes: [UInt8]
        do { bytes = try AtomicFile.read(path) } catch {
            throw DatasetFileError(path: path, reason: "cannot be read (\(error))", remedy: "check that it exists and is readable")
        }
        if path.hasSuffix(".gz") { bytes = try Gzip.decompress(bytes, source: path) }
        try self.init(bytes, source: path)
    }
}

/// gzip through zlib.
public enum Gzip {
    /// The uncompressed bytes; refuses more than `limit` (a gzip bomb guard).
    public static func decompress(_ bytes: [UInt8], source: String, limit: Int = 1 << 31) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(DL_MESSAGE_CAPACITY))
        let status = bytes.withUnsafeBufferPointer { input in
            dl_gunzip(input.baseAddress, input.count, limit, &out, &size, &message)
        }
        guard status == 0, let out else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw DatasetFileError(path: source, reason: "cannot be uncompressed: \(reason)", remedy: "the file is damaged; reinstall or download it again")
        }
        defer { dl_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}

/// A dataset file or folder that cannot be used: which, why, and what to do.
public struct DatasetFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var remedy: String
    public var description: String { "'\(path)' \(reason); \(remedy)" }
}
