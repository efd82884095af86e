/// The hand-off to the network: 8-bit RGB to normalised float32, channel-first (CHW) or
/// channel-last (HWC).
public enum TensorLayout: String, Sendable, Codable {
    case chw, hwc
}

/// Per-channel normalisation: value = (pixel * scale - mean[c]) / std[c].
public struct Normalization: Sendable, Equatable, Codable {
    public var mean: [Float]
    public var std: [Float]
    public var scale: Float

    public init(mean: [Float], std: [Float], scale: Float = 1 / 255) {
        precondition(mean.count == 3 && std.count == 3, "normalisation needs 3 means and 3 stds, got \(mean.count) and \(std.count)")
        precondition(std.allSatisfy { $0 > 0 }, "normalisation stds must be positive, got \(std)")
        self.mean = mean
        self.std = std
        self.scale = scale
    }

    /// Pixels scaled to [0, 1].
    public static let unit = Normalization(mean: [0, 0, 0], std: [1, 1, 1])
    /// Pixels scaled to [-1, 1] (x / 127.5 - 1), as MobileNet expects.
    public static let symmetric = Normalization(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
    /// ImageNet channel statistics, as torchvision's pretrained models expect.
    public static let imagenet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
}

extension RGBImage {
    /// Writes width * height * 3 normalised floats into `buffer` in `layout`.
    public func writeFloats(into buffer: UnsafeMutableBufferPointer<Float>, layout: TensorLayout, normalization: Normalization) {
        precondition(buffer.count >= pixels.count, "tensor buffer holds \(buffer.count) floats, need \(pixels.count)")
        var multiply = [Float](repeating: 0, count: 3), add = [Float](repeating: 0, count: 3)
        for c in 0..<3 {
            multiply[c] = normalization.scale / normalization.std[c]
            add[c] = -normalization.mean[c] / normalization.std[c]
        }
        let plane = pixelCount
        pixels.withUnsafeBufferPointer { src in
            switch layout {
            case .hwc:
                for i in 0..<plane {
                    for c in 0..<3 { buffer[3 * i + c] = Float(src[3 * i + c]) * multiply[c] + add[c] }
                }
            case .chw:
                for c in 0..<3 {
                    let m = multiply[c], a = add[c]
                    let out = buffer.baseAddress! + c * plane
                    for i in 0..<plane { out[i] = Float(src[3 * i + c]) * m + a }
                }
            }
        }
    }

    /// width * height * 3 normalised floats in `layout`.
    public func floats(layout: TensorLayout = .chw, normalization: Normalization = .unit) -> [Float] {
        var out = [Float](repeating: 0, count: pixels.count)
        out.withUnsafeMutableBufferPointer { writeFloats(into: $0, layout: layout, normalization: normalization) }
        return out
    }
}
