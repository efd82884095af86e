import DroplineSupport
import FolderWatch
import Foundation
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// `dropline bench poll`: what one poll of a large, settled inbox costs, the daemon's incremental
/// scan (`IncrementalScanner`) against the full scan every poll made before it, in the same run on
/// the same folder (put it on the share to measure the network). Wall and CPU time per poll, and the
/// share of one core that polling every `interval` seconds takes.
public struct PollBenchmark {
    public struct Configuration: Sendable {
        /// The production inbox to poll; filled with `batches` x `files` small files when it is empty.
        public var inbox: String
        public var batches = 500
        public var files = 40
        public var polls = 6
        /// Seconds between polls (slept for real: network clients' caches expire meanwhile).
        public var interval = 5.0
        public var log: @Sendable (String) -> Void = { _ in }
        public init(inbox: String) { self.inbox = inbox }
    }

    public struct Timing: Codable, Sendable {
        public var wallMilliseconds: [Double]
        public var cpuMilliseconds: [Double]
        public var medianWallMilliseconds: Double { Self.median(wallMilliseconds) }
        public var maximumWallMilliseconds: Double { wallMilliseconds.max() ?? 0 }
        public var medianCpuMilliseconds: Double { Self.median(cpuMilliseconds) }
        static func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }
        enum CodingKeys: String, CodingKey { case wallMilliseconds, cpuMilliseconds, medianWallMilliseconds, maximumWallMilliseconds, medianCpuMilliseconds }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(wallMilliseconds, forKey: .wallMilliseconds)
            try c.encode(cpuMilliseconds, forKey: .cpuMilliseconds)
            try c.encode(medianWallMilliseconds, forKey: .medianWallMilliseconds)
            try c.encode(maximumWallMilliseconds, forKey: .maximumWallMilliseconds)
            try c.encode(medianCpuMilliseconds, forKey: .medianCpuMilliseconds)
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            wallMilliseconds = try c.decode([Double].self, forKey: .wallMilliseconds)
            cpuMilliseconds = try c.decode([Double].self, forKey: .cpuMilliseconds)
        }
        init() { wallMilliseconds = []; cpuMilliseconds = [] }
    }

    public struct Report: Codable, Sendable {
        public var inbox: String
        public var fileSystem: String
        public var batches: Int
        public var files: Int
        public var intervalSeconds: Double
        /// The first incremental scan (everything walked) and the one after settling (walked once more).
        public var settlingMilliseconds: [Double]
        public var fullScan: Timing
        public var incremental: Timing
        /// Median wall time of a full scan over that of an incremental one.
        public var speedup: Double
        /// Median CPU of an incremental poll over the interval, in percent of one core.
        public var percentOfCore: Double
        public var notes: [String]
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func measure(_ body: () -> Void) -> (wall: Double, cpu: Double) {
        let cpu = cpuSeconds(), start = DispatchTime.now().uptimeNanoseconds
        body()
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, (cpuSeconds() - cpu) * 1000)
    }

    /// Fills an empty inbox: `batches` folders (half of them under stage folders) of `files` files.
    func fill() throws {
        let c = configuration
        try FileManager.default.createDirectory(atPath: c.inbox, withIntermediateDirectories: true)
        guard FileSystem.names(in: c.inbox).isEmpty else { return }
        c.log("filling \(c.inbox) with \(c.batches) batches of \(c.files) files")
        let bytes = Data(repeating: 0xAB, count: 1024)
        for b in 0..<c.batches {
            let folder = c.inbox + (b % 2 == 0 ? "/stage-\(b % 4)/batch-\(b)" : "/batch-\(b)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for f in 0..<c.files { try bytes.write(to: URL(fileURLWithPath: folder + "/img-\(f).jpg")) }
            try Data().write(to: URL(fileURLWithPath: folder + "/_READY"))
            if b % 50 == 49 { c.log("  \(b + 1)/\(c.batches) batches") }
        }
    }

    public func run() throws -> Report {
        let c = configuration
        try fill()
        let full = InboxScanner()
        var incremental = IncrementalScanner(scanner: InboxScanner(), trustSeconds: IncrementalScanner.trustSeconds(for: c.inbox))
        var now = 0.0
        var scan = full.scan(c.inbox)
        let first = Self.measure { scan = incremental.scan(c.inbox, now: now) }
        for (name, snapshot) in scan.batches { incremental.settle(name, folder: c.inbox + "/" + name, snapshot: snapshot, now: now) }
        let batches = scan.batches.count, files = scan.batches.values.reduce(0) { $0 + $1.files.count }
        c.log("\(batches) batches, \(files) files; polling \(c.polls) times every \(c.interval) s")
        // polls until the folders' times are trusted (2 s on a local disk, longer than a network client's caches)
        var second = (wall: 0.0, cpu: 0.0)
        for settling in 0..<Int((incremental.trustSeconds / c.interval).rounded(.up)) + 1 {
            Thread.sleep(forTimeInterval: c.interval)
            now += c.interval
            let look = Self.measure { _ = incremental.scan(c.inbox, now: now) }
            if settling == 0 { second = look }
        }
        var fullTiming = Timing(), ours = Timing()
        var notes: [String] = []
        for poll in 0..<c.polls {
            Thread.sleep(forTimeInterval: c.interval)
            now += c.interval
            var truth: InboxScanner.Scan?, answer: InboxScanner.Scan?
            let peer = Self.measure { truth = full.scan(c.inbox) }
            let mine = Self.measure { answer = incremental.scan(c.inbox, now: now) }
            if answer != truth { notes.append("poll \(poll + 1): the incremental scan's answer differs from the full scan's (the inbox changed between them?)") }
            fullTiming.wallMilliseconds.append(peer.wall)
            fullTiming.cpuMilliseconds.append(peer.cpu)
            ours.wallMilliseconds.append(mine.wall)
            ours.cpuMilliseconds.append(mine.cpu)
            c.log(String(format: "poll %d: full scan %.1f ms, incremental %.1f ms (%d walked, %d skipped)", poll + 1, peer.wall, mine.wall,
                         incremental.cost.walked, incremental.cost.walksSkipped))
        }
        return Report(inbox: c.inbox, fileSystem: MountKind.type(of: c.inbox) ?? "unknown", batches: batches, files: files, intervalSeconds: c.interval,
                      settlingMilliseconds: [first.wall, second.wall], fullScan: fullTiming, incremental: ours,
                      speedup: fullTiming.medianWallMilliseconds / max(ours.medianWallMilliseconds, 0.001),
                      percentOfCore: ours.medianCpuMilliseconds / (c.interval * 1000) * 100, notes: notes)
    }
}
