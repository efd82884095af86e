/// File formats recognised by their first bytes (never by their name).
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case jpeg, png
    case gif, webp, bmp, tiff, heic, avif, jpeg2000, jpegxl, ico, psd
    /// Readable text, not an image.
    case text
    case unknown

    /// Whether Dropline decodes this format.
    public var isSupported: Bool { self == .jpeg || self == .png }

    /// The format of `bytes`, from magic numbers.
    public static func sniff(_ bytes: some RandomAccessCollection<UInt8>) -> ImageFormat {
        let head = Array(bytes.prefix(32))
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<offset + magic.count]) == magic
        }
        func ascii(_ s: String, at offset: Int = 0) -> Bool { starts(Array(s.utf8), at: offset) }

        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if ascii("GIF87a") || ascii("GIF89a") { return .gif }
        if ascii("RIFF") && ascii("WEBP", at: 8) { return .webp }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .tiff }
        if ascii("ftyp", at: 4), head.count >= 12 {
            let brand = String(decoding: head[8..<12], as: UTF8.self)
            if ["avif", "avis"].contains(brand) { return .avif }
            if ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].contains(brand) { return .heic }
        }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return .jpeg2000 }
        if starts([0xFF, 0x0A]) || starts([0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20]) { return .jpegxl }
        if ascii("8BPS") { return .psd }
        if ascii("BM"), head.count >= 18 {
            // "BM" alone is weak; the DIB header that follows has one of a few known sizes.
            let dib = Int(head[14]) | Int(head[15]) << 8 | Int(head[16]) << 16 | Int(head[17]) << 24
            if [12, 40, 52, 56, 64, 108, 124].contains(dib) { return .bmp }
        }
        if starts([0x00, 0x00, 0x01, 0x00]), head.count >= 6, head[4] != 0 || head[5] != 0 { return .ico }
        if !head.isEmpty, looksLikeText(head) { return .text }
        return .unknown
    }

    private static func looksLikeText(_ bytes: [UInt8]) -> Bool {
        bytes.allSatisfy { $0 == 9 || $0 == 10 || $0 == 13 || (32...126).contains($0) || $0 >= 0x80 }
            && String(validating: bytes, as: UTF8.self) != nil
    }
}

private extension String {
    init?(validating bytes: [UInt8], as _: UTF8.Type) {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var result = ""
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): result.unicodeScalars.append(scalar)
            case .emptyInput: break loop
            case .error:
                // a multi-byte character cut by the 32-byte window is still text
                return nil
            }
        }
        self = result
    }
}
