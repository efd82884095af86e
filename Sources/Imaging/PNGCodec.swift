import CCodecs

/// PNG through libpng's simplified API. The header facts come from IHDR, parsed here, so the pixel
/// limit is checked before libpng is even called.
enum PNGCodec {
    static func info(_ bytes: [UInt8]) throws(ImagingError) -> ImageInfo {
        // signature (8) + IHDR length (4) + "IHDR" (4) + 13 bytes of data
        guard bytes.count >= 33, String(decoding: bytes[12..<16], as: UTF8.self) == "IHDR" else {
            throw ImagingError(bytes.count < 33 ? .truncated : .corrupt, format: .png,
                               reason: "the PNG header (IHDR) is missing or cut short")
        }
        func u32(_ o: Int) -> Int { Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]) }
        let width = u32(16), height = u32(20)
        let bitDepth = Int(bytes[24]), colorType = Int(bytes[25])
        guard width > 0, height > 0 else {
            throw ImagingError(.corrupt, format: .png, reason: "the PNG header claims a size of \(width)x\(height)")
        }
        let hasTRNS = chunk("tRNS", in: bytes) != nil
        let (channels, model): (Int, String)
        switch colorType {
        case 0: (channels, model) = (1, "grayscale")
        case 2: (channels, model) = (3, "rgb")
        case 3: (channels, model) = (1, "palette")
        case 4: (channels, model) = (2, "grayscale+alpha")
        case 6: (channels, model) = (4, "rgba")
        default: throw ImagingError(.corrupt, format: .png, reason: "the PNG header has an invalid colour type \(colorType)")
        }
        return ImageInfo(format: .png, width: width, height: height, channels: channels, bitDepth: bitDepth,
                         colorModel: model, orientation: EXIF.orientation(in: bytes, format: .png),
                         progressive: bytes[28] == 1, hasAlpha: colorType == 4 || colorType == 6 || hasTRNS)
    }

    /// The data of the first chunk called `name` before the image data (IDAT), or nil.
    static func chunk(_ name: String, in bytes: [UInt8]) -> ArraySlice<UInt8>? {
        var i = 8
        while i + 12 <= bytes.count {
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            let start = i + 8
            guard start + length + 4 <= bytes.count else { return nil }
            if type == name { return bytes[start..<(start + length)] }
            if type == "IDAT" || type == "IEND" { return nil }
            i = start + length + 4
        }
        return nil
    }

    static func decode(_ bytes: [UInt8], info: ImageInfo) throws(ImagingError) -> DecodedImage {
        var result = dl_png_result()
        let channels = info.hasAlpha ? 4 : 3
        var raw = [UInt8](repeating: 0, count: info.width * info.height * channels)
        let status = bytes.withUnsafeBufferPointer { input in
            raw.withUnsafeMutableBufferPointer { output in
                dl_png_decode(input.baseAddress, input.count, Int32(channels), output.baseAddress, output.count, &result)
            }
        }
        if status != 0 {
            let text = JPEGCodec.message(result.error)
            let lower = text.lowercased()
            let truncated = ["not enough", "end of", "read error", "unexpected end", "truncated"].contains { lower.contains($0) }
            throw ImagingError(truncated ? .truncated : .corrupt, format: .png, reason: "libpng: \(text)")
        }
        let rgb = channels == 4 ? compositeOverWhite(raw) : raw
        return DecodedImage(image: RGBImage(width: info.width, height: info.height, pixels: rgb),
                            info: info, warnings: [], scaleDenominator: 1)
    }

    /// RGBA to RGB over a white background, in 8-bit sRGB values (as a viewer shows a transparent PNG
    /// on a white page): out = (c * a + 255 * (255 - a)) / 255.
    static func compositeOverWhite(_ rgba: [UInt8]) -> [UInt8] {
        let n = rgba.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let a = Int(rgba[4 * i + 3])
            for c in 0..<3 {
                let t = Int(rgba[4 * i + c]) * a + 255 * (255 - a) + 128
                rgb[3 * i + c] = UInt8((t + (t >> 8)) >> 8)
            }
        }
        return rgb
    }
}
