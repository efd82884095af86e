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

    /// The side at which drift monitoring looks at images: its encoder's 64 px, or the model's input
    /// when that is larger (the softmax detector then sees exactly the model's input).
    public static func monitoringSide(_ imageSize: Int?) -> Int { max(64, imageSize ?? 64) }

    /// Decode options that let libjpeg shrink large photos while decoding: never below the monitoring
    /// side, so that one decode of a file serves both the model's input and the drift monitor's
    /// (the pipelines decode each image once), and every path that prepares an image for this model
    /// (training, serving, evaluation) prepares it from the same decode.
    public var decodeOptions: DecodeOptions {
        var options = DecodeOptions()
        options.minimumSize = .square(Self.monitoringSide(imageSize))
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
