import DriftStatistics
public import DroplineSupport
import Explainability
import Foundation
public import Logging
import Imaging
public import Modeling
import Monitoring
public import Rules
public import Store
import Synchronization
import JSONFiles

/// What a run did, written as `manifest.json` at the top of its published folder.
public struct RunManifest: Codable, Sendable {
    public var runId: String
    public var kind: String
    public var subject: String
    public var modelVersion: Int?
    public var components: [ComponentManifest]
    public var droplineVersion: String
    public var startedAt: String
    public var finishedAt: String
    public var outcome: String
    /// Training runs: the champion of the time evaluated on this run's validation set (what the
    /// promotion policy compares the new model with).
    public var baseline: Baseline? = nil
    /// Serve runs: seconds spent in each component during the run's pass (processing counts reading,
    /// hashing, decoding and resizing), keyed by component name.
    public var seconds: [String: Double]? = nil

    public struct Baseline: Codable, Sendable {
        public var version: Int
        public var accuracy: Double
    }
}

/// Time spent per component in a pass where the components take turns on each chunk.
struct StageClock {
    private var last = Stopwatch.now()
    private(set) var seconds: [String: Double] = [:]

    /// Charges the time since the previous lap to `component`.
    mutating func lap(_ component: ComponentName) {
        let now = Stopwatch.now()
        seconds[component.rawValue, default: 0] += now - last
        last = now
    }
}

/// A run whose folder was published but whose rows could not be written: it is not lost, it is
/// completed from its manifest at the next reconciliation.
public struct PublishedNotIndexed: Error, CustomStringConvertible, Sendable {
    public var run: String
    public var folder: String
    public var cause: String
    public var description: String {
        "run \(run) is published in \(folder) but could not be indexed (\(cause)); it is indexed from its manifest when the index can be written again (the daemon retries; or run `dropline recover`)"
    }
}

/// Both pipelines, on a Dropline root.
public final class Pipelines {
    public let root: DroplineRoot
    public let index: any DroplineIndex
    public var policy = PromotionPolicy()
    /// Where the pipelines say what they are doing (swift-log; metadata `run`, `batch`, `stage`).
    /// The daemon gives its own logger; the CLI one that prints the messages; by default nothing.
    public var logger = Logger(label: "dropline.pipelines") { _ in SwiftLogNoOpLogHandler() }
    public var trainingReport: @Sendable (TrainingEvent) -> Void = { _ in }
    /// Progress of the long steps (the CLI draws it on the terminal; by default nothing).
    public var progress: ProgressFactory = { _, _, _ in nil }
    /// Whether runs write the resized images into their processing/ folder (`dropline infer
    /// --keep-processed`, `dropline train --keep-processed`); by default they do not, since the index
    /// records every input's hash and the components take the images from memory.
    public var keepProcessedImages = false
    /// Gauss-Legendre points per explained image in serve runs, without the refinement budget (nil: the
    /// component's default, 63 points of the nested cosine trapezoid refined where an image needs it;
    /// `dropline infer --explain-steps`).
    public var explanationSteps: Int?
    /// This process as an owner of the root: its id goes on every run it starts, and recovery leaves
    /// alone the runs of owners that still live (nil: an anonymous owner, for in-memory tests).
    public var owner: OwnerSession?
    /// Runs this process is working on now (recovery and reconciliation leave them alone).
    let inFlight = Mutex<Set<String>>([])
    /// The root's dropline.yaml (its training recipe and thresholds), as loaded by the command or the
    /// daemon (which reloads it when it changes, from its own thread while jobs read it).
    public var configuration: RootConfiguration {
        get { configured.withLock { $0 } }
        set { configured.withLock { $0 = newValue } }
    }
    let configured = Mutex(RootConfiguration())

    /// The pipelines on `root` with its SQLite index.
    public convenience init(root: DroplineRoot) throws {
        self.init(root: root, index: try Index.open(root: root))
    }

    /// The pipelines on `root` with the given index (any backend).
    public init(root: DroplineRoot, index: any DroplineIndex) {
        self.root = root
        self.index = index
    }

    // MARK: - Helpers

    public struct ModelRow: Sendable {
        public var version: Int
        public var folder: String
    }

    public func champion() throws -> ModelRow? {
        try index.champion().map { ModelRow(version: $0.version, folder: $0.folder) }
    }

    func nextVersion() throws -> Int {
        let indexed = try index.highestModelVersion()
        let published = ((try? FileManager.default.contentsOfDirectory(atPath: root.models)) ?? [])
            .compactMap { $0.hasPrefix("v") ? Int($0.dropFirst()) : nil }.max() ?? 0
        return max(indexed, published) + 1  // (recover() runs first, so every published run is indexed)
    }

    static func versionName(_ version: Int) -> String { String(format: "v%04d", version) }

    /// Records a run as started under this process's ownership and as in flight.
    func startRun(id: String, kind: RunKind, subject: String, modelVersion: Int? = nil) throws {
        inFlight.withLock { _ = $0.insert(id) }
        do { try index.startRun(id: id, kind: kind, subject: subject, modelVersion: modelVersion, owner: owner?.id) } catch {
            inFlight.withLock { _ = $0.remove(id) }
            throw error
        }
    }

    /// Publishes a complete staging folder as `outputs/runs/<name>` and indexes it from its manifest.
    /// A failure before the rename fails the run and removes its staging; a failure after it (the index
    /// is locked or the disk full) never does: the published run is completed from its manifest by the
    /// next reconciliation (`reconcilePublished`, at the next start, resume or `dropline recover`), so no
    /// published folder is left without its rows.
    func publishAndIndex(_ manifest: RunManifest, staging: String, name: String, faults: (published: String, indexed: String)) throws {
        try Self.writeManifest(manifest, to: staging)
        try root.publish(staging: staging, as: root.runs + "/" + name)
        FaultInjection.point(faults.published)
        do {
            try complete(manifest: manifest, folder: root.runs + "/" + name)
        } catch {
            throw PublishedNotIndexed(run: manifest.runId, folder: "outputs/runs/" + name, cause: "\(error)")
        }
        FaultInjection.point(faults.indexed)
    }

    /// Runs a pipeline's body for run `id`: on an error, the run is failed and its staging removed,
    /// unless its folder was already published (then it stays for reconciliation). Ends in flight either way.
    func guarded<T>(run id: String, staging: String, _ body: () throws -> T) throws -> T {
        defer { inFlight.withLock { _ = $0.remove(id) } }
        do { return try body() } catch let published as PublishedNotIndexed {
            logger.error("\(published)", metadata: ["run": "\(id)"])
            throw published
        } catch {
            try? index.failRun(id: id, error: "\(error)")
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// A name safe as one path component.
    static func safe(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    static func writeManifest(_ manifest: RunManifest, to folder: String) throws {
        try SnakeCaseJSON.write(manifest, to: folder + "/manifest.json")
    }

    /// The drift decision of a published serve run folder.
    static func readDriftReport(run folder: String) throws -> DriftReport {
        try SnakeCaseJSON.read(DriftReport.self, from: folder + "/monitoring/drift.json")
    }

    static func readManifest(_ folder: String) throws -> RunManifest {
        try SnakeCaseJSON.read(RunManifest.self, from: folder + "/manifest.json")
    }
}

/// A log handler that passes each message, alone, to a function: for people reading a terminal
/// (the CLI's notes, the study's progress lines), where time stamps and metadata are noise.
public struct MessageLogHandler: LogHandler {
    let write: @Sendable (String) -> Void
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info

    public init(_ write: @escaping @Sendable (String) -> Void) { self.write = write }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) { write(event.message.description) }
}
