import CCodecs
import DroplineSupport
public import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// How to decode.
public struct DecodeOptions: Sendable, Equatable {
    /// Images whose header claims more pixels than this are refused before any pixel is decoded.
    public var maxPixels: Int = 100_000_000
    /// Keep images whose data ends early (libjpeg fills the rest with grey). Off by default.
    public var acceptTruncated = false
    /// Keep JPEGs that decode with recoverable corrupt-data warnings. Off by default: such images
    /// show garbage blocks, which poison training data; the warning is the quarantine reason.
    public var acceptWarnings = false
    /// Rotate and flip according to EXIF orientation.
    public var applyOrientation = true
    /// When set, a JPEG is decoded with libjpeg's DCT scaling at the smallest 1/2, 1/4 or 1/8 scale
    /// whose result still covers this size (after orientation), which is faster; the caller resizes.
    public var minimumSize: Size?
    /// Files larger than this many bytes are not read.
    public var maxFileBytes: Int = 512 << 20

    public init() {}
}

/// A width and a height.
public struct Size: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
    public static func square(_ side: Int) -> Size { Size(width: side, height: side) }
    public var description: String { "\(width)x\(height)" }
}

/// What a file's header says, before decoding pixels.
public struct ImageInfo: Sendable, Equatable, Codable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    /// Channels as stored: 1 grey or palette index, 2 grey+alpha, 3 colour, 4 colour+alpha or CMYK.
    public var channels: Int
    public var bitDepth: Int
    /// grayscale, rgb, ycbcr, cmyk, ycck, palette, grayscale+alpha, rgba.
    public var colorModel: String
    /// EXIF orientation 1 to 8 (1 when absent).
    public var orientation: Int
    public var progressive: Bool
    public var hasAlpha: Bool
}

/// A decoded image with its header facts and any warnings the decoder raised.
public struct DecodedImage: Sendable {
    public var image: RGBImage
    public var info: ImageInfo
    /// Recoverable decoder warnings (libjpeg's own words), when accepted by the options.
    public var warnings: [String]
    /// The DCT scale denominator used (1 = full size).
    public var scaleDenominator: Int
}

/// Decodes JPEG and PNG into 8-bit RGB.
public enum ImageDecoder {
    /// Reads and decodes the file at `path`. Errors carry the path.
    public static func decode(file path: String, options: DecodeOptions = DecodeOptions()) throws(ImagingError) -> DecodedImage {
        try withFile(path, options: options) { bytes throws(ImagingError) in try decode(bytes, options: options) }
    }

    /// Reads the header of the file at `path`.
    public static func info(file path: String, options: DecodeOptions = DecodeOptions()) throws(ImagingError) -> ImageInfo {
        try withFile(path, options: options) { bytes throws(ImagingError) in try info(bytes, options: options) }
    }

    /// Runs `body` on the file's bytes; any error it throws names the file.
    static func withFile<T>(_ path: String, options: DecodeOptions,
                            _ body: ([UInt8]) throws(ImagingError) -> T) throws(ImagingError) -> T {
        let bytes = try read(path, options: options)
        do {
            return try body(bytes)
        } catch {
            var located = error
            located.file = path
            throw located
        }
    }

    /// The bytes of an image file: a regular file only, never through a symbolic link, never
    /// blocking on a FIFO or device (images come from shared folders other people write to).
    /// `links: .follow` only for folders a user names as their own dataset (`model train`).
    public static func read(_ path: String, options: DecodeOptions = DecodeOptions(), links: FileSystem.Links = .refuse) throws(ImagingError) -> [UInt8] {
        do {
            return try AtomicFile.read(path, limit: options.maxFileBytes, links: links)
        } catch let error as NotRegularFile {
            throw ImagingError(.notRegular, format: nil, reason: error.reason, file: path)
        } catch let error as SystemError {
            if error.errno == EFBIG {
                throw ImagingError(.tooLarge, format: nil,
                                   reason: "the file is larger than \(options.maxFileBytes >> 20) MiB", file: path)
            }
            throw ImagingError(.unreadable, format: nil, reason: error.description, file: path)
        } catch {
            throw ImagingError(.unreadable, format: nil, reason: "\(error)", file: path)
        }
    }

    /// The header facts of an encoded image. Throws for empty, unsupported, too large or unparseable data.
    public static func info(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) throws(ImagingError) -> ImageInfo {
        let format = try supportedFormat(bytes)
        let info: ImageInfo
        switch format {
        case .jpeg: info = try JPEGCodec.info(bytes).info
        default: info = try PNGCodec.info(bytes)
        }
        try checkPixelLimit(info, options: options)
        return info
    }

    /// Decodes an encoded image to RGB according to `options`.
    public static func decode(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) throws(ImagingError) -> DecodedImage {
        let format = try supportedFormat(bytes)
        var decoded: DecodedImage
        switch format {
        case .jpeg:
            let header = try JPEGCodec.info(bytes)
            try checkPixelLimit(header.info, options: options)
            decoded = try JPEGCodec.decode(bytes, header: header, options: options)
        default:
            let info = try PNGCodec.info(bytes)
            try checkPixelLimit(info, options: options)
            decoded = try PNGCodec.decode(bytes, info: info)
        }
        if options.applyOrientation, decoded.info.orientation != 1 {
            decoded.image = decoded.image.applyingOrientation(decoded.info.orientation)
        }
        return decoded
    }

    static func supportedFormat(_ bytes: [UInt8]) throws(ImagingError) -> ImageFormat {
        if bytes.isEmpty { throw ImagingError(.empty, format: nil, reason: "the file is empty (0 bytes)") }
        let format = ImageFormat.sniff(bytes)
        switch format {
        case .jpeg, .png: return format
        case .text: throw ImagingError(.unsupported, format: .text, reason: "not an image: the file holds text")
        case .unknown: throw ImagingError(.unsupported, format: .unknown, reason: "not an image: unrecognised content")
        default: throw ImagingError(.unsupported, format: format, reason: "unsupported format \"\(format.rawValue)\"; Dropline reads JPEG and PNG")
        }
    }

    static func checkPixelLimit(_ info: ImageInfo, options: DecodeOptions) throws(ImagingError) {
        let pixels = info.width.multipliedReportingOverflow(by: info.height)
        if pixels.overflow || pixels.partialValue > options.maxPixels {
            let mp = Double(info.width) * Double(info.height) / 1e6
            throw ImagingError(.tooLarge, format: info.format, reason:
                "\(info.width)x\(info.height) is \(formatMP(mp)) megapixels, above the limit of \(formatMP(Double(options.maxPixels) / 1e6))")
        }
    }

    static func formatMP(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String((value * 10).rounded() / 10)
    }
}
