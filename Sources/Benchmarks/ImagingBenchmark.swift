import DroplineSupport
import Foundation
public import Imaging
public import Randomness

/// `dropline bench imaging`: decode + resize throughput on real and generated JPEGs, on one thread
/// and on all cores, with Pillow timed on the same files in the same run when it is importable.
///
/// The machine is shared and noisy, so the figures that matter are ratios measured in one run:
/// Dropline against Pillow, and all cores against one.
public struct ImagingBenchmark {
    public struct Configuration: Sendable {
        public var datasetPath: String?
        /// 500x375 JPEGs generated for the peer comparison (the size PEERS.md measured Pillow on).
        public var mediumCount = 300
        /// 12-megapixel JPEGs generated for the large-image case.
        public var largeCount = 4
        public var rounds = 3
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public var pythonExecutable = "python3"
        public var log: @Sendable (String) -> Void = { _ in }
        public init() {}
    }

    /// One timed case.
    public struct Measurement: Codable, Sendable {
        public var set: String
        public var source: String
        public var target: Int
        public var images: Int
        public var threads: Int
        public var imagesPerSecond: Double
        public var megapixelsPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case set, source, target, images, threads
            case imagesPerSecond = "images_per_second", megapixelsPerSecond = "megapixels_per_second"
        }
    }

    /// Ratios the issue sets targets for.
    public struct Comparison: Codable, Sendable {
        public var set: String
        public var target: Int
        public var droplineSingleThread: Double
        public var droplineAllCores: Double
        public var pillowSingleThread: Double?
        public var ratioToPillow: Double?
        public var coreScaling: Double
        enum CodingKeys: String, CodingKey {
            case set, target
            case droplineSingleThread = "dropline_1_thread_images_per_second"
            case droplineAllCores = "dropline_all_cores_images_per_second"
            case pillowSingleThread = "pillow_1_thread_images_per_second"
            case ratioToPillow = "ratio_to_pillow"
            case coreScaling = "core_scaling"
        }
    }

    public struct Report: Codable, Sendable {
        public var cores: Int
        public var dropline: [Measurement]
        public var pillow: [Measurement]
        public var comparisons: [Comparison]
        public var notes: [String]
    }

    let configuration: Configuration

    public init(configuration: Configuration) { self.configuration = configuration }

    struct ImageSet {
        let name: String
        let source: String
        let files: [String]
        let megapixels: Double  // total per pass
    }

    public func run() throws -> Report {
        let log = configuration.log
        var notes: [String] = []
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        var sets: [ImageSet] = []
        var photos: [String] = []
        if let data = configuration.datasetPath {
            photos = ImageInspector.expand([data]).map(\.path).filter { $0.lowercased().hasSuffix(".jpg") || $0.lowercased().hasSuffix(".jpeg") }
            if !photos.isEmpty { sets.append(try describe("imagenette-mini", files: photos)) }
        } else {
            notes.append(SharedMaterial.absenceMessage("datasets/imagenette-mini") + "; the generated sets use synthetic images")
        }
        log("generating \(configuration.mediumCount) 500x375 and \(configuration.largeCount) 12-megapixel JPEGs in \(scratch)")
        let medium = try generate(count: configuration.mediumCount, size: Size(width: 500, height: 375), from: photos,
                                  into: scratch + "/500x375", noise: 0)
        sets.append(try describe("generated 500x375", files: medium))
        let large = try generate(count: configuration.largeCount, size: Size(width: 4000, height: 3000), from: photos,
                                 into: scratch + "/12mp", noise: 4)
        sets.append(try describe("generated 12MP", files: large))

        var dropline: [Measurement] = []
        var pillow: [Measurement] = []
        var comparisons: [Comparison] = []
        let pillowAvailable = Pillow.available(python: configuration.pythonExecutable)
        if !pillowAvailable { notes.append("Pillow is not importable by \(configuration.pythonExecutable): no peer ratio (pip install pillow)") }
        for set in sets {
            for target in [224, 96] {
                let rounds = set.files.count < 50 ? max(configuration.rounds, 3) : configuration.rounds
                log("dropline: \(set.name) -> \(target)x\(target), 1 thread")
                let single = measure(set, target: target, threads: 1, rounds: rounds)
                log("dropline: \(set.name) -> \(target)x\(target), \(configuration.threads) threads")
                let all = measure(set, target: target, threads: configuration.threads, rounds: rounds)
                dropline += [single, all]
                var peer: Measurement?
                if pillowAvailable {
                    log("pillow: \(set.name) -> \(target)x\(target), 1 thread")
                    peer = try Pillow.measure(files: set.files, target: target, rounds: rounds,
                                              python: configuration.pythonExecutable, scratch: scratch).map {
                        Measurement(set: set.name, source: set.source, target: target, images: set.files.count, threads: 1,
                                    imagesPerSecond: $0, megapixelsPerSecond: $0 * set.megapixels / Double(set.files.count))
                    }
                    if let peer { pillow.append(peer) }
                }
                comparisons.append(Comparison(
                    set: set.name, target: target,
                    droplineSingleThread: single.imagesPerSecond, droplineAllCores: all.imagesPerSecond,
                    pillowSingleThread: peer?.imagesPerSecond,
                    ratioToPillow: peer.map { single.imagesPerSecond / $0.imagesPerSecond },
                    coreScaling: all.imagesPerSecond / single.imagesPerSecond))
            }
        }
        return Report(cores: ProcessInfo.processInfo.activeProcessorCount, dropline: dropline, pillow: pillow,
                      comparisons: comparisons, notes: notes)
    }

    func describe(_ name: String, files: [String]) throws -> ImageSet {
        var megapixels = 0.0
        var sizes = Set<String>()
        for file in files {
            let info = try ImageDecoder.info(file: file)
            megapixels += Double(info.width * info.height) / 1e6
            sizes.insert("\(info.width)x\(info.height)")
        }
        return ImageSet(name: name, source: sizes.count == 1 ? sizes.first! : "mixed", files: files, megapixels: megapixels)
    }

    /// Decode + resize every file of `set` to target x target; the best of `rounds` passes.
    func measure(_ set: ImageSet, target: Int, threads: Int, rounds: Int) -> Measurement {
        let options = { var o = DecodeOptions(); o.minimumSize = .square(target); return o }()
        let size = Size.square(target)
        let files = set.files
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = Stopwatch.now()
            let queue = WorkQueue(count: files.count)
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                var checksum = 0
                while let i = queue.next() {
                    guard let decoded = try? ImageDecoder.decode(file: files[i], options: options) else { continue }
                    checksum &+= Int(decoded.image.resized(to: size).pixels[0])
                }
                if checksum == -1 { print("") }  // keeps the work observable to the optimiser
            }
            best = min(best, Stopwatch.now() - start)
        }
        let perSecond = Double(files.count) / best
        return Measurement(set: set.name, source: set.source, target: target, images: files.count, threads: threads,
                           imagesPerSecond: perSecond, megapixelsPerSecond: set.megapixels / best)
    }

    /// JPEGs of `size` made from the dataset's photos (or from synthetic scenes when there are none).
    func generate(count: Int, size: Size, from photos: [String], into folder: String, noise: Double) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var generator = SeededGenerator(seed: 20261121)
        var files: [String] = []
        for i in 0..<count {
            var image: RGBImage
            if photos.isEmpty {
                image = SyntheticScene.make(size: Size(width: 224, height: 224), using: &generator)
            } else {
                image = try ImageDecoder.decode(file: photos[(i * 7) % photos.count]).image
            }
            image = image.resized(to: size)
            if noise > 0 { image = image.withGaussianNoise(sigma: noise, using: &generator) }
            let path = folder + String(format: "/%04d.jpg", i)
            try ImageEncoder.write(image, to: path, format: .jpeg, quality: 90)
            files.append(path)
        }
        return files
    }
}

