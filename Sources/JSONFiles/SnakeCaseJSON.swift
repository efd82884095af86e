import SystemFiles
public import Foundation

/// Dropline's JSON files (manifests, drift reports, explanations, study results): snake_case keys,
/// pretty-printed with sorted keys (stable for diffs and hashes), slashes unescaped (paths stay
/// readable), written atomically.
public enum SnakeCaseJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// Encodes `value` and writes it to `path` atomically.
    public static func write(_ value: some Encodable, to path: String) throws {
        try AtomicFile.write(Array(try encoder().encode(value)), to: path)
    }

    /// Reads and decodes the file at `path`.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        try decoder().decode(type, from: Data(try AtomicFile.read(path)))
    }
}
