public import Randomness

/// Random variants of the transforms. Each takes the generator explicitly, so a seed reproduces the
/// exact images (training augmentation and the drift study's stages depend on it).
extension RGBImage {
    /// Rotated by an angle drawn uniformly from [-maxDegrees, maxDegrees].
    public func randomlyRotated(upTo maxDegrees: Double, fill: RGB = .black, using generator: inout SeededGenerator) -> RGBImage {
        precondition(maxDegrees >= 0, "maximum rotation must be >= 0, got \(maxDegrees)")
        let angle = (generator.nextUnitDouble() * 2 - 1) * maxDegrees
        return rotated(degrees: angle, fill: fill)
    }

    /// Flipped left to right with probability `probability`.
    public func randomlyFlippedHorizontally(probability: Double = 0.5, using generator: inout SeededGenerator) -> RGBImage {
        generator.nextUnitDouble() < probability ? flippedHorizontally() : self
    }

    /// Flipped top to bottom with probability `probability`.
    public func randomlyFlippedVertically(probability: Double = 0.5, using generator: inout SeededGenerator) -> RGBImage {
        generator.nextUnitDouble() < probability ? flippedVertically() : self
    }

    /// Blurred with a sigma drawn uniformly from `sigma`.
    public func randomlyBlurred(sigma: ClosedRange<Double>, using generator: inout SeededGenerator) -> RGBImage {
        blurred(sigma: sigma.lowerBound + generator.nextUnitDouble() * (sigma.upperBound - sigma.lowerBound))
    }

    /// Brightness and contrast factors drawn uniformly from 1 ± `amount`.
    public func randomlyJittered(amount: Double, using generator: inout SeededGenerator) -> RGBImage {
        let brightness = 1 + (generator.nextUnitDouble() * 2 - 1) * amount
        let contrast = 1 + (generator.nextUnitDouble() * 2 - 1) * amount
        return adjustingBrightness(max(brightness, 0)).adjustingContrast(max(contrast, 0))
    }
}
