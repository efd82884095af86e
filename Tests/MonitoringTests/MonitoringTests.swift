import DroplineSupport
import Foundation
import Imaging
import Modeling
import Monitoring
import Randomness
import Testing
import SystemFiles

/// Scenes with random shapes on gradients, in memory.
enum Scenes {
    static func collection(count: Int, seed: UInt64, stage: DriftStage = .original) -> ImageCollection {
        var g = SeededGenerator(seed: seed)
        var items: [ImageCollection.Item] = [], images: [RGBImage] = []
        for i in 0..<count {
            var image = RGBImage(width: 64, height: 64)
            let base = (0..<3).map { _ in Double(40 + g.next() % 150) }
            for y in 0..<64 {
                for x in 0..<64 {
                    func c(_ k: Int) -> UInt8 { UInt8(max(0, min(255, base[k] + Double(x + y) * 0.8 + 12 * g.nextGaussian()))) }
                    image[x, y] = RGB(c(0), c(1), c(2))
                }
            }
            for _ in 0..<4 {
                let x0 = Int(g.next() % 56), y0 = Int(g.next() % 56), s = 4 + Int(g.next() % 12)
                let colour = RGB(UInt8(g.next() % 256), UInt8(g.next() % 256), UInt8(g.next() % 256))
                for y in y0..<min(64, y0 + s) { for x in x0..<min(64, x0 + s) { image[x, y] = colour } }
            }
            images.append(stage.apply(image, using: &g))
            items.append(.init(path: "scene-\(seed)-\(i).png", relativePath: "scene-\(i).png", sha256: String(repeating: "0", count: 64)))
        }
        return ImageCollection(items: items, images: images)
    }
}

@Suite("Drift monitor")
struct DriftMonitorTests {
    static func artifacts() throws -> (String, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-drift-\(UUID().uuidString)").path
        let hash = try DriftMonitor.fit(images: Scenes.collection(count: 300, seed: 1), trainingData: "scenes", to: folder)
        return (folder, hash)
    }

    @Test("a batch from the reference distribution passes; a blurred and rotated one drifts, with a report")
    func decisions() throws {
        let (folder, hash) = try Self.artifacts()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let monitor = try DriftMonitor(artifacts: folder)
        #expect(monitor.contentHash == hash)
        let same = try monitor.check(Scenes.collection(count: 40, seed: 2), name: "same")
        #expect(!same.drift, "\(same.reason)")
        let drifted = try monitor.check(Scenes.collection(count: 40, seed: 3, stage: .noisy), name: "noisy")
        #expect(drifted.drift, "\(drifted.reason)")
        #expect(drifted.batchSize == 40 && drifted.referenceSize == 300)
        #expect(drifted.detectors.count == 1 && drifted.detectors[0].features.count == 32)
        #expect(drifted.detectors[0].features.allSatisfy { $0.adjustedPValue >= $0.pValue && $0.adjustedPValue <= 1 })
        #expect(drifted.outliers.count == 40)
        #expect(zip(drifted.outliers, drifted.outliers.dropFirst()).allSatisfy { $0.score >= $1.score })
        #expect(drifted.artifacts == hash)
    }

    @Test("the encoder is reproducible from its seed: the same images give the same reference")
    func reproducible() throws {
        let (a, hashA) = try Self.artifacts()
        let (b, hashB) = try Self.artifacts()
        defer {
            try? FileManager.default.removeItem(atPath: a)
            try? FileManager.default.removeItem(atPath: b)
        }
        #expect(try AtomicFile.read(a + "/reference.safetensors") == AtomicFile.read(b + "/reference.safetensors"))
        // drift.json differs (creation time), so the content hashes differ, but the encoder is the same
        #expect(hashA != hashB)
        #expect(try DriftMonitor(artifacts: a).description.encoderSha256 == DriftMonitor(artifacts: b).description.encoderSha256)
    }

    @Test("changed artifacts are refused; an existing output folder is refused; tiny references are refused")
    func integrity() throws {
        let (folder, _) = try Self.artifacts()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: MonitoringError.self) { try DriftMonitor.fit(images: Scenes.collection(count: 30, seed: 1), trainingData: "x", to: folder) }
        let tiny = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-drift-tiny-\(UUID().uuidString)").path
        #expect(throws: MonitoringError.self) { try DriftMonitor.fit(images: Scenes.collection(count: 5, seed: 1), trainingData: "x", to: tiny) }
        var bytes = try AtomicFile.read(folder + "/reference.safetensors")
        bytes[bytes.count - 1] ^= 0x40
        try AtomicFile.write(bytes, to: folder + "/reference.safetensors")
        do {
            _ = try DriftMonitor(artifacts: folder)
            Issue.record("loaded changed artifacts")
        } catch {
            #expect("\(error)".contains("content.sha256"))
        }
    }
}

@Suite("Drift stages")
struct DriftStageTests {
    @Test("stages are reproducible from the seed, keep the size, and only the original is the identity")
    func stages() {
        let image = Scenes.collection(count: 1, seed: 9).images[0]
        for stage in DriftStage.allCases {
            var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
            let x = stage.apply(image, using: &a), y = stage.apply(image, using: &b)
            #expect(x == y, "\(stage)")
            #expect(x.width == 64 && x.height == 64)
            if stage == .original { #expect(x == image) }
        }
        var g = SeededGenerator(seed: 1)
        #expect(DriftStage.noisy.apply(image, using: &g).meanAbsoluteDifference(image) > 10)
    }
}
