import DroplineSupport
import Foundation
import Imaging
import JSONFiles
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// `dropline bench pipeline`: the batch-inference pipeline as a whole, `dropline infer` (the real
/// executable, a new process each time) against `scripts/pipeline_peer.py` doing the same work with
/// the standard Python stack (Pillow, torch, scipy, Captum), on the same photos with the same model,
/// alternated, medians of whole-process wall times, their ratio, each side's per-stage times and
/// peak RSS; optionally again beside busy loops, for the slowdown under contention.
public struct PipelineBenchmark {
    public struct Configuration: Sendable {
        /// The dropline executable.
        public var executable: String
        /// A root with a champion model; nil: a scratch root is made and a MobileNetV2 model trained in it.
        public var root: String?
        /// The backbone's model.json, for the scratch root's model.
        public var backbone: String
        /// imagenette-mini: its test photos are the batch.
        public var dataset: String
        public var images = 400
        public var width = 512
        public var height = 384
        public var rounds = 3
        /// Busy loops to run beside a second series of rounds (0: none).
        public var busyLoops = 0
        public var python = "python3"
        /// `dropline infer --explain-steps` (nil: Dropline's default explanations); the peer always runs Captum's 50.
        public var explainSteps: Int?
        public var peerScript: String
        public var scratch: String
        public var log: @Sendable (String) -> Void = { _ in }
        public init(executable: String, backbone: String, dataset: String, peerScript: String, scratch: String) {
            self.executable = executable
            self.backbone = backbone
            self.dataset = dataset
            self.peerScript = peerScript
            self.scratch = scratch
        }
    }

    /// One series of alternated rounds.
    public struct Series: Codable, Sendable {
        public var busyLoops: Int
        public var droplineSeconds: [Double]
        public var peerSeconds: [Double]
        public var droplineStageSeconds: [String: Double]
        public var peerStageSeconds: [String: Double]
        public var droplinePeakRssMegabytes: Double
        public var peerPeakRssMegabytes: Double
        public var droplineMedianSeconds: Double { Self.median(droplineSeconds) }
        public var peerMedianSeconds: Double { Self.median(peerSeconds) }
        /// Peer time over Dropline's: how many times faster Dropline is.
        public var ratio: Double { peerMedianSeconds / max(droplineMedianSeconds, 1e-9) }

        static func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }

    public struct Report: Codable, Sendable {
        public var images: Int
        /// Dropline's explanation points per image ("default": 200 and refinement; the peer: 50).
        public var droplineExplanationSteps: String
        public var photoSize: String
        public var root: String
        public var quiet: Series
        public var loaded: Series?
        public var notes: [String]
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run() throws -> Report {
        let c = configuration
        try FileManager.default.createDirectory(atPath: c.scratch, withIntermediateDirectories: true)
        let root = try c.root ?? trainScratchRoot()
        guard let model = Self.championFolder(root) else {
            throw BenchmarkError("\(root) has no champion model; give a root with one (--root) or leave --root out to train one")
        }
        let batch = root + "/inbox/production/bench-\(c.images)"
        try makeBatch(batch)
        var notes: [String] = []
        let quiet = try series(root: root, model: model, batch: batch, busyLoops: 0, notes: &notes)
        var loaded: Series?
        if c.busyLoops > 0 {
            let loops = try (0..<c.busyLoops).map { _ in try Child.start("/bin/sh", ["-c", "while :; do :; done"]) }
            defer { for pid in loops { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) } }
            loaded = try series(root: root, model: model, batch: batch, busyLoops: c.busyLoops, notes: &notes)
        }
        return Report(images: c.images, droplineExplanationSteps: c.explainSteps.map { "\($0)" } ?? "default", photoSize: "\(c.width)x\(c.height)", root: root, quiet: quiet, loaded: loaded, notes: notes)
    }

