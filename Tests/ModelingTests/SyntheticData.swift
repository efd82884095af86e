import Foundation
import Imaging
import Randomness

/// Writes a small labelled dataset of PNGs: three colour classes with noise and random patches, so a
/// network must learn colour statistics under clutter. Deterministic from the seed.
enum SyntheticData {
    static let classes = ["blue", "green", "red"]

    static func image(label: Int, size: Int, generator: inout SeededGenerator) -> RGBImage {
        var image = RGBImage(width: size, height: size)
        let base: [Double] = [[40, 60, 190], [50, 180, 60], [190, 50, 40]][label]
        for y in 0..<size {
            for x in 0..<size {
                func channel(_ c: Int) -> UInt8 { UInt8(max(0, min(255, base[c] + 35 * generator.nextGaussian()))) }
                image[x, y] = RGB(channel(0), channel(1), channel(2))
            }
        }
        for _ in 0..<3 {  // clutter in a random colour
            let x0 = Int(generator.next() % UInt64(size)), y0 = Int(generator.next() % UInt64(size))
            let colour = RGB(UInt8(generator.next() % 256), UInt8(generator.next() % 256), UInt8(generator.next() % 256))
            for y in y0..<min(size, y0 + size / 5) { for x in x0..<min(size, x0 + size / 5) { image[x, y] = colour } }
        }
        return image
    }

    /// root/{train,validation,test}/<class>/NNN.png; returns root.
    static func write(perClass: [String: Int] = ["train": 24, "validation": 8, "test": 8], size: Int = 32, seed: UInt64 = 7) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-synthetic-\(UUID().uuidString)").path
        var generator = SeededGenerator(seed: seed)
        for (split, count) in perClass.sorted(by: { $0.key < $1.key }) {
            for (label, name) in classes.enumerated() {
                let folder = "\(root)/\(split)/\(name)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for i in 0..<count {
                    try ImageEncoder.write(image(label: label, size: size, generator: &generator), to: folder + String(format: "/%03d.png", i))
                }
            }
        }
        return root
    }
}
