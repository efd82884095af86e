#if canImport(Glibc)
import Glibc
#endif

extension RGBImage {
    /// Rotated counter-clockwise by `degrees` about the centre with bilinear interpolation, as
    /// Pillow's `rotate(degrees, BILINEAR, expand=..., fillcolor=...)`. Areas outside the source take
    /// `fill`. With `expand`, the output grows to hold the whole rotated image; otherwise it keeps
    /// the source size and the corners are cut.
    public func rotated(degrees: Double, fill: RGB = .black, expand: Bool = false) -> RGBImage {
        let radians = -degrees * Double.pi / 180
        // Rounded like Pillow, so that multiples of 90 degrees are exact.
        let a = Self.round15(cos(radians)), b = Self.round15(sin(radians))
        let d = -b, e = a
        let w = Double(width), h = Double(height)
        let cx = w / 2, cy = h / 2
        var outW = width, outH = height
        if expand {
            var xs: [Double] = [], ys: [Double] = []
            for (x, y) in [(0.0, 0.0), (w, 0), (w, h), (0, h)] {
                xs.append(a * (x - cx) + b * (y - cy) + cx)
                ys.append(d * (x - cx) + e * (y - cy) + cy)
            }
            outW = Int((xs.max()! - 1e-9).rounded(.up) - (xs.min()! + 1e-9).rounded(.down))
            outH = Int((ys.max()! - 1e-9).rounded(.up) - (ys.min()! + 1e-9).rounded(.down))
            outW = max(outW, 1)
            outH = max(outH, 1)
        }
        let offsetX = Double(outW - width) / 2, offsetY = Double(outH - height) / 2
        var out = [UInt8](repeating: 0, count: outW * outH * 3)
        let inW = width, inH = height
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<outH {
                    let v = Double(oy) + 0.5 - offsetY - cy
                    for ox in 0..<outW {
                        let u = Double(ox) + 0.5 - offsetX - cx
                        let xin = a * u + b * v + cx
                        let yin = d * u + e * v + cy
                        let o = (oy * outW + ox) * 3
                        if xin < 0 || xin >= w || yin < 0 || yin >= h {
                            dst[o] = fill.r
                            dst[o + 1] = fill.g
                            dst[o + 2] = fill.b
                            continue
                        }
                        let fx = xin - 0.5, fy = yin - 0.5
                        let x0 = Int(fx.rounded(.down)), y0 = Int(fy.rounded(.down))
                        let dx = Float(fx - Double(x0)), dy = Float(fy - Double(y0))
                        let xa = max(x0, 0), xb = min(x0 + 1, inW - 1)
                        let ya = max(y0, 0), yb = min(y0 + 1, inH - 1)
                        for c in 0..<3 {
                            let p00 = Float(src[(ya * inW + xa) * 3 + c]), p01 = Float(src[(ya * inW + xb) * 3 + c])
                            let p10 = Float(src[(yb * inW + xa) * 3 + c]), p11 = Float(src[(yb * inW + xb) * 3 + c])
                            let top = p00 + (p01 - p00) * dx
                            let bottom = p10 + (p11 - p10) * dx
                            dst[o + c] = clampToByte(top + (bottom - top) * dy)
                        }
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out)
    }

    static func round15(_ x: Double) -> Double { (x * 1e15).rounded() / 1e15 }
}
