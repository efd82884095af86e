import Imaging
import Testing

@Suite("Format sniffing")
struct FormatTests {
    @Test("formats are recognised by their magic bytes", arguments: [
        ([0xFF, 0xD8, 0xFF, 0xE0], ImageFormat.jpeg),
        ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], .png),
        (Array("GIF89a....".utf8), .gif),
        (Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8), .webp),
        ([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0], .tiff),
        ([0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8], .tiff),
        ([0, 0, 0, 0x18] + Array("ftypheic".utf8) + [0, 0, 0, 0], .heic),
        ([0, 0, 0, 0x18] + Array("ftypavif".utf8) + [0, 0, 0, 0], .avif),
        (Array("BM".utf8) + [0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0], .bmp),
        (Array("hello, this is text\n".utf8), .text),
        (Array("BMW is a car brand, not a bitmap".utf8), .text),
        ([0x00, 0x01, 0x02, 0x03, 0xFE], .unknown),
    ] as [([UInt8], ImageFormat)])
    func sniff(bytes: [UInt8], expected: ImageFormat) {
        #expect(ImageFormat.sniff(bytes) == expected)
    }

    @Test("only JPEG and PNG are supported")
    func supported() {
        #expect(ImageFormat.allCases.filter(\.isSupported) == [.jpeg, .png])
    }

    @Test("an unsupported format is refused with its name")
    func refusedByName() {
        #expect {
            try ImageDecoder.decode(Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8))
        } throws: { error in
            let e = error as? ImagingError
            return e?.kind == .unsupported && e?.format == .gif && e!.reason.contains("\"gif\"")
        }
    }

    @Test("an empty input is reported as empty")
    func empty() {
        #expect(throws: ImagingError.self) { try ImageDecoder.decode([]) }
        do {
            _ = try ImageDecoder.decode([])
        } catch {
            #expect(error.kind == .empty)
        }
    }
}
