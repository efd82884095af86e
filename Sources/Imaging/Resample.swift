/// Antialiased resizing by separable convolution with a triangle (bilinear) filter whose support
/// grows with the reduction factor, the same scheme as Pillow's `resize(..., BILINEAR)`: downscaling
/// averages every source pixel under the output pixel instead of sampling and aliasing.
///
/// Intermediates stay in float (Pillow rounds to 8 bits between its passes, so results differ by a
/// fraction of a grey level). Weights are computed once per call.
struct ResampleWeights {
    let outSize: Int
    let taps: Int
    /// First source index for each output index.
    let start: [Int]
    /// outSize * taps weights, zero beyond each output's real taps.
    let weights: [Float]
    /// Per output: the offset of its first non-zero weight from `start`, and how many follow.
    let offset: [Int]
    let count: [Int]

    init(inSize: Int, outSize: Int) {
        precondition(inSize > 0 && outSize > 0, "resample sizes must be positive, got \(inSize) -> \(outSize)")
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle filter's support is 1, widened when reducing
        let taps = min(Int(support.rounded(.up)) * 2 + 1, inSize)
        var start = [Int](repeating: 0, count: outSize)
        var weights = [Float](repeating: 0, count: outSize * taps)
        var offset = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
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
            offset[i] = lo - first
            count[i] = hi - lo
            for x in lo..<hi { weights[i * taps + (x - first)] = Float(local[x - lo] / total) }
        }
        self.outSize = outSize
        self.taps = taps
        self.start = start
        self.weights = weights
        self.offset = offset
        self.count = count
    }
}

extension RGBImage {
    /// The image resized to exactly `size` with antialiasing (Pillow's BILINEAR resize within a
    /// fraction of a grey level). Resizing to the same size returns the image unchanged.
    ///
    /// The vertical pass runs first, straight from the bytes, vectorised over whole rows; it leaves one
    /// row of RGBX floats, which the horizontal pass then reduces with one 4-wide multiply-add per tap.
    /// So the costly per-pixel pass runs only on output rows.
    public func resized(to size: Size) -> RGBImage {
        precondition(size.width > 0 && size.height > 0, "resize target must be positive, got \(size)")
        if size.width == width && size.height == height { return self }
        let horizontal = ResampleWeights(inSize: width, outSize: size.width)
        let vertical = ResampleWeights(inSize: height, outSize: size.height)
        let inWidth = width, outWidth = size.width
        let rowSamples = inWidth * 3
        var output = [UInt8](repeating: 0, count: size.width * size.height * 3)
        var column = [Float](repeating: 0, count: rowSamples)
        var padded = [SIMD4<Float>](repeating: .zero, count: inWidth)
        pixels.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { out in
                column.withUnsafeMutableBufferPointer { acc in
                    padded.withUnsafeMutableBufferPointer { row in
                        vertical.weights.withUnsafeBufferPointer { vw in
                            horizontal.weights.withUnsafeBufferPointer { hw in
                                for y in 0..<size.height {
                                    // vertical: acc = sum_k w_k * source row (start + k)
                                    for i in 0..<rowSamples { acc[i] = 0 }
                                    let first = vertical.start[y]
                                    for k in 0..<vertical.taps {
                                        let weight = vw[y * vertical.taps + k]
                                        if weight == 0 { continue }
                                        let line = src.baseAddress! + (first + k) * rowSamples
                                        for i in 0..<rowSamples { acc[i] += weight * Float(line[i]) }
                                    }
                                    for x in 0..<inWidth {
                                        row[x] = SIMD4(acc[3 * x], acc[3 * x + 1], acc[3 * x + 2], 0)
                                    }
                                    // horizontal
                                    let o = out.baseAddress! + y * outWidth * 3
                                    for x in 0..<outWidth {
                                        let skip = horizontal.offset[x]
                                        let w = hw.baseAddress! + x * horizontal.taps + skip
                                        let r = row.baseAddress! + horizontal.start[x] + skip
                                        var sum = SIMD4<Float>.zero
                                        for k in 0..<horizontal.count[x] {
                                            sum.addProduct(SIMD4(repeating: w[k]), r[k])
                                        }
                                        o[3 * x] = clampToByte(sum.x)
                                        o[3 * x + 1] = clampToByte(sum.y)
                                        o[3 * x + 2] = clampToByte(sum.z)
                                    }
                                }
                            }
                        }
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
