import Tensor
import Testing

@Suite("safetensors")
struct SafeTensorsTests {
    @Test("float32 tensors and float64 vectors round-trip exactly, with metadata")
    func roundTrip() throws {
        let t = Tensor(shape: [2, 3], data: [1, -2.5, 3e-8, .infinity, 0, 7])
        let d = [0.1, 1e-300, -3.0000000000000004]
        let bytes = try SafeTensors.encode(["w": t], doubles: ["p": d], metadata: ["k": "v"])
        let back = try SafeTensors.decodeAll(bytes)
        #expect(back.tensors["w"] == t && back.doubles["p"] == d && back.metadata == ["k": "v"])
        #expect(try SafeTensors.decode(bytes).tensors.keys.sorted() == ["w"])
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors.decode(Array(bytes.prefix(20))) }
    }
}
