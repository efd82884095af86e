import DroplineSupport
import Foundation
import Imaging
import Testing

@Suite("Tensor conversion")
struct TensorTests {
    func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }

    let image = RGBImage(width: 2, height: 1, pixels: [0, 51, 255, 255, 102, 0])

    @Test("CHW puts each channel in its own plane")
    func chw() {
        let t = image.floats(layout: .chw, normalization: .unit)
        #expect(close(t, [0, 1, 0.2, 0.4, 1, 0]), "\(t)")
    }

    @Test("HWC keeps pixels interleaved")
    func hwc() {
        let t = image.floats(layout: .hwc, normalization: .unit)
        #expect(close(t, [0, 0.2, 1, 1, 0.4, 0]), "\(t)")
    }

    @Test("per-channel mean and std are applied")
    func normalised() {
        let t = image.floats(layout: .chw, normalization: .symmetric)
        #expect(close(t, [-1, 1, -0.6, -0.2, 1, -1]), "\(t)")
        let n = image.floats(layout: .chw, normalization: .imagenet)
        #expect(abs(n[0] - (0 - 0.485) / 0.229) < 1e-6)
        #expect(abs(n[5] - (0 - 0.406) / 0.225) < 1e-6)
    }
}

@Suite("Drop-folder junk")
struct JunkTests {
    @Test("NAS and desktop metadata is junk", arguments: [
        "._IMG_0001.jpg", ".DS_Store", "Thumbs.db", "thumbs.db", "desktop.ini", "Desktop.ini",
        "@eaDir/IMG_0001.jpg/SYNOFILE_THUMB_XL.jpg", "batch/#recycle/a.jpg", ".snapshot/hourly.0/a.jpg",
        "a/.AppleDouble/b.jpg", "$RECYCLE.BIN/x.png", "b1/img.jpg.part", "b1/IMG.JPG.TMP", "dl.png.crdownload", "~$report.png",
    ])
    func junk(path: String) {
        #expect(DropFolderJunk.reason(for: path) != nil)
    }

    @Test("ordinary images are not junk", arguments: ["IMG_0001.jpg", "cats/photo with spaces ü.jpg", "eaDir/x.jpg", "a._b.jpg"])
    func notJunk(path: String) {
        #expect(DropFolderJunk.reason(for: path) == nil)
    }

    @Test("files inside a junk folder are junk when inspecting a tree")
    func tree() throws {
        let root = try TestData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/@eaDir/x", withIntermediateDirectories: true)
        try ImageEncoder.write(TestData.gradient(width: 8, height: 8), to: root + "/@eaDir/x/thumb.jpg")
        try ImageEncoder.write(TestData.gradient(width: 8, height: 8), to: root + "/real.png")
        let records = ImageInspector.inspect(paths: [root])
        #expect(records.map(\.outcome) == ["junk", "ok"])
    }
}
