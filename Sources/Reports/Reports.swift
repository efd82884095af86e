import Charts
import DroplineSupport
import Foundation
import JSONFiles
public import Store
import SystemFiles

/// The pages people look at and the metrics file operators scrape, all derived from the run folders
/// and the index (docs/reports.md):
///
/// - `report.html` in each run folder: the serve run's drift verdict, tests, distributions, class
///   mix, confidences, explanations and refusals; the training run's curves, per-class quality,
///   confusion matrix, promotion decision and sample explanations;
/// - `outputs/dashboard.html`: every batch's drift over time against its threshold, accuracy from
///   ground truth against the constraint, trainings and promotions on the same axis, the champion
///   timeline, the queue, the daemon and recent failures;
/// - `outputs/metrics/dropline.prom`: the Prometheus text format, for node_exporter's textfile collector.
///
/// A run page is the one file of a run folder written after publication: it is a view (it shows a
/// promotion decided later, or ground truth merged later), regenerated whenever what it shows
/// changed, never an input to anything. Every file is written to a temporary name and renamed, so
/// a reader (a browser on the share, the textfile collector) sees a whole old or a whole new page,
/// and two processes refreshing at once leave one whole page.
public struct Reports: Sendable {
    public let root: DroplineRoot
    public let index: Index
    /// Reads the files of a run folder; the pages of runs of another machine (a shared index) are
    /// still made from what the folders hold.
    public init(root: DroplineRoot, index: Index) {
        self.root = root
        self.index = index
    }

    public static let pageFile = "report.html"
    public var dashboard: String { root.outputs + "/dashboard.html" }
    public var metricsFile: String { root.outputs + "/metrics/dropline.prom" }

    /// What a refresh wrote, and the pages it could not make.
    public struct Outcome: Sendable {
        public var pages: [String] = []
        public var failures: [(run: String, error: String)] = []
        public var dashboard: String = ""
        public var metrics: String = ""
    }

    /// Rewrites the pages of `runs` (every succeeded run with `all`), the pages of the newest
    /// `recent` runs that are missing or older than what they show, then the dashboard and the
    /// metrics file. A page that cannot be made is reported and the others are still written.
    @discardableResult
    public func refresh(runs forced: [String] = [], all: Bool = false, recent: Int = 50,
                        progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> Outcome {
        var outcome = Outcome()
        var chosen: [RunRecord] = []
        var seen = Set<String>()
        for id in forced {
            guard let run = try index.run(id) else { throw ReportError("no run \(id) in the index; `dropline runs <root>` lists them") }
            guard run.status == .succeeded, run.folder != nil else { throw ReportError("run \(id) \(run.status.rawValue == "running" ? "is still running" : "failed"); only published runs have a page") }
            chosen.append(run)
            seen.insert(id)
        }
        let candidates = all ? try index.runs(limit: Int.max) : try index.runs(limit: recent)
        for run in candidates where run.status == .succeeded && run.folder != nil && !seen.contains(run.id) {
            if try all || isStale(run) { chosen.append(run); seen.insert(run.id) }
        }
        for (n, run) in chosen.enumerated() {
            do {
                outcome.pages.append(try writePage(run))
            } catch {
                outcome.failures.append((run.id, "\(error)"))
            }
            progress?(n + 1, chosen.count)
        }
        try AtomicFile.write(Array(try DashboardPage(reports: self).render().utf8), to: dashboard)
        outcome.dashboard = dashboard
        try FileManager.default.createDirectory(atPath: root.outputs + "/metrics", withIntermediateDirectories: true)
        try AtomicFile.write(Array(try MetricsFile(reports: self).render().utf8), to: metricsFile)
        outcome.metrics = metricsFile
        return outcome
    }

    /// Writes one run's page; returns its path.
    @discardableResult
    public func writePage(_ run: RunRecord) throws -> String {
        guard let folder = run.folder else { throw ReportError("run \(run.id) has no folder") }
        let html = run.kind == .serve ? try ServePage(reports: self, run: run, folder: root.path + "/" + folder).render()
            : try TrainPage(reports: self, run: run, folder: root.path + "/" + folder).render()
        let path = root.path + "/" + folder + "/" + Self.pageFile
        try AtomicFile.write(Array(html.utf8), to: path)
        return path
    }

    /// A page is stale when it is missing or older than the newest record it shows.
    func isStale(_ run: RunRecord) throws -> Bool {
        guard let folder = run.folder else { return false }
        guard let written = FileSystem.modificationTime(root.path + "/" + folder + "/" + Self.pageFile) else { return true }
        guard let changed = try index.lastChange(run: run.id).flatMap(ISOTime.parse) else { return false }
        return written < changed.timeIntervalSince1970
    }

    /// A path under the root as shown on pages.
    func shown(_ path: String) -> String { root.relative(path) }
}

public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Seconds since 1970 of an index time (ISO 8601 UTC).
func seconds(_ iso: String) -> Double? { ISOTime.parse(iso)?.timeIntervalSince1970 }

func percent(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f%%", v * 100) }
func number(_ v: Double) -> String {
    if v == 0 { return "0" }
    return abs(v) < 1e-3 || abs(v) >= 1e5 ? String(format: "%.3g", v) : String(format: "%.4g", v)
}
