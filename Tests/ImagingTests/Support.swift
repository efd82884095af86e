import DroplineSupport
import Foundation
import Imaging
import Randomness

/// Paths and helpers shared by the imaging tests.
enum TestData {
    static let shared = SharedMaterial.locate()
    static let sharedAvailable = shared != nil
    static let skipMessage = "../shared is not present: tests that read real photos and bad inputs are skipped"

    static func sharedPath(_ relative: String) -> String { shared! + "/" + relative }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// A random image (seeded), for property tests.
    static func randomImage(width: Int, height: Int, seed: UInt64) -> RGBImage {
        var g = SeededGenerator(seed: seed)
        return RGBImage(width: width, height: height, pixels: (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: g.next()) })
    }

    /// A smooth photo-like image (gradients), where interpolation errors are small.
    static func gradient(width: Int, height: Int) -> RGBImage {
        var image = RGBImage(width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                image[x, y] = RGB(UInt8(x * 255 / max(width - 1, 1)), UInt8(y * 255 / max(height - 1, 1)), UInt8((x + y) * 127 / max(width + height - 2, 1)))
            }
        }
        return image
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