    func series(root: String, model: String, batch: String, busyLoops: Int, notes: inout [String]) throws -> Series {
        let c = configuration
        var ours: [Double] = [], theirs: [Double] = [], ourStages: [[String: Double]] = [], theirStages: [[String: Double]] = []
        var ourRss = 0.0, theirRss = 0.0
        for round in 1...c.rounds {
            c.log("round \(round)/\(c.rounds)\(busyLoops > 0 ? " beside \(busyLoops) busy loops" : ""): dropline infer")
            let before = Set(Self.serveRuns(root))
            let dropline = try Child.run(c.executable, ["infer", root, batch] + (c.explainSteps.map { ["--explain-steps", "\($0)"] } ?? []),
                                         output: c.scratch + "/dropline.out")
            guard dropline.status == 0 else {
                throw BenchmarkError("dropline infer failed (status \(dropline.status)): \(Self.tail(c.scratch + "/dropline.out"))")
            }
            ours.append(dropline.seconds)
            ourRss = max(ourRss, dropline.peakRssMegabytes)
            if let run = Self.serveRuns(root).first(where: { !before.contains($0) }), let seconds = Self.stageSeconds(run) { ourStages.append(seconds) }
            c.log("round \(round)/\(c.rounds): the Python stack")
            let out = c.scratch + "/peer-\(round)"
            try? FileManager.default.removeItem(atPath: out)
            let peer = try Child.run(c.python, [c.peerScript, model + "/model", model + "/drift", batch, out], output: c.scratch + "/peer.out")
            guard peer.status == 0, let line = Self.tail(c.scratch + "/peer.out").split(separator: "\n").last,
                  let result = try? JSONDecoder().decode(PeerResult.self, from: Data(line.utf8)) else {
                notes.append("the Python stack failed (status \(peer.status)): \(Self.tail(c.scratch + "/peer.out").suffix(300))")
                break
            }
            theirs.append(peer.seconds)
            theirRss = max(theirRss, peer.peakRssMegabytes)
            theirStages.append(result.seconds)
            if result.images != c.images { notes.append("the Python stack read \(result.images) images of \(c.images)") }
        }
        return Series(busyLoops: busyLoops, droplineSeconds: ours, peerSeconds: theirs, droplineStageSeconds: Self.medians(ourStages),
                      peerStageSeconds: Self.medians(theirStages), droplinePeakRssMegabytes: ourRss, peerPeakRssMegabytes: theirRss)
    }

    struct PeerResult: Decodable {
        var seconds: [String: Double]
        var images: Int
    }

    static func medians(_ runs: [[String: Double]]) -> [String: Double] {
        var out: [String: Double] = [:]
        for key in Set(runs.flatMap(\.keys)) { out[key] = Series.median(runs.compactMap { $0[key] }) }
        return out
    }

    // MARK: - The root, the model and the photos

    /// A scratch root with imagenette-mini's train and validation photos as stage `original`, and a
    /// model with the MobileNetV2 backbone trained on it (about a minute on 2 cores).
    func trainScratchRoot() throws -> String {
        let c = configuration
        let root = c.scratch + "/root"
        if Self.championFolder(root) != nil { return root }
        try? FileManager.default.removeItem(atPath: root)
        c.log("making a root with a MobileNetV2 model trained on \(c.dataset) (once per scratch folder)")
        guard try Child.run(c.executable, ["init", root], output: c.scratch + "/init.out").status == 0 else {
            throw BenchmarkError("dropline init failed: \(Self.tail(c.scratch + "/init.out"))")
        }
        for split in ["train", "validation"] {
            try copyTree(c.dataset + "/" + split, to: root + "/inbox/training/original/" + split)
        }
        let trained = try Child.run(c.executable, ["train", root, "--stage", "original", "--arch", "backbone:" + c.backbone], output: c.scratch + "/train.out")
        guard trained.status == 0 else { throw BenchmarkError("dropline train failed: \(Self.tail(c.scratch + "/train.out"))") }
        return root
    }

