/// Antialiased resizing by separable convolution with a triangle (bilinear) filter whose support
/// grows with the reduction factor, the same scheme as Pillow's `resize(..., BILINEAR)`: downscaling
/// averages every source pixel under the output pixel instead of sampling and aliasing.
///
/// The horizontal pass runs first, on only the source rows that the vertical pass needs; both passes
/// keep float intermediates (Pillow rounds to 8 bits in between, so results differ by a fraction of a
/// grey level). Weights are computed once per call and stored padded to a fixed tap count, so the inner
/// loops are branch-free.
struct ResampleWeights {
    let outSize: Int
    let taps: Int
    /// First source index for each output index.
    let start: [Int]
    /// outSize * taps weights, zero beyond each output's real taps.
    let weights: [Float]

    init(inSize: Int, outSize: Int) {
        precondition(inSize > 0 && outSize > 0, "resample sizes must be positive, got \(inSize) -> \(outSize)")
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle filter's support is 1, widened when reducing
        let taps = min(Int(support.rounded(.up)) * 2 + 1, inSize)
        var start = [Int](repeating: 0, count: outSize)
        var weights = [Float](repeating: 0, count: outSize * taps)
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            var lo = max(Int(center - support + 0.5), 0)
            var hi = min(Int(center + support + 0.5), inSize)
            if hi - lo > taps {  // guard against rounding at the edges
                hi = lo + taps
            }
            if hi <= lo {  // can only happen at extreme ratios; take the nearest pixel
                lo = min(max(Int(center), 0), inSize - 1)
                hi = lo + 1
            }
            var local = [Double](repeating: 0, count: hi - lo)
            var total = 0.0
            for x in lo..<hi {
                let t = (Double(x) - center + 0.5) / filterScale
                let w = max(0, 1 - abs(t))
                local[x - lo] = w
                total += w
            }
            if total == 0 {
                local = [Double](repeating: 1, count: hi - lo)
                total = Double(hi - lo)
            }
            // shift the window left if it would run past the end once padded to `taps`
            let first = min(lo, inSize - taps)
            start[i] = first
            for x in lo..<hi { weights[i * taps + (x - first)] = Float(local[x - lo] / total) }
        }
        self.outSize = outSize
        self.taps = taps
        self.start = start
        self.weights = weights
    }
}

extension RGBImage {
    /// The image resized to exactly `size` with antialiasing (Pillow's BILINEAR resize within a
    /// fraction of a grey level). Resizing to the same size returns the image unchanged.
    public func resized(to size: Size) -> RGBImage {
        precondition(size.width > 0 && size.height > 0, "resize target must be positive, got \(size)")
        if size.width == width && size.height == height { return self }
        let horizontal = ResampleWeights(inSize: width, outSize: size.width)
        let vertical = ResampleWeights(inSize: height, outSize: size.height)
        // Source rows the vertical pass reads.
        let firstRow = vertical.start[0]
        let lastRow = vertical.start[size.height - 1] + vertical.taps
        let rows = lastRow - firstRow
        let rowFloats = size.width * 3
        var temporary = [Float](repeating: 0, count: rows * rowFloats)
        var sourceRow = [Float](repeating: 0, count: width * 3)
        let inWidth = width
        pixels.withUnsafeBufferPointer { src in
            temporary.withUnsafeMutableBufferPointer { tmp in
                sourceRow.withUnsafeMutableBufferPointer { row in
                    horizontal.weights.withUnsafeBufferPointer { hw in
                        horizontal.start.withUnsafeBufferPointer { hs in
                            let taps = horizontal.taps
                            for r in 0..<rows {
                                let base = (firstRow + r) * inWidth * 3
                                for i in 0..<(inWidth * 3) { row[i] = Float(src[base + i]) }
                                let out = tmp.baseAddress! + r * rowFloats
                                for x in 0..<size.width {
                                    var red: Float = 0, green: Float = 0, blue: Float = 0
                                    let s = hs[x] * 3
                                    let w = hw.baseAddress! + x * taps
                                    for k in 0..<taps {
                                        let weight = w[k]
                                        red += weight * row[s + 3 * k]
                                        green += weight * row[s + 3 * k + 1]
                                        blue += weight * row[s + 3 * k + 2]
                                    }
                                    out[3 * x] = red
                                    out[3 * x + 1] = green
                                    out[3 * x + 2] = blue
                                }
                            }
                        }
                    }
                }
            }
        }
        var output = [UInt8](repeating: 0, count: size.width * size.height * 3)
        var accumulator = [Float](repeating: 0, count: rowFloats)
        temporary.withUnsafeBufferPointer { tmp in
            output.withUnsafeMutableBufferPointer { out in
                accumulator.withUnsafeMutableBufferPointer { acc in
                    for y in 0..<size.height {
                        for i in 0..<rowFloats { acc[i] = 0 }
                        let s = vertical.start[y] - firstRow
                        for k in 0..<vertical.taps {
                            let weight = vertical.weights[y * vertical.taps + k]
                            if weight == 0 { continue }
                            let row = tmp.baseAddress! + (s + k) * rowFloats
                            for i in 0..<rowFloats { acc[i] += weight * row[i] }
                        }
                        let o = out.baseAddress! + y * rowFloats
                        for i in 0..<rowFloats { o[i] = clampToByte(acc[i]) }
                    }
                }
            }
        }
        return RGBImage(width: size.width, height: size.height, pixels: output)
    }

    /// Resized so that the shorter side is `side`, keeping the aspect ratio (the longer side rounded).
    public func resized(shorterSide side: Int) -> RGBImage {
        precondition(side > 0, "shorter side must be positive, got \(side)")
        let shorter = min(width, height)
        let w = max(1, Int((Double(width) * Double(side) / Double(shorter)).rounded()))
        let h = max(1, Int((Double(height) * Double(side) / Double(shorter)).rounded()))
        return resized(to: Size(width: width <= height ? side : w, height: height < width ? side : h))
    }
}

@inline(__always)
func clampToByte(_ value: Float) -> UInt8 {
    let v = (value + 0.5).rounded(.down)
    return v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(v))
}
