import Foundation

/// Finds the team's shared material (`../shared` beside the checkout: datasets, models, bad inputs).
///
/// Tests and benchmarks read from it and skip with a clear message when it is absent; the project
/// never copies it. Looked for, in order: `$DROPLINE_SHARED`, then a `shared/` folder holding
/// `PEERS.md` beside any ancestor of the working directory or of the running executable.
public enum SharedMaterial {
    public static func locate() -> String? {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["DROPLINE_SHARED"], !explicit.isEmpty {
            return fm.fileExists(atPath: explicit) ? explicit : nil
        }
        var starts = [fm.currentDirectoryPath]
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        starts.append(executable.deletingLastPathComponent().path)
        for start in starts {
            var directory = URL(fileURLWithPath: start).standardizedFileURL
            for _ in 0..<12 {
                let candidate = directory.appendingPathComponent("shared")
                if fm.fileExists(atPath: candidate.appendingPathComponent("PEERS.md").path) { return candidate.path }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        return nil
    }

    /// A path inside the shared material, or nil when the material (or that path) is absent.
    public static func path(_ relative: String) -> String? {
        guard let root = locate() else { return nil }
        let full = root + "/" + relative
        return FileManager.default.fileExists(atPath: full) ? full : nil
    }

    /// The message to print when something needed from the shared material is missing.
    public static func absenceMessage(_ relative: String) -> String {
        "skipped: ../shared/\(relative) is not present (set DROPLINE_SHARED to the shared folder to include it)"
    }
}
