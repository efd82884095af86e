public import Randomness

/// The seven versions of a dataset in the drift study Dropline reproduces: the original images and
/// six increasingly drifted variants. Every random choice comes from the generator passed in, so a
/// seed reproduces the exact images.
///
/// | stage | transform |
/// |---|---|
/// | original | none |
/// | stage-1 | horizontal flip with probability 0.5 |
/// | stage-2 | rotation by a uniform angle in ±45° |
/// | stage-3 | rotation in ±45°, then horizontal flip with probability 0.5 |
/// | stage-4 | gaussian blur, sigma uniform in [1, 2], then rotation in ±10° |
/// | stage-5 | gaussian blur, sigma in [1, 2], then rotation in ±45° |
/// | noisy | blur, sigma in [2.5, 3.5], rotation in ±90°, flip with probability 0.5, gaussian noise sigma 20 |
///
/// Rotations keep the image size and fill the corners black, as the study did.
public enum DriftStage: String, CaseIterable, Sendable, Codable {
    case original
    case stage1 = "stage-1"
    case stage2 = "stage-2"
    case stage3 = "stage-3"
    case stage4 = "stage-4"
    case stage5 = "stage-5"
    case noisy

    /// What the stage does, in words.
    public var summary: String {
        switch self {
        case .original: "original images"
        case .stage1: "random horizontal flip"
        case .stage2: "random rotation within ±45°"
        case .stage3: "random rotation within ±45° and random flip"
        case .stage4: "random blur (sigma 1-2) and small random rotation within ±10°"
        case .stage5: "random blur (sigma 1-2) and random rotation within ±45°"
        case .noisy: "strong blur (sigma 2.5-3.5), rotation within ±90°, random flip, gaussian noise (sigma 20)"
        }
    }

    /// The image transformed for this stage.
    public func apply(_ image: RGBImage, using g: inout SeededGenerator) -> RGBImage {
        switch self {
        case .original:
            return image
        case .stage1:
            return image.randomlyFlippedHorizontally(using: &g)
        case .stage2:
            return image.randomlyRotated(upTo: 45, using: &g)
        case .stage3:
            return image.randomlyRotated(upTo: 45, using: &g).randomlyFlippedHorizontally(using: &g)
        case .stage4:
            return image.randomlyBlurred(sigma: 1...2, using: &g).randomlyRotated(upTo: 10, using: &g)
        case .stage5:
            return image.randomlyBlurred(sigma: 1...2, using: &g).randomlyRotated(upTo: 45, using: &g)
        case .noisy:
            return image.randomlyBlurred(sigma: 2.5...3.5, using: &g).randomlyRotated(upTo: 90, using: &g)
                .randomlyFlippedHorizontally(using: &g).withGaussianNoise(sigma: 20, using: &g)
        }
    }
}
