import CCodecs
import DroplineSupport
import SystemFiles

/// Encodes RGB images to PNG or JPEG; files are written atomically (temporary name, then rename).
public enum ImageEncoder {
    public enum Format: String, Sendable {
        case png, jpeg
        /// The format for a file name's extension (.png, .jpg, .jpeg), or nil.
        public init?(pathExtension path: String) {
            let lower = path.lowercased()
            if lower.hasSuffix(".png") { self = .png } else if lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") { self = .jpeg } else { return nil }
        }
    }

    public struct EncodingError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "could not encode the image: \(reason)" }
    }

    /// Lossless PNG bytes.
    public static func png(_ image: RGBImage) throws -> [UInt8] {
        try encode(image) { rgb, out, size, error in
            dl_png_encode_rgb(rgb, Int32(image.width), Int32(image.height), out, size, error)
        }
    }

    /// JPEG bytes at `quality` (1 to 100), 4:2:0, optimised Huffman tables.
    public static func jpeg(_ image: RGBImage, quality: Int = 90) throws -> [UInt8] {
        precondition((1...100).contains(quality), "JPEG quality must be 1...100, got \(quality)")
        return try encode(image) { rgb, out, size, error in
            dl_jpeg_encode_rgb(rgb, Int32(image.width), Int32(image.height), Int32(quality), out, size, error)
        }
    }

    /// Writes `image` to `path` atomically, in `format` (default: from the extension, else PNG).
    public static func write(_ image: RGBImage, to path: String, format: Format? = nil, quality: Int = 90) throws {
        let bytes: [UInt8]
        switch format ?? Format(pathExtension: path) ?? .png {
        case .png: bytes = try png(image)
        case .jpeg: bytes = try jpeg(image, quality: quality)
        }
        try AtomicFile.write(bytes, to: path)
    }

    private static func encode(
        _ image: RGBImage,
        _ body: (UnsafePointer<UInt8>, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>) -> Int32
    ) throws -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var error = [CChar](repeating: 0, count: Int(DL_MESSAGE_CAPACITY))
        let status = image.pixels.withUnsafeBufferPointer { rgb in
            error.withUnsafeMutableBufferPointer { body(rgb.baseAddress!, &output, &size, $0.baseAddress!) }
        }
        guard status == 0, let output else {
            throw EncodingError(reason: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { dl_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}
