import ArgumentParser
import DroplineSupport
import Foundation
import Imaging

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Inspect images as Dropline's decoder sees them.",
        subcommands: [Info.self]
    )

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report, for every file, whether Dropline can use it, and why not.",
            discussion: """
            Folders are walked recursively. Each file gets an outcome: ok (decoded), junk (NAS or desktop \
            metadata such as ._*, .DS_Store, Thumbs.db, @eaDir/), or the reason it would be quarantined: \
            empty, truncated, corrupt, unsupported, too_large, unreadable. Formats are recognised by their \
            bytes, not their names.
            """
        )

        @Argument(help: "Image files or folders.")
        var paths: [String]

        @Flag(help: "One JSON array of records on standard output.")
        var json = false

        @Option(help: "Refuse images whose header claims more than this many megapixels.")
        var maxMegapixels: Double = 100

        @Flag(help: "Accept JPEGs whose data ends early (libjpeg fills the rest with grey).")
        var acceptTruncated = false

        @Flag(help: "Accept JPEGs that decode with corrupt-data warnings.")
        var acceptWarnings = false

        @Flag(help: "Exit with status 1 when any file is neither ok nor junk.")
        var strict = false

        func validate() throws {
            guard maxMegapixels > 0 else { throw ValidationError("--max-megapixels must be positive") }
        }

        func run() throws {
            var options = DecodeOptions()
            options.maxPixels = Int(maxMegapixels * 1e6)
            options.acceptTruncated = acceptTruncated
            options.acceptWarnings = acceptWarnings
            let progress = TerminalProgress("inspecting", total: nil, unit: "files")
            let records = ImageInspector.inspect(paths: paths, options: options) { _, _ in progress.advance() }
            if progress.done > 50 { progress.finish() }
            if json {
                try JSONOutput.print(records)
            } else {
                var table = TextTable("OUTCOME", "SIZE", "FORMAT", "PATH", "REASON")
                for r in records {
                    let size = r.width.map { "\($0)x\(r.height ?? 0)" } ?? "-"
                    var reason = r.reason ?? r.warnings?.joined(separator: "; ") ?? ""
                    if r.outcome == "ok", r.orientation ?? 1 != 1 { reason = "EXIF orientation \(r.orientation!)" }
                    table.add([r.outcome, size, r.format ?? "-", r.path, reason])
                }
                print(table.render())
                var counts: [String: Int] = [:]
                for r in records { counts[r.outcome, default: 0] += 1 }
                let summary = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                print("\(records.count) files: \(summary)")
            }
            if strict, records.contains(where: { $0.outcome != "ok" && $0.outcome != "junk" }) {
                throw ExitCode(1)
            }
        }
    }
}