    func copyTree(_ source: String, to target: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: source).sorted() {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source + "/" + name, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue { try copyTree(source + "/" + name, to: target + "/" + name) } else {
                try fm.copyItem(atPath: source + "/" + name, toPath: target + "/" + name)
            }
        }
    }

    /// `images` JPEG photos of width x height (quality 90) made from the dataset's test photos, which
    /// the model never saw: each photo gives six crops of the photo's aspect (three heights, mirrored
    /// or not), resized up to the size asked, so that 2,000 photos are still all different images.
    func makeBatch(_ folder: String) throws {
        let c = configuration
        let fm = FileManager.default
        if ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter({ $0.hasSuffix(".jpg") }).count == c.images { return }
        try? fm.removeItem(atPath: folder)
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let sources = ImageInspector.expandSkippingJunk([c.dataset + "/test"]).map(\.path).sorted()
        guard !sources.isEmpty else { throw BenchmarkError("\(c.dataset)/test holds no photos") }
        guard c.images <= sources.count * 6 else { throw BenchmarkError("at most \(sources.count * 6) photos can be made from \(c.dataset)/test") }
        c.log("writing \(c.images) photos of \(c.width)x\(c.height) into \(folder)")
        let width = c.width, height = c.height
        try InFlight.forEach(c.images) { n in
            let variant = n / sources.count, photo = try ImageDecoder.decode(file: sources[n % sources.count]).image
            let cropHeight = min(photo.height, photo.width * height / width), cropWidth = min(photo.width, photo.height * width / height)
            let top = (photo.height - cropHeight) * (variant % 3) / 2
            var image = photo.cropped(x: (photo.width - cropWidth) / 2, y: top, size: Size(width: cropWidth, height: cropHeight))
                .resized(to: Size(width: width, height: height))
            if variant / 3 == 1 { image = image.flippedHorizontally() }
            try ImageEncoder.write(image, to: folder + String(format: "/%05d.jpg", n), format: .jpeg, quality: 90)
        }
    }

    static func championFolder(_ root: String) -> String? {
        // the newest model version folder holding a model and drift artifacts (the scratch root has one)
        let models = root + "/outputs/models"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: models)) ?? []).filter { $0.hasPrefix("v") }.sorted()
        return versions.reversed().map { models + "/" + $0 }.first {
            FileManager.default.fileExists(atPath: $0 + "/model/model.json") && FileManager.default.fileExists(atPath: $0 + "/drift/drift.json")
        }
    }

    static func serveRuns(_ root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/outputs/runs")) ?? []).filter { $0.contains("-serve-") }
            .map { root + "/outputs/runs/" + $0 }
    }

    static func stageSeconds(_ run: String) -> [String: Double]? {
        struct Manifest: Decodable { var seconds: [String: Double]? }
        return (try? SnakeCaseJSON.read(Manifest.self, from: run + "/manifest.json"))?.seconds
    }

    static func tail(_ path: String) -> String {
        String((try? String(contentsOfFile: path, encoding: .utf8))?.suffix(2000) ?? "")
    }
}

public struct BenchmarkError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A child process started with posix_spawn and reaped with wait4, for its wall time and its peak
/// resident memory (Foundation's Process gives neither the rusage nor a reliable reaping here).
enum Child {
    struct Finished {
        var status: Int32
        var seconds: Double
        var peakRssMegabytes: Double
    }

    static func start(_ executable: String, _ arguments: [String], output: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let target = output ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, target, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw BenchmarkError("cannot start \(executable): \(String(cString: strerror(result)))") }
        return pid
    }

    static func run(_ executable: String, _ arguments: [String], output: String) throws -> Finished {
        let started = Stopwatch.now()
        let pid = try start(executable, arguments, output: output)
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let seconds = Stopwatch.now() - started
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Finished(status: code, seconds: seconds, peakRssMegabytes: Double(usage.ru_maxrss) / 1024)
    }
}
