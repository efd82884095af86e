import DroplineSupport
import Foundation
import Testing
import SystemFiles
import Hashing

@Suite("SHA-256")
struct SHA256Tests {
    @Test("known digests (FIPS 180-2 examples)")
    func vectors() {
        #expect(SHA256.hash([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("a file hashes like its bytes, across read boundaries")
    func file() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = (0..<((1 << 20) * 2 + 17)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try AtomicFile.write(bytes, to: path)
        #expect(try SHA256.hash(file: path) == SHA256.hash(bytes))
    }

    @Test("the shared backbone's weights have the hash its README gives",
          .enabled(if: SharedMaterial.locate() != nil, "../shared is not present"))
    func backbone() throws {
        let path = SharedMaterial.locate()! + "/models/mobilenet_v2_0.35_224_tfjs/weights.bin"
        #expect(try SHA256.hash(file: path) == "871179f09e824817dc433bda185c0a51e6706466f088745e8d51b49a9126ee04")
    }
}
