#if canImport(Glibc)
import Glibc
#endif
public import Randomness

extension RGBImage {
    /// Gaussian blur with standard deviation `sigma` pixels: a separable kernel of radius ceil(3 sigma),
    /// edges extended. (Pillow's GaussianBlur approximates the same blur with three box blurs; the two
    /// agree within about a grey level on photographs.) A sigma of 0 returns the image unchanged.
    public func blurred(sigma: Double) -> RGBImage {
        precondition(sigma >= 0 && sigma.isFinite, "blur sigma must be a finite number >= 0, got \(sigma)")
        if sigma == 0 { return self }
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        let w = width, h = height
        var horizontal = [Float](repeating: 0, count: w * h * 3)
        pixels.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let row = y * w * 3
                    for x in 0..<w {
                        var r: Float = 0, g: Float = 0, b: Float = 0
                        for k in -radius...radius {
                            let sx = min(max(x + k, 0), w - 1)
                            let weight = kernel[k + radius]
                            let s = row + sx * 3
                            r += weight * Float(src[s])
                            g += weight * Float(src[s + 1])
                            b += weight * Float(src[s + 2])
                        }
                        dst[row + x * 3] = r
                        dst[row + x * 3 + 1] = g
                        dst[row + x * 3 + 2] = b
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: pixels.count)
        var accumulator = [Float](repeating: 0, count: w * 3)
        horizontal.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    for i in 0..<(w * 3) { accumulator[i] = 0 }
                    for k in -radius...radius {
                        let sy = min(max(y + k, 0), h - 1)
                        let weight = kernel[k + radius]
                        let row = src.baseAddress! + sy * w * 3
                        for i in 0..<(w * 3) { accumulator[i] += weight * row[i] }
                    }
                    for i in 0..<(w * 3) { dst[y * w * 3 + i] = clampToByte(accumulator[i]) }
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// Adds independent gaussian noise of standard deviation `sigma` grey levels to every sample.
    public func withGaussianNoise(sigma: Double, using generator: inout SeededGenerator) -> RGBImage {
        precondition(sigma >= 0 && sigma.isFinite, "noise sigma must be a finite number >= 0, got \(sigma)")
        if sigma == 0 { return self }
        var out = pixels
        for i in 0..<out.count {
            out[i] = clampToByte(Float(Double(out[i]) + sigma * generator.nextGaussian()))
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Brightness scaled by `factor` (0 black, 1 unchanged), as Pillow's ImageEnhance.Brightness.
    public func adjustingBrightness(_ factor: Double) -> RGBImage {
        precondition(factor >= 0 && factor.isFinite, "brightness factor must be >= 0, got \(factor)")
        let f = Float(factor)
        return RGBImage(width: width, height: height, pixels: pixels.map { clampToByte(Float($0) * f) })
    }

    /// Contrast scaled by `factor` around the mean grey level (0 flat grey, 1 unchanged), as Pillow's
    /// ImageEnhance.Contrast (the mean is of the ITU-R 601 luma).
    public func adjustingContrast(_ factor: Double) -> RGBImage {
        precondition(factor >= 0 && factor.isFinite, "contrast factor must be >= 0, got \(factor)")
        var total = 0.0
        for i in stride(from: 0, to: pixels.count, by: 3) {
            total += (Double(pixels[i]) * 299 + Double(pixels[i + 1]) * 587 + Double(pixels[i + 2]) * 114) / 1000
        }
        let mean = Float((total / Double(pixelCount)).rounded())
        let f = Float(factor)
        return RGBImage(width: width, height: height, pixels: pixels.map { clampToByte(mean + (Float($0) - mean) * f) })
    }
}
