import Foundation

/// Pillow, the peer for decoding and resizing, run as a subprocess on the same files.
enum Pillow {
    /// The timing script. Pillow gets its best path: `draft` lets libjpeg's DCT scaling shrink the
    /// decode exactly when Dropline's does (scale chosen so the result still covers the target).
    static let script = #"""
import sys, time
from PIL import Image
files = open(sys.argv[1]).read().split("\n")
target = int(sys.argv[2]); rounds = int(sys.argv[3])
best = float("inf")
for _ in range(rounds):
    start = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            im.draft("RGB", (target, target))
            im = im.convert("RGB")
            im.resize((target, target), Image.BILINEAR)
    best = min(best, time.perf_counter() - start)
print(len(files) / best)
"""#

    static func available(python: String) -> Bool {
        (try? run(python, ["-c", "import PIL"]))?.status == 0
    }

    static func measure(files: [String], target: Int, rounds: Int, python: String, scratch: String) throws -> Double? {
        let list = scratch + "/pillow-files.txt"
        try files.joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
        let result = try run(python, ["-c", script, list, String(target), String(rounds)])
        guard result.status == 0 else { return nil }
        return Double(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs a peer program and collects its standard output and the last lines of its standard
    /// error (kept in a temporary file, so that neither pipe can fill and stall the program).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-peer-\(UUID().uuidString).err")
        FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errors = try FileHandle(forWritingTo: errorFile)
        process.standardError = errors
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? errors.close()
        let tail = ((try? String(contentsOf: errorFile, encoding: .utf8)) ?? "").split(separator: "\n").suffix(3).joined(separator: " ")
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), tail)
    }
}
