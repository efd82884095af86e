import Foundation
import Synchronization
import SystemFiles
import Testing

@Suite("CPU budget: affinity and cgroup quotas")
struct CPUBudgetTests {
    /// A fake /proc/self/cgroup and cgroup mount.
    func fake(_ cgroup: String, files: [String: String]) throws -> (proc: String, mounts: String, remove: () -> Void) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-cgroup-\(UUID().uuidString)").path
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: ((base + "/sys" + path) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: base + "/sys" + path, atomically: true, encoding: .utf8)
        }
        try cgroup.write(toFile: base + "/cgroup", atomically: true, encoding: .utf8)
        return (base + "/cgroup", base + "/sys", { try? FileManager.default.removeItem(atPath: base) })
    }

    @Test("cgroup v2: the tightest cpu.max of the group and its ancestors, in CPUs; 'max' is no quota")
    func version2() throws {
        let f = try fake("0::/jobs/job-7\n", files: ["/jobs/job-7/cpu.max": "max 100000\n", "/jobs/cpu.max": "150000 100000\n", "/cpu.max": "max 100000"])
        defer { f.remove() }
        #expect(CPUBudget.cgroupQuota(proc: f.proc, mounts: f.mounts) == 1.5)
        #expect(CPUBudget.compute(affinity: 2, quota: 1.5) == 2, "a part of a CPU is rounded up")
        #expect(CPUBudget.compute(affinity: 8, quota: 0.5) == 1)
        let none = try fake("0::/\n", files: ["/cpu.max": "max 100000"])
        defer { none.remove() }
        #expect(CPUBudget.cgroupQuota(proc: none.proc, mounts: none.mounts) == nil)
        #expect(CPUBudget.compute(affinity: 2, quota: nil) == 2)
    }

    @Test("DROPLINE_THREADS: a whole number from 1 to the online CPUs; more is capped, anything else ignored, each with a note")
    func override() {
        #expect(CPUBudget.override(nil, online: 8) == (nil, nil))
        #expect(CPUBudget.override("4", online: 8) == (4, nil))
        #expect(CPUBudget.override("8", online: 8) == (8, nil))
        let capped = CPUBudget.override("64", online: 2)
        #expect(capped.threads == 2 && capped.problem?.contains("more than the 2 CPUs online") == true)
        for text in ["0", "-2", "two", "", " 2", "2 ", "2.5", "3\n", "99999999999999999999999", "$(reboot)"] {
            let result = CPUBudget.override(text, online: 8)
            #expect(result.threads == nil && result.problem?.contains("is ignored") == true, "\(text.debugDescription)")
            #expect(result.problem?.contains(text.debugDescription) == true, "the note quotes the value")
        }
    }

    @Test("cgroup v1: cpu.cfs_quota_us over cpu.cfs_period_us of the cpu controller; -1 is no quota")
    func version1() throws {
        let f = try fake("4:memory:/a\n3:cpu,cpuacct:/docker/abc\n0::/\n", files: [
            "/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000", "/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            "/cpu,cpuacct/docker/cpu.cfs_quota_us": "-1", "/cpu,cpuacct/docker/cpu.cfs_period_us": "100000",
        ])
        defer { f.remove() }
        #expect(CPUBudget.cgroupQuota(proc: f.proc, mounts: f.mounts) == 0.5)
    }

    @Test("a core's level-2 cache: the system's figure within 256 KiB to 8 MiB, 1 MiB when it says nothing")
    func level2Cache() {
        #expect(CPUBudget.clampedCacheSize(1 << 20) == 1 << 20 && CPUBudget.clampedCacheSize(2 << 20) == 2 << 20)
        #expect(CPUBudget.clampedCacheSize(0) == 1 << 20 && CPUBudget.clampedCacheSize(-1) == 1 << 20)
        #expect(CPUBudget.clampedCacheSize(4096) == 256 << 10 && CPUBudget.clampedCacheSize(1 << 40) == 8 << 20)
        #expect(CPUBudget.level2CachePerCore >= 256 << 10 && CPUBudget.level2CachePerCore <= 8 << 20)
    }

    @Test("this process: its affinity mask, and a budget within it")
    func here() {
        #expect(CPUBudget.cpuListCount("0-3,8,10-11") == 7 && CPUBudget.cpuListCount("1") == 1 && CPUBudget.cpuListCount("x") == nil)
        #expect(CPUBudget.affinityCount() >= 1 && CPUBudget.affinityCount() <= ProcessInfo.processInfo.processorCount)
        #expect(CPUBudget.available >= 1)
    }

    @Test("Parallel.forEach visits every index once, with at most its width of workers at a time")
    func parallel() {
        let seen = Mutex([Int](repeating: 0, count: 1000)), busy = Atomic<Int>(0), most = Atomic<Int>(0)
        Parallel.forEach(1000, width: 2) { i in
            let now = busy.add(1, ordering: .relaxed).newValue
            _ = most.max(now, ordering: .relaxed)
            seen.withLock { $0[i] += 1 }
            _ = busy.subtract(1, ordering: .relaxed)
        }
        #expect(seen.withLock { $0.allSatisfy { $0 == 1 } })
        #expect(most.load(ordering: .relaxed) <= 2)
    }
}