/// Deterministic photo-like test scenes (gradients and shapes) for when no real photos are at hand.
public enum SyntheticScene {
    public static func make(size: Size, using generator: inout SeededGenerator) -> RGBImage {
        var image = RGBImage(width: size.width, height: size.height)
        let base = (0..<3).map { _ in Double(generator.next() % 200) }
        let slope = (0..<3).map { _ in generator.nextUnitDouble() * 2 - 1 }
        for y in 0..<size.height {
            for x in 0..<size.width {
                let t = Double(x + y) / Double(size.width + size.height)
                image[x, y] = RGB(UInt8(max(0, min(255, base[0] + 55 * slope[0] * t + 20))),
                                  UInt8(max(0, min(255, base[1] + 55 * slope[1] * t + 20))),
                                  UInt8(max(0, min(255, base[2] + 55 * slope[2] * t + 20))))
            }
        }
        for _ in 0..<6 {
            let cx = Int(generator.next() % UInt64(size.width)), cy = Int(generator.next() % UInt64(size.height))
            let r = 5 + Int(generator.next() % UInt64(max(size.width / 4, 6)))
            let colour = RGB(UInt8(generator.next() % 256), UInt8(generator.next() % 256), UInt8(generator.next() % 256))
            for y in max(0, cy - r)..<min(size.height, cy + r) {
                for x in max(0, cx - r)..<min(size.width, cx + r) where (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r {
                    image[x, y] = colour
                }
            }
        }
        return image
    }
}

/// Hands out indices 0..<count to worker threads one at a time, so uneven images do not leave a core idle.
final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var position = 0
    private let count: Int
    init(count: Int) { self.count = count }
    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard position < count else { return nil }
        position += 1
        return position - 1
    }
}
