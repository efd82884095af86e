import Foundation
public import Imaging

/// What a person can read of an attribution. Integrated gradients give one value per input value:
/// per-pixel speckle, which says little at a glance. The view (the heatmap PNGs and the reports):
///
/// 1. the per-pixel attribution: the sum over the three channels, signed (`perPixel`; these raw
///    values are kept in `<stem>.attribution.safetensors`);
/// 2. smoothed by a gaussian of sigma = `smoothingFraction` of the side (14 px at 224, 2 px at 32),
///    which aggregates the evidence into regions the size of object parts;
/// 3. drawn over a dimmed grey copy of the image, red where the region's pixels raise the score of
///    the predicted class (evidence for it) and blue where they lower it (evidence against), with an
///    opacity growing with the smoothed value over `scale`, the 95th percentile of its magnitude
///    (none below `floor` of it, full colour at and above it; a high percentile would let the few
///    strongest regions, often at the image's border, wash out the rest);
/// 4. at least `minimumDisplaySide` pixels on a side (bilinear upscaling of image and map).
public enum AttributionView {
    public static let smoothingFraction = 1.0 / 16
    /// Smoothed values below this fraction of `scale` are left uncoloured (weak evidence is not drawn).
    public static let floor: Float = 0.15
    public static let minimumDisplaySide = 224

    /// The signed sum over channels of CHW `values` for an image of `width` x `height`.
    public static func perPixel(_ values: [Float], width: Int, height: Int) -> [Float] {
        let plane = width * height
        precondition(values.count == 3 * plane, "\(values.count) attribution values for a \(width)x\(height) RGB image")
        return (0..<plane).map { values[$0] + values[plane + $0] + values[2 * plane + $0] }
    }

