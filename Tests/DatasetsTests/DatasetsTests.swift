import Datasets
import DroplineSupport
import Foundation
import Imaging
import Randomness
import Testing
import SystemFiles

@Suite("Datasets")
struct DatasetsTests {
    static func temporary() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dropline-datasets-\(UUID().uuidString)").path
    }

    /// A small labelled dataset of textured PNGs (two classes), plus one broken file.
    static func dataset() throws -> String {
        let root = temporary()
        var g = SeededGenerator(seed: 3)
        for split in ["train", "validation", "test"] {
            for label in ["a", "b"] {
                let folder = "\(root)/\(split)/\(label)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for i in 0..<3 {
                    var image = RGBImage(width: 24, height: 16)
                    for y in 0..<16 { for x in 0..<24 { image[x, y] = RGB(UInt8(x * 10), UInt8(y * 15), UInt8(g.next() % 256)) } }
                    try ImageEncoder.write(image, to: "\(folder)/\(i).png")
                }
            }
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(root)/train/a/broken.jpg"))
        return root
    }

    static func files(_ root: String) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for entry in ImageInspector.expand([root]) { result[entry.relative] = try AtomicFile.read(entry.path) }
        return result
    }

    @Test("the seven stages: originals copied byte for byte, the rest transformed as PNG, reproducible from the seed, broken files left out everywhere")
    func stages() throws {
        let data = try Self.dataset()
        let (out1, out2, out3) = (Self.temporary(), Self.temporary(), Self.temporary())
        defer { for p in [data, out1, out2, out3] { try? FileManager.default.removeItem(atPath: p) } }
        let dataset = try LabelledDataset(root: data)
        #expect(dataset.classes == ["a", "b"])
        var skipped: [StageGenerator.Skipped] = []
        for (out, seed) in [(out1, UInt64(1)), (out2, 1), (out3, 2)] {
            skipped = try StageGenerator(seed: seed).generate(dataset, destination: { "\(out)/\($0.rawValue)/\($1)" })
        }
        #expect(skipped.map { ($0.path as NSString).lastPathComponent } == ["broken.jpg"])
        let (a, b, c) = (try Self.files(out1), try Self.files(out2), try Self.files(out3))
        #expect(a == b, "the same seed gave different images")
        #expect(a.count == 7 * 18)
        #expect(a.keys.contains("original/train/a/0.png") && a.keys.contains("noisy/test/b/2.png"))
        #expect(!a.keys.contains { $0.contains("broken") })
        #expect(a["original/train/a/0.png"] == (try AtomicFile.read(data + "/train/a/0.png")))
        let original = try ImageDecoder.decode(file: data + "/test/b/1.png").image
        for stage in ["stage-2", "stage-4", "stage-5", "noisy"] {
            let image = try ImageDecoder.decode(a["\(stage)/test/b/1.png"]!).image
            #expect(image.width == 24 && image.height == 16)
            #expect(image.meanAbsoluteDifference(original) > 1, "\(stage) left the image unchanged")
        }
        #expect(a.filter { !$0.key.hasPrefix("original/") } != c.filter { !$0.key.hasPrefix("original/") }, "another seed gave the same images")
    }

    @Test("a dataset without test/ is refused, naming the folder")
    func missingSplit() throws {
        let data = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        try FileManager.default.removeItem(atPath: data + "/test")
        #expect { try LabelledDataset(root: data) } throws: { "\($0)".contains("/test' is missing") }
    }

    @Test("IDX files: dimensions and data; gzip through zlib; truncation and damage named")
    func idx() throws {
        let bytes: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3] + Array(0..<12)
        let array = try IDXArray(bytes, source: "x.idx")
        #expect(array.dimensions == [2, 2, 3])
        #expect(array.values == Array(0..<12))
        #expect { try IDXArray(Array(bytes.dropLast()), source: "short.idx") } throws: { "\($0)".contains("'short.idx' holds 11 data bytes where its header announces 12") }
        #expect { try IDXArray([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], source: "f.idx") } throws: { "\($0)".contains("not unsigned bytes") }

        let folder = Self.temporary()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try AtomicFile.write(bytes, to: folder + "/x.idx")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-k", folder + "/x.idx"]
        try gzip.run()
        gzip.waitUntilExit()
        #expect(try IDXArray(file: folder + "/x.idx.gz").values == array.values)
        let compressed = try AtomicFile.read(folder + "/x.idx.gz")
        #expect { try Gzip.decompress(Array(compressed.prefix(compressed.count / 2)), source: "half.gz") } throws: { "\($0)".contains("'half.gz' cannot be uncompressed") }
    }

    @Test("Fashion-MNIST from Debian's package: the subset's layout and counts", .enabled(if: FileManager.default.fileExists(atPath: FashionMNIST.debianFolder),
          "dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"))
    func fashionMNIST() throws {
        let out = Self.temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let counts = try FashionMNIST.export(to: out, subset: .init(train: 3, validation: 2, test: 1))
        #expect(counts == ["train": 30, "validation": 20, "test": 10])
        let dataset = try LabelledDataset(root: out)
        #expect(dataset.classes == FashionMNIST.classes.sorted())
        let first = try ImageDecoder.decode(file: ImageInspector.expand([out + "/test/ankle_boot"])[0].path).image
        #expect(first.width == 28 && first.height == 28)
        // train and validation are disjoint
        let train = Set(ImageInspector.expand([out + "/train"]).map { ($0.relative as NSString).lastPathComponent })
        let validation = Set(ImageInspector.expand([out + "/validation"]).map { ($0.relative as NSString).lastPathComponent })
        #expect(train.isDisjoint(with: validation))
    }
}
