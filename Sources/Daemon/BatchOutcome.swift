import DroplineSupport
import Foundation
import JSONFiles
import Modeling
import Pipeline
import Store
import SystemFiles

/// What became of a production batch, for the producer who dropped it: written atomically to
/// `<root>/outcomes/<path under inbox>.json` (`outcomes/production/<stage>/<batch>.json`) each time a
/// job of the batch ends, so that a producer on another machine can read it from the share. It is
/// outside the batch folder on purpose: a file inside would change the batch's content.
struct BatchOutcome: Codable, Sendable {
    /// `served`, `not_served` (no rule served it, or its content moved on before its job ran), `failed`,
    /// or `waiting` (complete, but a file cannot be read yet: not queued).
    var outcome: String
    /// The batch's path under inbox/.
    var batch: String
    var contentSha256: String?
    var job: Int64?
    var finishedAt: String
    /// What the rules did (the job's detail).
    var detail: String
    /// For a failed job: what to do.
    var remedy: String?
    var run: Run?

    struct Run: Codable, Sendable {
        var id: String
        var folder: String
        var modelVersion: Int
        var drift: Bool?
        var driftReason: String?
        var images: Int
        var refused: [Refused]
    }

    /// A file of the batch that was not used, and why (its path relative to the root).
    struct Refused: Codable, Sendable {
        var path: String
        var outcome: String
        var reason: String
    }

    static func file(_ root: DroplineRoot, batch: String) -> String { root.path + "/outcomes/" + batch + ".json" }

    /// A complete batch that is not queued yet because a file cannot be read; `reason` says which and why.
    static func writeWaiting(root: DroplineRoot, batch: String, reason: String) throws {
        try BatchOutcome(outcome: "waiting", batch: batch, contentSha256: nil, job: nil, finishedAt: ISOTime.now(), detail: reason,
                              remedy: "make the file readable by the daemon (or remove it); the batch is queued at the next scan after that", run: nil)
            .save(root: root)
    }

    /// Writes the file, creating its folders one by one: each must be a real folder (a link planted in
    /// `outcomes/` on the share is refused, never followed out of the root).
    func save(root: DroplineRoot) throws {
        _ = try RealFolders.make(under: root.path, ["outcomes"] + batch.split(separator: "/").dropLast().map(String.init))
        try SnakeCaseJSON.write(self, to: Self.file(root, batch: batch))
    }

    /// The outcome of a batch job that ended with `state` and `detail`.
    static func write(root: DroplineRoot, index: any DroplineIndex, job: Job, state: JobState, detail: String) throws {
        var run: Run?
        if let id = try index.servedRun(batchPath: "inbox/" + job.path, since: job.startedAt ?? job.createdAt), let served = try index.servedRun(id: id) {
            let processing = try? ComponentManifest.read(from: root.path + "/" + served.folder + "/processing")
            run = Run(id: id, folder: served.folder, modelVersion: served.modelVersion, drift: served.drift, driftReason: served.driftReason,
                      images: processing?.inputs.first?.files ?? 0,
                      refused: (processing?.rejected ?? []).map { Refused(path: root.relative($0.path), outcome: $0.outcome, reason: $0.reason) })
        }
        let outcome = state == .failed ? "failed" : (run == nil ? "not_served" : "served")
        let record = BatchOutcome(outcome: outcome, batch: job.path, contentSha256: job.contentSha256, job: job.id, finishedAt: ISOTime.now(), detail: detail,
                                  remedy: state == .failed ? "fix the cause named in detail, then `dropline watch \(root.path) --retry-failed` runs the job again" : nil,
                                  run: run)
        try record.save(root: root)
    }
}
