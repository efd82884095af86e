import Imaging
import Testing

@Suite("EXIF orientation")
struct OrientationTests {
    /// A TIFF block with one IFD0 entry: orientation = value.
    static func tiff(orientation: UInt16, littleEndian: Bool) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { littleEndian ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func u32(_ v: UInt32) -> [UInt8] {
            littleEndian ? [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
                : [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        var block: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
        block += u16(42) + u32(8)
        block += u16(2)  // two entries: a dummy tag, then orientation
        block += u16(0x010F) + u16(2) + u32(4) + u32(0)
        block += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + [0, 0]
        block += u32(0)
        return block
    }

    @Test("orientation is read from little- and big-endian EXIF", arguments: 1...8)
    func parses(orientation: Int) {
        for little in [true, false] {
            let block = Self.tiff(orientation: UInt16(orientation), littleEndian: little)
            #expect(EXIF.orientation(tiff: block[...]) == orientation)
        }
    }

    @Test("damaged or absent EXIF means orientation 1")
    func damaged() {
        var block = Self.tiff(orientation: 6, littleEndian: true)
        #expect(EXIF.orientation(tiff: block[..<12]) == 1)
        block[4] = 0xFF  // IFD offset far past the end
        #expect(EXIF.orientation(tiff: block[...]) == 1)
        #expect(EXIF.orientation(tiff: Self.tiff(orientation: 9, littleEndian: true)[...]) == 1)
        #expect(EXIF.orientation(tiff: [][...]) == 1)
    }

    @Test("orientations match their geometric definitions")
    func transforms() {
        let image = TestData.randomImage(width: 5, height: 3, seed: 3)
        #expect(image.applyingOrientation(1) == image)
        #expect(image.applyingOrientation(2) == image.flippedHorizontally())
        #expect(image.applyingOrientation(3) == image.rotated(degrees: 180))
        #expect(image.applyingOrientation(4) == image.flippedVertically())
        // 6: the camera was turned clockwise; the fix is a clockwise quarter turn.
        #expect(image.applyingOrientation(6) == image.rotated(degrees: -90, expand: true))
        #expect(image.applyingOrientation(8) == image.rotated(degrees: 90, expand: true))
        #expect(image.applyingOrientation(5) == image.applyingOrientation(6).flippedHorizontally())
        #expect(image.applyingOrientation(7) == image.applyingOrientation(8).flippedHorizontally())
        for o in 5...8 { #expect(image.applyingOrientation(o).width == 3) }
    }
}
