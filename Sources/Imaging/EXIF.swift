/// Reads the EXIF orientation tag (0x0112) from a JPEG's APP1 segment or a PNG's eXIf chunk.
///
/// Only IFD0 is read and only the orientation tag is looked for; every offset is bounds-checked, so a
/// damaged EXIF block yields "no orientation" (1), never a crash.
public enum EXIF {
    /// The orientation (1 to 8) stored in a JPEG or PNG file, or 1 when there is none or it is invalid.
    public static func orientation(in bytes: [UInt8], format: ImageFormat) -> Int {
        switch format {
        case .jpeg: jpegTIFFBlock(bytes).map(orientation(tiff:)) ?? 1
        case .png: pngTIFFBlock(bytes).map(orientation(tiff:)) ?? 1
        default: 1
        }
    }

    /// The orientation in a TIFF-structured EXIF block (starting at the "II*\0" / "MM\0*" header).
    public static func orientation(tiff: ArraySlice<UInt8>) -> Int {
        let t = Array(tiff)
        guard t.count >= 8 else { return 1 }
        let little: Bool
        switch (t[0], t[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return 1
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= t.count else { return nil }
            return little ? Int(t[o]) | Int(t[o + 1]) << 8 : Int(t[o]) << 8 | Int(t[o + 1])
        }
        func u32(_ o: Int) -> Int? {
            guard let a = u16(o), let b = u16(o + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return 1 }
        for entry in 0..<min(count, 1000) {
            let e = ifd + 2 + entry * 12
            guard let tag = u16(e) else { return 1 }
            if tag == 0x0112 {
                guard let type = u16(e + 2), type == 3, let value = u16(e + 8) else { return 1 }
                return (1...8).contains(value) ? value : 1
            }
        }
        return 1
    }

    /// The TIFF block of the first "Exif\0\0" APP1 segment, scanning markers up to the first scan.
    static func jpegTIFFBlock(_ b: [UInt8]) -> ArraySlice<UInt8>? {
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return nil }
            var marker = b[i + 1]
            while marker == 0xFF, i + 2 < b.count {  // fill bytes
                i += 1
                marker = b[i + 1]
            }
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) {
                i += 2
                continue
            }
            if marker == 0xDA || marker == 0xD9 { return nil }
            guard i + 4 <= b.count else { return nil }
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            let start = i + 4
            let end = i + 2 + length
            guard length >= 2, end <= b.count else { return nil }
            if marker == 0xE1, end - start >= 14, Array(b[start..<start + 6]) == Array("Exif\0\0".utf8) {
                return b[(start + 6)..<end]
            }
            i = end
        }
        return nil
    }

    /// The data of a PNG eXIf chunk before the first IDAT.
    static func pngTIFFBlock(_ b: [UInt8]) -> ArraySlice<UInt8>? { PNGCodec.chunk("eXIf", in: b) }
}

extension RGBImage {
    /// The image as it should be displayed for an EXIF orientation (1 to 8): phone photos upright.
    public func applyingOrientation(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)  // 8
                        }
                        let s = (sy * w + sx) * 3, d = (y * ow + x) * 3
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}
