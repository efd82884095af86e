import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real Slurm cluster for tests: munged, slurmctld and two slurmd (nodes n1 and n2, one CPU each;
/// partitions `batch` with both and `gpu` with n2 and one `gpu` GRES), started by
/// scripts/slurm-test-cluster (which `.ci/run` runs too) and left running for the next test process.
/// Needs root and Debian's slurm-wlm and munge.
public enum SlurmCluster {
    /// The repository's scripts/slurm-test-cluster.
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/slurm-test-cluster").path

    public static var available: Bool {
        getuid() == 0 && ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"].allSatisfy(FileManager.default.isExecutableFile(atPath:))
            && FileManager.default.fileExists(atPath: script)
    }
    public static let unavailable = "needs root, Slurm and munge (apt-get install slurm-wlm munge; .ci/run installs and starts them)"

    public static let folder = "/tmp/dropline-slurm"
    public static var configuration: String { folder + "/slurm.conf" }
    nonisolated(unsafe) static var started = false
    static let lock = NSLock()
    static let inUse = NSLock()

    /// Runs `body` while no other test uses the cluster. Suites run side by side, and one test's
    /// node taken down fails another's tasks on it (seen in CI: a NODE_FAIL in the 4,000-image test,
    /// none where the node-loss test expected one).
    public static func exclusively<T>(_ body: () throws -> T) throws -> T {
        inUse.lock()
        defer { inUse.unlock() }
        return try body()
    }

    /// Starts the cluster unless it runs; returns the environment that reaches it (`SLURM_CONF`).
    public static func environment() throws -> [String: String] {
        try lock.withLock {
            if !started {
                let status = try SFTPShare.tool("/bin/bash", [script, "start", folder])
                guard status == 0 else { throw SFTPShare.Failure(description: "scripts/slurm-test-cluster start failed (\(status)); see \(folder)/log/") }
                started = true
            }
            return ["SLURM_CONF": configuration]
        }
    }

    /// Starts whatever of the cluster is not running (a test that stopped slurmctld).
    public static func restart() throws {
        let status = try SFTPShare.tool("/bin/bash", [script, "start", folder])
        guard status == 0 else { throw SFTPShare.Failure(description: "scripts/slurm-test-cluster start failed (\(status)); see \(folder)/log/") }
    }

    /// Runs a Slurm command (scontrol, squeue, ...) on the cluster; returns its status and output.
    @discardableResult
    public static func command(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-slurm-\(UUID().uuidString)").path
        defer { unlink(output) }
        let pid = try SFTPShare.spawn("/usr/bin/" + arguments[0], Array(arguments.dropFirst()), environment: try environment(), stdout: output, stderr: output)
        let status = SFTPShare.wait(pid)
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// The shard tasks running now, with their nodes (`squeue`).
    public static func running() throws -> [(id: String, node: String)] {
        try command(["squeue", "--noheader", "--array", "--states=RUNNING", "--format=%i %N %j"]).output.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ").map(String.init)
            return f.count == 3 && f[2].hasPrefix("dropline-shards-") ? (f[0], f[1]) : nil
        }
    }
}
