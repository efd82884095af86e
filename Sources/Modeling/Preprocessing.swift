public import Imaging
import NeuralNetwork

/// How an image becomes a network input; stored with every model so that serving prepares images
/// exactly as training did.
public struct Preprocessing: Codable, Sendable, Equatable {
    /// Square input side in pixels.
    public var imageSize: Int
    /// resize_shorter_center_crop keeps the aspect ratio (the default); resize stretches.
    public var resize: String
    public var normalization: Normalization

    public init(imageSize: Int, resize: String = "resize_shorter_center_crop", normalization: Normalization) {
        self.imageSize = imageSize
        self.resize = resize
        self.normalization = normalization
    }

    /// Decode options that let libjpeg shrink large photos while decoding.
    public var decodeOptions: DecodeOptions {
        var options = DecodeOptions()
        options.minimumSize = .square(imageSize)
        return options
    }

    /// The image at the network's size (before normalisation).
    public func prepare(_ image: RGBImage) -> RGBImage {
        let size = Size.square(imageSize)
        return resize == "resize" ? image.resized(to: size) : image.resizedAndCropped(to: size)
    }

    /// Writes the normalised CHW tensor of a prepared image.
    public func write(_ prepared: RGBImage, into buffer: UnsafeMutableBufferPointer<Float>) {
        prepared.writeFloats(into: buffer, layout: .chw, normalization: normalization)
    }

    public var inputCount: Int { 3 * imageSize * imageSize }
}
