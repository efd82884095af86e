import Foundation
import Store

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

/// How commands reach a root's index (docs/nas.md): the ones that only read fall back to the
/// root's snapshot on a machine that does not hold the index; the ones that write publish a new
/// snapshot when they are done, so that other machines see their work.
enum RootIndex {
    static func reading(_ root: DroplineRoot, announce: Bool = true) throws -> (index: Index, snapshot: IndexSnapshot.Info?) {
        let opened = try Index.openForReading(root: root)
        if announce, let snapshot = opened.snapshot {
            Console.note("(the index of \(root.path) is on \(snapshot.host); this is the snapshot it published at \(snapshot.takenAt))")
        }
        return opened
    }

    static func reading(_ path: String) throws -> Index { try reading(try DroplineRoot(existing: path)).index }

    /// Publishes the index's snapshot; a failure is a warning (the command's own work is done).
    static func publish(_ index: Index, _ root: DroplineRoot) {
        do { try index.publishSnapshot(root: root) } catch {
            Console.note("warning: the index's snapshot in \(root.path) could not be published (\(error)); other machines see an older one until the next")
        }
    }
}
