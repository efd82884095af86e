import Foundation
import Testing

/// `dropline model train | eval | predict` run as a user would, on a small generated dataset.
@Suite("dropline model", .enabled(if: Binary.path != nil, "the dropline executable was not built"))
struct ModelCommandTests {
    /// Three colour classes of 32x32 PNGs in train/, validation/ and test/.
    static func dataset() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-cli-model-\(UUID().uuidString)").path
        var state: UInt64 = 12345
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        for (split, count) in [("train", 16), ("validation", 8), ("test", 6)] {
            for (label, name) in ["blue", "green", "red"].enumerated() {
                let folder = "\(root)/\(split)/\(name)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for i in 0..<count {
                    // class colour (blue, green or red channel high) with noise, as a PNG
                    var pixels = [UInt8]()
                    for _ in 0..<(32 * 32) {
                        for c in 0..<3 {
                            let base = c == 2 - label ? 180 : 50
                            pixels.append(UInt8(max(0, min(255, base + Int(next() % 60) - 30))))
                        }
                    }
                    try PNGWriter.write(width: 32, height: 32, rgb: pixels, to: folder + String(format: "/%02d.png", i))
                }
            }
        }
        return root
    }

    @Test("train, evaluate and predict end to end, with JSON output and bad files reported")
    func endToEnd() throws {
        let root = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let model = root + "/model"
        let train = try Binary.run(["model", "train", "--data", root, "--out", model, "--arch", "small-cnn", "--epochs", "3",
                                    "--image-size", "32", "--batch-size", "8", "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as? [String: Any]
        #expect(summary?["epochs_run"] as? Int == 3)
        #expect(summary?["content_sha256"] is String && summary?["best_epoch"] is Int)
        #expect(JSONStyle.camelCaseKeys(summary ?? [:]).isEmpty, "\(JSONStyle.camelCaseKeys(summary ?? [:]))")
        #expect(train.stderr.contains("epoch   1"))
        for file in ["weights.safetensors", "model.json", "content.sha256"] {
            #expect(FileManager.default.fileExists(atPath: model + "/" + file), "\(file) missing")
        }

        let eval = try Binary.run(["model", "eval", "--model", model, "--data", root + "/test", "--json"])
        #expect(eval.status == 0, "\(eval.stderr)")
        let metrics = (try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])?["metrics"] as? [String: Any]
        #expect(metrics?["count"] as? Int == 18)
        #expect(JSONStyle.camelCaseKeys(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8))).isEmpty)
        #expect((metrics?["confusion"] as? [[Int]])?.count == 3)

        _ = FileManager.default.createFile(atPath: root + "/test/red/broken.jpg", contents: Data("not an image".utf8))
        let predict = try Binary.run(["model", "predict", "--model", model, root + "/test/red", "--json"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let records = try JSONSerialization.jsonObject(with: Data(predict.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(records.count == 7)
        let broken = records.first { ($0["path"] as? String)?.hasSuffix("broken.jpg") == true }
        #expect(broken?["outcome"] as? String == "unsupported")
        #expect(records.filter { $0["outcome"] as? String == "ok" }.allSatisfy { ($0["top"] as? [Any])?.count == 3 })

        let again = try Binary.run(["model", "train", "--data", root, "--out", model, "--arch", "small-cnn", "--epochs", "1"])
        #expect(again.status != 0)
        #expect(again.stderr.contains("already exists"))
    }
}

/// Minimal PNG writer for test data (stored deflate blocks), so this suite depends only on the binary.
enum PNGWriter {
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes {
            a = (a + UInt32(x)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    static func write(width: Int, height: Int, rgb: [UInt8], to path: String) throws {
        var raw = [UInt8]()
        for y in 0..<height {
            raw.append(0)
            raw += rgb[(y * width * 3)..<((y + 1) * width * 3)]
        }
        var z: [UInt8] = [0x78, 0x01]
        var offset = 0
        while offset < raw.count {
            let n = min(65535, raw.count - offset)
            let last: UInt8 = offset + n == raw.count ? 1 : 0
            z += [last, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
            z += raw[offset..<(offset + n)]
            offset += n
        }
        z += be32(adler32(raw))
        let ihdr = be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0]
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", z) + chunk("IEND", [])
        try Data(png).write(to: URL(fileURLWithPath: path))
    }
}

/// The one style of every `--json` output: snake_case keys.
enum JSONStyle {
    /// Every key (at any depth) that has an upper-case letter.
    static func camelCaseKeys(_ value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { key, inner in (key.contains(where: \.isUppercase) ? [key] : []) + camelCaseKeys(inner) }
        }
        if let list = value as? [Any] { return list.flatMap(camelCaseKeys) }
        return []
    }
}
