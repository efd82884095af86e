import DriftStatistics
import DroplineSupport
import Explainability
import Foundation
public import Logging
import Imaging
public import Modeling
import Monitoring
public import Store
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

    public struct Baseline: Codable, Sendable {
        public var version: Int
        public var accuracy: Double
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
