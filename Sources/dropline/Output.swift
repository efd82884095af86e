import Foundation

/// Prints values as JSON on standard output (sorted keys, so output is stable for diffs and tests).
enum JSONOutput {
    /// Prints `value` as the JSON of every `--json` output: pretty, sorted keys, and snake_case keys
    /// (`content_sha256`, `best_epoch`), whatever the Swift property names. One style everywhere
    /// (README, "Commands"); data never appears as a key, so the conversion cannot touch it.
    static func print(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        FileHandle.standardOutput.write(try encoder.encode(value))
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

/// Messages for people, on standard error, so that standard output stays machine-readable.
enum Console {
    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
