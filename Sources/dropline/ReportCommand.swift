import ArgumentParser
import DroplineSupport
import Foundation
import Reports
import Store

/// After a command changed what the pages show (a run published, a promotion, ground truth): the
/// stale run pages, the dashboard and the metrics file, as the daemon does after every job. A
/// failure is a warning: the command's own work is done, and the next refresh writes them.
enum RootReports {
    static func refresh(_ index: Index, _ root: DroplineRoot) {
        do {
            let outcome = try Reports(root: root, index: index).refresh()
            for failure in outcome.failures { Console.note("warning: the page of run \(failure.run) could not be made: \(failure.error)") }
        } catch {
            Console.note("warning: the dashboard or metrics file of \(root.path) could not be written (\(error)); `dropline report \(root.path)` writes them")
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the run pages, the dashboard and the metrics file of a root again.",
        discussion: """
        Each published run has a page, report.html in its run folder; the root has outputs/dashboard.html and \
        outputs/metrics/dropline.prom (Prometheus text format, for node_exporter's textfile collector). The daemon \
        and the pipeline commands keep them current; this command rewrites them: every run's page (or only \
        <run>'s), then the dashboard and the metrics file. Every page is self-contained (inline CSS, SVG and \
        images) and written to a temporary name and renamed. See docs/reports.md.
        """
    )
    @Argument(help: "A Dropline root.") var root: String
    @Argument(help: "A run id (`dropline runs <root>` lists them); without it, every run.") var runID: String?
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable {
        var pages: [String]
        var failures: [Failure]
        var dashboard: String
        var metrics: String
        struct Failure: Encodable { var run: String; var error: String }
    }

    func run() throws {
        let dropline = try DroplineRoot(existing: root)
        let (index, _) = try RootIndex.reading(dropline)
        let reports = Reports(root: dropline, index: index)
        let progress = json ? nil : TerminalProgress("pages", total: nil, unit: "pages")
        let outcome = try reports.refresh(runs: runID.map { [$0] } ?? [], all: runID == nil) { _, _ in progress?.advance() }
        progress?.finish()
        let output = Output(pages: outcome.pages, failures: outcome.failures.map { .init(run: $0.run, error: $0.error) },
                            dashboard: outcome.dashboard, metrics: outcome.metrics)
        if json { return try JSONOutput.print(output) }
        for p in outcome.pages { print("page:      \(p)") }
        for f in outcome.failures { print("FAILED:    run \(f.run): \(f.error)") }
        print("dashboard: \(outcome.dashboard)")
        print("metrics:   \(outcome.metrics)")
        if !outcome.failures.isEmpty { throw ExitCode(1) }
    }
}
