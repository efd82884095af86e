import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How many CPUs this process may use: the CPUs of its affinity mask (`taskset`, cpusets, Slurm's
/// binding), capped by the CPU quota of its cgroup and every ancestor's (`cpu.max` in cgroup v2,
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us` in v1: Docker's `--cpus`, systemd's `CPUQuota=`), rounded
/// up. A pool wider than this only adds threads that wait for each other's time slices.
///
/// `DROPLINE_THREADS` overrides it: a whole number from 1 to the online CPUs (`override`). Neither
/// OpenMP nor Dispatch reads cgroup quotas, so Dropline sizes both from this: `OMP_NUM_THREADS` for
/// oneDNN (set before the process runs again, see the executable's ThreadPolicy), the width of
/// `Parallel.forEach` and the explanation workers, each of which compiles its own network.
public enum CPUBudget {
    public static let available: Int = {
        if let n = override(ProcessInfo.processInfo.environment["DROPLINE_THREADS"], online: online).threads { return n }
        return compute(affinity: affinityCount(), quota: cgroupQuota())
    }()

    /// The CPUs online on this machine.
    public static var online: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Bytes of level-2 cache per core (glibc's `_SC_LEVEL2_CACHE_SIZE`, from CPUID), 1 MiB where the
    /// system does not say; kept within 256 KiB to 8 MiB so that a VM's odd answer cannot size work
    /// absurdly. Work that streams through a few megabytes over and over (an integrated-gradients
    /// pass) runs fastest when it fits in it.
    public static let level2CachePerCore: Int = clampedCacheSize(sysconf(Int32(_SC_LEVEL2_CACHE_SIZE)))

    public static func clampedCacheSize(_ reported: Int) -> Int {
        reported > 0 ? min(max(reported, 256 << 10), 8 << 20) : 1 << 20
    }

    /// What `DROPLINE_THREADS` (`text`, nil when unset) gives: its number when it is a whole number from
    /// 1 to `online`; the online CPUs when it is more (more threads than CPUs only wait for each other's
    /// time slices, and each explanation worker holds a compiled network: 64 of them would hold 6 GB
    /// for MobileNetV2); nil when unset or not a positive whole number. `problem` says what was
    /// ignored or capped, for a note on the terminal.
    public static func override(_ text: String?, online: Int) -> (threads: Int?, problem: String?) {
        guard let text else { return (nil, nil) }
        guard let n = Int(text), n > 0 else {
            return (nil, "DROPLINE_THREADS=\(text.debugDescription) is not a whole number of CPUs from 1 up; it is ignored")
        }
        guard n <= online else {
            return (online, "DROPLINE_THREADS=\(n) is more than the \(online) CPUs online; \(online) are used")
        }
        return (n, nil)
    }

    /// `affinity` CPUs capped by a quota of `quota` CPUs (nil: no quota), at least one.
    public static func compute(affinity: Int, quota: Double?) -> Int {
        var n = max(1, affinity)
        if let quota, quota > 0 { n = min(n, max(1, Int(quota.rounded(.up)))) }
        return n
    }

    /// CPUs in this process's affinity mask, from `Cpus_allowed_list` in /proc/self/status (Glibc's
    /// module does not export `sched_getaffinity`); the online CPU count if it cannot be read.
    public static func affinityCount(status: String = "/proc/self/status") -> Int {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard let text = try? String(contentsOfFile: status, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return online }
        return cpuListCount(String(line.dropFirst("Cpus_allowed_list:".count))) ?? online
    }

    /// How many CPUs a list such as "0-3,8,10-11" names; nil when it is not such a list.
    public static func cpuListCount(_ list: String) -> Int? {
        var count = 0
        for part in list.trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0) }
            switch bounds.count {
            case 1: guard bounds[0] != nil else { return nil }; count += 1
            case 2: guard let a = bounds[0], let b = bounds[1], b >= a else { return nil }; count += b - a + 1
            default: return nil
            }
        }
        return count > 0 ? count : nil
    }

    /// The tightest CPU quota, in CPUs, of this process's cgroup and its ancestors; nil when none.
    public static func cgroupQuota(proc: String = "/proc/self/cgroup", mounts: String = "/sys/fs/cgroup") -> Double? {
        guard let text = try? String(contentsOfFile: proc, encoding: .utf8) else { return nil }
        var quotas: [Double] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { continue }
            let controllers = parts[1].split(separator: ",").map(String.init)
            for folder in ancestors(parts[2]) {
                if parts[0] == "0" && parts[1].isEmpty {
                    // cgroup v2: "max 100000" or "<quota> <period>"
                    if let fields = read(mounts + folder + "/cpu.max")?.split(separator: " "), fields.count == 2,
                       let quota = Double(fields[0]), let period = Double(fields[1]), period > 0 {
                        quotas.append(quota / period)
                    }
                } else if controllers.contains("cpu") {
                    // cgroup v1: the cpu controller's own mount (cpu or cpu,cpuacct)
                    for mount in [mounts + "/" + parts[1], mounts + "/cpu", mounts + "/cpu,cpuacct"] {
                        if let quota = read(mount + folder + "/cpu.cfs_quota_us").flatMap(Double.init), quota > 0,
                           let period = read(mount + folder + "/cpu.cfs_period_us").flatMap(Double.init), period > 0 {
                            quotas.append(quota / period)
                            break
                        }
                    }
                }
            }
        }
        return quotas.min()
    }

    /// "/a/b" -> ["/a/b", "/a", ""] (the root's files are at the mount itself).
    static func ancestors(_ path: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        var out: [String] = []
        while true {
            out.append(parts.isEmpty ? "" : "/" + parts.joined(separator: "/"))
            if parts.isEmpty { return out }
            parts.removeLast()
        }
    }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// CPU-bound loops over many items: `DispatchQueue.concurrentPerform` sized to `CPUBudget.available`
/// instead of every online CPU, each worker taking the next item as it finishes one (no barrier per
/// item, so a worker that is descheduled delays only the item it holds).
public enum Parallel {
    public static func forEach(_ count: Int, width: Int = CPUBudget.available, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let workers = min(max(1, width), count)
        if workers == 1 {
            for i in 0..<count { body(i) }
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < count else { return }
                    body(i)
                }
            }
        }
    }
}
