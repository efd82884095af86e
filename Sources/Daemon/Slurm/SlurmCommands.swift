import DroplineSupport
import Foundation

/// Slurm's commands (`sbatch`, `squeue`, `scancel`), run without a shell through `CommandRunner`,
/// with bounded time. Slurm finds its cluster the usual way (`SLURM_CONF`, or /etc/slurm/slurm.conf),
/// which the daemon's environment passes on.
///
/// Job states come from `squeue --states=all`, which lists a finished job for `MinJobAge` seconds
/// (300 by default) after it ended: `sacct` needs slurmdbd, which a small cluster may not run. A job
/// squeue no longer knows is `GONE`; the executor then decides from what the job left in the run's
/// staging folder (each shard's output is written last, atomically), never from the scheduler alone.
public struct SlurmCommands: Sendable {
    let runner = CommandRunner(grace: 2)
    /// Seconds a Slurm command may take (slurmctld answers in milliseconds; a hung one is an error).
    public var timeout = 60.0

    public init() {}

    /// Whether `sbatch` and `squeue` are installed here.
    public static var installed: Bool {
        ["sbatch", "squeue", "scancel"].allSatisfy { tool in
            (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
        }
    }

    func run(_ arguments: [String]) throws -> String {
        let result = runner.run(arguments, environment: [:], timeout: timeout)
        guard result.succeeded else {
            let why: String
            switch result.ending {
            case .notStarted(let reason): why = "could not start (\(reason)); is Slurm installed (Debian's slurm-client)?"
            case .timedOut: why = "did not answer within \(Int(timeout)) s; is slurmctld running?"
            default: why = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            throw SlurmError("`\(arguments.prefix(2).joined(separator: " "))` failed: \(why)")
        }
        return result.output
    }

    /// Submits a batch script; returns the job id (`--parsable`'s first field).
    public func submit(_ options: [String], script: String) throws -> String {
        // the script goes in a file: sbatch reads it when it is given as an argument, and stores a copy
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-sbatch-\(UUID().uuidString).sh").path
        try Data(script.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let output = try run(["sbatch", "--parsable"] + options + [file])
        guard let line = output.split(separator: "\n").last, let id = line.split(separator: ";").first, !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SlurmError("sbatch did not print a job id (it printed: \(output.prefix(200)))")
        }
        return String(id)
    }

    /// A Slurm job or array task as squeue shows it.
    public struct Task: Sendable, Equatable {
        /// `1234` for a job, `1234_5` for an array's task.
        public var id: String
        public var state: String
        public var nodes: String
        public var reason: String
    }

    /// The jobs `ids` (jobs or whole arrays, one line per array task), with every state, finished
    /// ones included while slurmctld remembers them. Ids it does not know are missing from the result.
    public func tasks(_ ids: [String]) throws -> [Task] {
        guard !ids.isEmpty else { return [] }
        let arguments = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N|%r", "--jobs=" + ids.joined(separator: ",")]
        do {
            return Self.parse(try run(arguments))
        } catch let error as SlurmError where error.description.contains("Invalid job id") && ids.count > 1 {
            // one forgotten id fails the whole query: ask for each
            return try ids.flatMap { try tasks([$0]) }
        } catch let error as SlurmError where error.description.contains("Invalid job id") {
            return []
        }
    }

    /// squeue's `%i|%T|%N|%r` lines.
    public static func parse(_ output: String) -> [Task] {
        output.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= 4, let first = f[0].first, first.isNumber else { return nil }
            return Task(id: f[0], state: f[1], nodes: f[2], reason: f[3])
        }
    }

    /// An array option's indices: "0-3,7,9-10".
    public static func arrayIndices(_ values: [Int]) -> String {
        var parts: [String] = [], sorted = Array(Set(values)).sorted()[...]
        while let first = sorted.first {
            var last = first
            sorted = sorted.dropFirst()
            while sorted.first == last + 1 { last = sorted.removeFirst() }
            parts.append(first == last ? "\(first)" : "\(first)-\(last)")
        }
        return parts.joined(separator: ",")
    }

    /// Cancels jobs (whole arrays included); a job that already ended is no error.
    public func cancel(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        _ = runner.run(["scancel"] + ids, environment: [:], timeout: timeout)
    }
}

public struct SlurmError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
