extension RGBImage {
    /// The rectangle at (`x`, `y`) of `size`; it must lie inside the image.
    public func cropped(x: Int, y: Int, size: Size) -> RGBImage {
        precondition(x >= 0 && y >= 0 && size.width > 0 && size.height > 0
                     && x + size.width <= width && y + size.height <= height,
                     "crop \(size) at (\(x), \(y)) does not fit in \(width)x\(height)")
        var out = [UInt8](repeating: 0, count: size.width * size.height * 3)
        let rowBytes = size.width * 3
        for row in 0..<size.height {
            let s = ((y + row) * width + x) * 3
            out.replaceSubrange(row * rowBytes..<(row + 1) * rowBytes, with: pixels[s..<s + rowBytes])
        }
        return RGBImage(width: size.width, height: size.height, pixels: out)
    }

    /// The central `size` rectangle (offsets rounded as torchvision's CenterCrop does).
    public func centerCropped(to size: Size) -> RGBImage {
        precondition(size.width <= width && size.height <= height,
                     "center crop \(size) is larger than the image \(width)x\(height)")
        let x = Int((Double(width - size.width) / 2).rounded())
        let y = Int((Double(height - size.height) / 2).rounded())
        return cropped(x: x, y: y, size: size)
    }

    /// Resize the shorter side to cover `size`, then take the centre: the usual "resize and crop"
    /// that keeps the aspect ratio.
    public func resizedAndCropped(to size: Size) -> RGBImage {
        let scale = max(Double(size.width) / Double(width), Double(size.height) / Double(height))
        let w = max(size.width, Int((Double(width) * scale).rounded()))
        let h = max(size.height, Int((Double(height) * scale).rounded()))
        return resized(to: Size(width: w, height: h)).centerCropped(to: size)
    }

    /// Mirrored left to right.
    public func flippedHorizontally() -> RGBImage {
        var out = pixels
        for y in 0..<height {
            let row = y * width * 3
            for x in 0..<width {
                let s = row + x * 3, d = row + (width - 1 - x) * 3
                out[d] = pixels[s]
                out[d + 1] = pixels[s + 1]
                out[d + 2] = pixels[s + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Mirrored top to bottom.
    public func flippedVertically() -> RGBImage {
        var out = pixels
        let rowBytes = width * 3
        for y in 0..<height {
            let s = y * rowBytes, d = (height - 1 - y) * rowBytes
            out.replaceSubrange(d..<d + rowBytes, with: pixels[s..<s + rowBytes])
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
