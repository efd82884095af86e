import CCodecs

/// JPEG through libjpeg-turbo (via the CCodecs shim, which turns libjpeg's fatal errors into codes).
enum JPEGCodec {
    struct Header {
        var info: ImageInfo
        var raw: dl_jpeg_result
    }

    static func info(_ bytes: [UInt8]) throws(ImagingError) -> Header {
        var result = dl_jpeg_result()
        let status = bytes.withUnsafeBufferPointer { dl_jpeg_header($0.baseAddress, $0.count, 1, &result) }
        if status != 0 { throw failure(result) }
        let model: String
        switch Int(result.color_space) {
        case Int(DL_JPEG_CS_GRAY): model = "grayscale"
        case Int(DL_JPEG_CS_RGB): model = "rgb"
        case Int(DL_JPEG_CS_YCBCR): model = "ycbcr"
        case Int(DL_JPEG_CS_CMYK): model = "cmyk"
        case Int(DL_JPEG_CS_YCCK): model = "ycck"
        default: model = "unknown"
        }
        let info = ImageInfo(
            format: .jpeg, width: Int(result.width), height: Int(result.height),
            channels: Int(result.components), bitDepth: 8, colorModel: model,
            orientation: EXIF.orientation(in: bytes, format: .jpeg),
            progressive: result.progressive != 0, hasAlpha: false)
        return Header(info: info, raw: result)
    }

    /// The largest DCT scale denominator (8, 4, 2, else 1) whose output still covers `minimum`
    /// (given in display orientation).
    static func scaleDenominator(for info: ImageInfo, minimum: Size?) -> Int {
        guard let minimum else { return 1 }
        let swaps = info.orientation >= 5
        let needW = swaps ? minimum.height : minimum.width
        let needH = swaps ? minimum.width : minimum.height
        for denominator in [8, 4, 2] {
            let w = (info.width + denominator - 1) / denominator
            let h = (info.height + denominator - 1) / denominator
            if w >= needW && h >= needH { return denominator }
        }
        return 1
    }

    static func decode(_ bytes: [UInt8], header: Header, options: DecodeOptions) throws(ImagingError) -> DecodedImage {
        let denominator = scaleDenominator(for: header.info, minimum: options.minimumSize)
        var result = dl_jpeg_result()
        let w = (header.info.width + denominator - 1) / denominator
        let h = (header.info.height + denominator - 1) / denominator
        let components = header.raw.color_space == DL_JPEG_CS_CMYK || header.raw.color_space == DL_JPEG_CS_YCCK ? 4 : 3
        var raw = [UInt8](repeating: 0, count: w * h * components)
        let status = bytes.withUnsafeBufferPointer { input in
            raw.withUnsafeMutableBufferPointer { output in
                dl_jpeg_decode(input.baseAddress, input.count, Int32(denominator), output.baseAddress, output.count, &result)
            }
        }
        if status != 0 { throw failure(result) }
        precondition(Int(result.out_width) == w && Int(result.out_height) == h && Int(result.out_components) == components,
                     "libjpeg scaled \(header.info.width)x\(header.info.height) by 1/\(denominator) to \(result.out_width)x\(result.out_height)x\(result.out_components), expected \(w)x\(h)x\(components)")
        var warnings: [String] = []
        if result.warnings > 0 {
            let first = message(result.warning)
            let more = result.warnings > 1 ? " (and \(result.warnings - 1) more warnings)" : ""
            if result.premature_end != 0 {
                if !options.acceptTruncated {
                    throw ImagingError(.truncated, format: .jpeg, reason: "the JPEG data ends before the image does: \(first)\(more)")
                }
            } else if !options.acceptWarnings {
                throw ImagingError(.corrupt, format: .jpeg, reason: "damaged JPEG data: \(first)\(more)")
            }
            warnings.append(first + more)
        }
        let rgb = components == 4 ? cmykToRGB(raw, inverted: result.saw_adobe != 0) : raw
        return DecodedImage(image: RGBImage(width: w, height: h, pixels: rgb), info: header.info,
                            warnings: warnings, scaleDenominator: denominator)
    }

    /// CMYK to RGB with the naive formula (R = (255 - C)(255 - K) / 255, as Pillow does). Adobe
    /// applications store CMYK inverted (and mark the file with an APP14 Adobe segment); then the
    /// stored values are already 255 - C.
    static func cmykToRGB(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let n = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        @inline(__always) func mul255(_ a: Int, _ b: Int) -> UInt8 {
            let t = a * b + 128
            return UInt8((t + (t >> 8)) >> 8)
        }
        for i in 0..<n {
            var c = Int(cmyk[4 * i]), m = Int(cmyk[4 * i + 1]), y = Int(cmyk[4 * i + 2]), k = Int(cmyk[4 * i + 3])
            if !inverted {
                c = 255 - c
                m = 255 - m
                y = 255 - y
                k = 255 - k
            }
            rgb[3 * i] = mul255(c, k)
            rgb[3 * i + 1] = mul255(m, k)
            rgb[3 * i + 2] = mul255(y, k)
        }
        return rgb
    }

    static func failure(_ result: dl_jpeg_result) -> ImagingError {
        let text = message(result.error)
        if result.premature_end != 0 {
            return ImagingError(.truncated, format: .jpeg, reason: "the JPEG data ends early: \(text)")
        }
        return ImagingError(.corrupt, format: .jpeg, reason: "libjpeg: \(text)")
    }

    static func message<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
