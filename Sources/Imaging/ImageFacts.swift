/// What a file is as an image, before any model looks at it: the facts of its header (format,
/// size as displayed, colour model, channels, file size) and four measures of its pixels. The
/// data-quality baseline learns their distribution from the raw training images and checks every
/// served batch against it (Monitoring's `DataQuality`).
public struct ImageFacts: Sendable, Equatable, Codable {
    public var format: String
    /// Width and height as displayed (after the EXIF orientation: 5 to 8 swap them).
    public var width: Int
    public var height: Int
    /// grayscale, rgb, ycbcr, cmyk, ycck, palette, grayscale+alpha, rgba (the decoder's words).
    public var colorModel: String
    /// Channels as stored in the file.
    public var channels: Int
    public var fileBytes: Int
    public var measures: ImageMeasures
    /// A 64-bit difference hash of the pixels (the 9x8 luma grid's left-to-right gradients, from the
    /// 64 px copy the measures use): equal for the same picture re-encoded or resized, for
    /// near-duplicate counting.
    public var differenceHash: UInt64

    public init(info: ImageInfo, fileBytes: Int, pixels image: RGBImage) {
        format = info.format.rawValue
        let swapped = info.orientation >= 5 && info.orientation <= 8
        width = swapped ? info.height : info.width
        height = swapped ? info.width : info.height
        colorModel = info.colorModel
        channels = info.channels
        self.fileBytes = fileBytes
        // one small copy serves both: the measures and the difference hash
        let small = image.resizedAndCropped(to: .square(ImageMeasures.side))
        measures = ImageMeasures(small)
        differenceHash = Self.differenceHash(small)
    }

    /// The difference hash (dHash): the image shrunk to 9x8 luma, one bit per horizontal neighbour
    /// pair, set when the left one is brighter.
    static func differenceHash(_ image: RGBImage) -> UInt64 {
        let grid = image.resized(to: Size(width: 9, height: 8))
        var hash: UInt64 = 0
        for y in 0..<8 {
            for x in 0..<8 {
                hash <<= 1
                if ImageMeasures.luma(grid, x, y) > ImageMeasures.luma(grid, x + 1, y) { hash |= 1 }
            }
        }
        return hash
    }
}

/// Four measures of an image's pixels, taken at a fixed square side (`side`, resized and centre
/// cropped) so that they compare across resolutions. Luma is ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B),
/// in 0...1.
public struct ImageMeasures: Sendable, Equatable, Codable {
    /// Mean luma.
    public var brightness: Double
    /// RMS contrast: the standard deviation of luma.
    public var contrast: Double
    /// Variance of the 4-neighbour Laplacian of luma over the interior pixels: near 0 for a blank or
    /// blurred frame.
    public var sharpness: Double
    /// Mean HSV saturation, (max - min) / max per pixel (0 for black): 0 for a grey picture.
    public var saturation: Double

    public static let side = 64

    public init(brightness: Double, contrast: Double, sharpness: Double, saturation: Double) {
        self.brightness = brightness
        self.contrast = contrast
        self.sharpness = sharpness
        self.saturation = saturation
    }

    public init(_ image: RGBImage) {
        let w = image.width, h = image.height, n = Double(w * h)
        var y = [Double](repeating: 0, count: w * h)
        var sum = 0.0, saturation = 0.0
        image.pixels.withUnsafeBufferPointer { p in
            for i in 0..<(w * h) {
                let r = Double(p[3 * i]), g = Double(p[3 * i + 1]), b = Double(p[3 * i + 2])
                let l = (0.299 * r + 0.587 * g + 0.114 * b) / 255
                y[i] = l
                sum += l
                let high = max(r, g, b), low = min(r, g, b)
                if high > 0 { saturation += (high - low) / high }
            }
        }
        let mean = sum / n
        var squares = 0.0
        for v in y { squares += (v - mean) * (v - mean) }
        var laplacians: [Double] = []
        laplacians.reserveCapacity(max(0, (w - 2) * (h - 2)))
        if w >= 3 && h >= 3 {
            for row in 1..<(h - 1) {
                for col in 1..<(w - 1) {
                    let i = row * w + col
                    laplacians.append(y[i - 1] + y[i + 1] + y[i - w] + y[i + w] - 4 * y[i])
                }
            }
        }
        let lapMean = laplacians.isEmpty ? 0 : laplacians.reduce(0, +) / Double(laplacians.count)
        let lapVariance = laplacians.isEmpty ? 0 : laplacians.reduce(0) { $0 + ($1 - lapMean) * ($1 - lapMean) } / Double(laplacians.count)
        self.init(brightness: mean, contrast: (squares / n).squareRoot(), sharpness: lapVariance, saturation: saturation / n)
    }

    static func luma(_ image: RGBImage, _ x: Int, _ y: Int) -> Double {
        let i = (y * image.width + x) * 3
        return 0.299 * Double(image.pixels[i]) + 0.587 * Double(image.pixels[i + 1]) + 0.114 * Double(image.pixels[i + 2])
    }
}