    /// `map` blurred by a separable gaussian of `sigma` pixels (edges clamped).
    ///
    /// Each pass sums the taps in the same order as the plain loop (`naiveSmoothed`), so the result is
    /// the same to the bit; but a row is padded with its edge values once, so the inner loop runs over
    /// contiguous values without clamping and is vectorised (the 85 taps at 224 took 25 ms an image).
    public static func smoothed(_ map: [Float], width: Int, height: Int, sigma: Double) -> [Float] {
        guard sigma > 0, width > 0, height > 0 else { return map }
        precondition(map.count == width * height, "\(map.count) values for a \(width)x\(height) map")
        let kernel = gaussianKernel(sigma)
        let radius = kernel.count / 2
        var across = [Float](repeating: 0, count: map.count), out = across
        var padded = [Float](repeating: 0, count: width + 2 * radius)
        kernel.withUnsafeBufferPointer { k in
            map.withUnsafeBufferPointer { source in
                across.withUnsafeMutableBufferPointer { across in
                    padded.withUnsafeMutableBufferPointer { padded in
                        for y in 0..<height {
                            let row = source.baseAddress! + y * width
                            for i in 0..<padded.count { padded[i] = row[min(max(i - radius, 0), width - 1)] }
                            let target = across.baseAddress! + y * width
                            for t in 0..<k.count {
                                let weight = k[t], shifted = padded.baseAddress! + t
                                for x in 0..<width { target[x] += weight * shifted[x] }
                            }
                        }
                    }
                }
            }
            across.withUnsafeBufferPointer { across in
                out.withUnsafeMutableBufferPointer { out in
                    for y in 0..<height {
                        let target = out.baseAddress! + y * width
                        for t in 0..<k.count {
                            let weight = k[t], row = across.baseAddress! + min(max(y + t - radius, 0), height - 1) * width
                            for x in 0..<width { target[x] += weight * row[x] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The normalised taps of a gaussian of `sigma` pixels, 3 sigma on each side (at least one).
    static func gaussianKernel(_ sigma: Double) -> [Float] {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        let kernel = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let total = kernel.reduce(0, +)
        return kernel.map { $0 / total }
    }

    /// `smoothed` as the plain loop: the definition the fast one is tested against.
    public static func naiveSmoothed(_ map: [Float], width: Int, height: Int, sigma: Double) -> [Float] {
        guard sigma > 0 else { return map }
        let kernel = gaussianKernel(sigma)
        let radius = kernel.count / 2
        var across = [Float](repeating: 0, count: map.count), out = across
        for y in 0..<height {
            for x in 0..<width {
                var sum: Float = 0
                for k in -radius...radius { sum += kernel[k + radius] * map[y * width + min(max(x + k, 0), width - 1)] }
                across[y * width + x] = sum
            }
        }
        for y in 0..<height {
            for x in 0..<width {
                var sum: Float = 0
                for k in -radius...radius { sum += kernel[k + radius] * across[min(max(y + k, 0), height - 1) * width + x] }
                out[y * width + x] = sum
            }
        }
        return out
    }

    /// The 95th percentile of |map| (never below a tiny positive value): the order statistic a full
    /// sort would give, found by selection.
    public static func scale(_ map: [Float]) -> Float {
        guard !map.isEmpty else { return 1e-12 }
        var magnitudes = map.map(abs)
        let rank = min(magnitudes.count - 1, Int(Double(magnitudes.count) * 0.95))
        return max(select(&magnitudes, rank), 1e-12)
    }

    /// The value a sort of `values` would put at `rank` (Hoare's selection, middle pivot; the
    /// values are reordered). NaNs are not expected: attributions are finite.
    static func select(_ values: inout [Float], _ rank: Int) -> Float {
        var low = 0, high = values.count - 1
        while low < high {
            let pivot = values[low + (high - low) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if rank <= j { high = j } else if rank >= i { low = i } else { return values[rank] }
        }
        return values[rank]
    }

    /// The smoothed map of a per-pixel attribution and its colour scale.
    public static func regions(_ perPixel: [Float], width: Int, height: Int) -> (map: [Float], scale: Float) {
        let map = smoothed(perPixel, width: width, height: height, sigma: Double(max(width, height)) * smoothingFraction)
        return (map, scale(map))
    }

    /// The side a view of an image of `side` pixels is drawn at.
    public static func displaySide(_ side: Int) -> Int { max(side, minimumDisplaySide) }

    /// `map` (width x height) drawn over `image` (any size; the map is resampled to it) in the
    /// diverging colours described above.
    public static func overlay(_ map: [Float], width: Int, height: Int, scale: Float, on image: RGBImage) -> RGBImage {
        var out = image
        let sx = Float(width) / Float(image.width), sy = Float(height) / Float(image.height)
        for py in 0..<image.height {
            // bilinear sample of the map at the pixel's centre
            let fy = min(max((Float(py) + 0.5) * sy - 0.5, 0), Float(height - 1))
            let y0 = Int(fy), y1 = min(y0 + 1, height - 1), ty = fy - Float(y0)
            for px in 0..<image.width {
                let fx = min(max((Float(px) + 0.5) * sx - 0.5, 0), Float(width - 1))
                let x0 = Int(fx), x1 = min(x0 + 1, width - 1), tx = fx - Float(x0)
                let top = map[y0 * width + x0] * (1 - tx) + map[y0 * width + x1] * tx
                let bottom = map[y1 * width + x0] * (1 - tx) + map[y1 * width + x1] * tx
                let v = (top * (1 - ty) + bottom * ty) / scale
                let i = 3 * (py * image.width + px)
                let grey = (Float(image.pixels[i]) * 0.299 + Float(image.pixels[i + 1]) * 0.587 + Float(image.pixels[i + 2]) * 0.114) * 0.6 + 40
                let alpha = max(0, min(abs(v), 1) - floor) / (1 - floor) * 0.85
                let colour: (Float, Float, Float) = v >= 0 ? (230, 40, 20) : (20, 90, 235)
                out.pixels[i] = UInt8(min(255, grey * (1 - alpha) + colour.0 * alpha))
                out.pixels[i + 1] = UInt8(min(255, grey * (1 - alpha) + colour.1 * alpha))
                out.pixels[i + 2] = UInt8(min(255, grey * (1 - alpha) + colour.2 * alpha))
            }
        }
        return out
    }

    /// The view of a prepared image's attribution at the display side: upscaled image, overlay, scale.
    public static func render(perPixel: [Float], prepared: RGBImage) -> (view: RGBImage, scale: Float) {
        let (map, scale) = regions(perPixel, width: prepared.width, height: prepared.height)
        let side = displaySide(max(prepared.width, prepared.height))
        let base = prepared.width == side && prepared.height == side ? prepared : prepared.resized(to: .square(side))
        return (overlay(map, width: prepared.width, height: prepared.height, scale: scale, on: base), scale)
    }
}
