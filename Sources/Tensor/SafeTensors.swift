import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor
/// name to its dtype, shape and byte range (plus an optional `__metadata__` map of strings), then the
/// raw little-endian data. Float32 tensors (F32) and float64 vectors (F64) are read and written here.
public enum SafeTensors {
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public let reason: String
        public var description: String { "not a valid safetensors file: \(reason)" }
    }

    /// Encodes float32 tensors and float64 vectors (in name order) with string metadata.
    public static func encode(_ tensors: [String: Tensor], doubles: [String: [Double]] = [:], metadata: [String: String] = [:]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        // float64 data first, so every value stays 8-byte aligned after the padded header
        let doubleNames = doubles.keys.sorted()
        for name in doubleNames {
            let v = doubles[name]!
            precondition(tensors[name] == nil, "'\(name)' is both a float32 tensor and a float64 vector")
            header[name] = ["dtype": "F64", "shape": [v.count], "data_offsets": [offset, offset + v.count * 8]]
            offset += v.count * 8
        }
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + t.count * 4]]
            offset += t.count * 4
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }  // pad with spaces so data is aligned
        var bytes = [UInt8]()
        bytes.reserveCapacity(8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: json)
        for name in doubleNames {
            for value in doubles[name]! {
                var little = value.bitPattern.littleEndian
                withUnsafeBytes(of: &little) { bytes.append(contentsOf: $0) }
            }
        }
        for name in names {
            tensors[name]!.data.withUnsafeBufferPointer { buffer in
                for value in buffer {
                    var little = value.bitPattern.littleEndian
                    withUnsafeBytes(of: &little) { bytes.append(contentsOf: $0) }
                }
            }
        }
        return bytes
    }

    /// Decodes every float32 tensor and the metadata (float64 vectors: `decodeAll`).
    public static func decode(_ bytes: [UInt8]) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let all = try decodeAll(bytes)
        return (all.tensors, all.metadata)
    }

    /// Decodes float32 tensors, float64 vectors and the metadata. Other dtypes are an error naming the tensor.
    public static func decodeAll(_ bytes: [UInt8]) throws -> (tensors: [String: Tensor], doubles: [String: [Double]], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw FormatError(reason: "shorter than its 8-byte header length") }
        var length: UInt64 = 0
        for i in (0..<8).reversed() { length = length << 8 | UInt64(bytes[i]) }
        guard length <= UInt64(bytes.count - 8) else { throw FormatError(reason: "header length \(length) exceeds the file") }
        let headerEnd = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) as? [String: Any] else {
            throw FormatError(reason: "the header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var doubles: [String: [Double]] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let range = entry["data_offsets"] as? [Int], range.count == 2 else {
                throw FormatError(reason: "tensor '\(name)' has no dtype, shape or data_offsets")
            }
            let count = shape.reduce(1, *)
            if dtype == "F64" {
                let start = headerEnd + range[0], end = headerEnd + range[1]
                guard range[0] >= 0, end <= bytes.count, range[1] - range[0] == count * 8 else {
                    throw FormatError(reason: "tensor '\(name)' of shape \(shape) has byte range \(range), which does not fit")
                }
                doubles[name] = bytes.withUnsafeBytes { raw in
                    (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: start + 8 * $0, as: UInt64.self))) }
                }
                continue
            }
            guard dtype == "F32" else { throw FormatError(reason: "tensor '\(name)' is \(dtype); only F32 and F64 are supported") }
            let start = headerEnd + range[0], end = headerEnd + range[1]
            guard range[0] >= 0, end <= bytes.count, range[1] - range[0] == count * 4 else {
                throw FormatError(reason: "tensor '\(name)' of shape \(shape) has byte range \(range), which does not fit")
            }
            var data = [Float](repeating: 0, count: count)
            bytes.withUnsafeBytes { raw in
                for i in 0..<count {
                    let bits = raw.loadUnaligned(fromByteOffset: start + 4 * i, as: UInt32.self)
                    data[i] = Float(bitPattern: UInt32(littleEndian: bits))
                }
            }
            tensors[name] = Tensor(shape: shape, data: data)
        }
        return (tensors, doubles, metadata)
    }
}
