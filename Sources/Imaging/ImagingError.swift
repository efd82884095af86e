import DroplineSupport
import SystemFiles

/// Why an image could not be used: the kind, the file, the decoder's own words, and a remedy.
public struct ImagingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure; its raw value is the outcome name in `dropline image info`.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// The file has no bytes (or is still being written).
        case empty
        /// The data ends before the image does.
        case truncated
        /// The decoder found damaged data.
        case corrupt
        /// Not JPEG or PNG (the format is named), or not an image at all.
        case unsupported
        /// Its header claims more pixels than the configured limit.
        case tooLarge = "too_large"
        /// The file could not be read (permissions, a folder, an I/O error).
        case unreadable
        /// Not a regular file: a symbolic link, a FIFO, a socket or a device, never opened.
        case notRegular = "not_regular"
    }

    public let kind: Kind
    /// The file concerned, when there is one.
    public var file: String?
    /// The format from the magic bytes, when known.
    public let format: ImageFormat?
    /// What went wrong, in the decoder's or the system's own words.
    public let reason: String

    public init(_ kind: Kind, format: ImageFormat?, reason: String, file: String? = nil) {
        self.kind = kind
        self.format = format
        self.reason = reason
        self.file = file
    }

    /// What the user can do about it.
    public var remedy: String {
        switch kind {
        case .empty: "if the file is still being copied, wait for the copy to finish; otherwise copy it again from its source"
        case .truncated: "copy the file again from its source; the copy is incomplete"
        case .corrupt: "re-export or copy the image again from its source; its data is damaged"
        case .unsupported:
            format == .text || format == .unknown
                ? "this is not an image; remove it from the folder"
                : "convert it to JPEG or PNG (for example `convert in.\(format?.rawValue ?? "img") out.png`)"
        case .tooLarge: "downscale the image, or raise the pixel limit (--max-megapixels) if it is genuine"
        case .unreadable: "check that the file exists and is readable by the user running Dropline"
        case .notRegular: NotRegularFile.remedy
        }
    }

    public var description: String {
        let subject = file.map { "'\(DisplayText.escaped($0))': " } ?? ""
        return "\(subject)\(kind.rawValue): \(reason) (remedy: \(remedy))"
    }
}
