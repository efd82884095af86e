import Store
import DroplineSupport
import Pipeline
import SystemFiles

/// `infer`: the batch-inference pipeline on the event's batch. Idempotent across restarts: a batch
/// served since the job's first attempt is not served again (its missing drift flag is raised).
struct InferAction: DaemonAction {
    /// The batch's path relative to inbox/.
    let batch: String

    func perform(_ context: inout ActionContext) throws -> String {
        let root = context.root, pipelines = context.pipelines
        if let since = context.since, let run = try pipelines.index.servedRun(batchPath: "inbox/" + batch, since: since) {
            let raised = try pipelines.raiseMissingDriftFlag(run: run), quality = try pipelines.raiseMissingDataQualityFlag(run: run)
            return "inferred \(batch): already done by run \(run) before the restart" + (raised ? "; its drift flag, not written then, raised now" : "")
                + (quality ? "; its data-quality flag, not written then, raised now" : "")
        }
        // the path was built from names the scanner checked; it must still be a real folder inside
        // the production inbox now (a producer may have swapped it for a link since)
        let folder = root.inbox + "/" + batch
        guard FileSystem.isRealDirectory(folder), FileSystem.isInside(folder, root.productionInbox) else {
            throw DaemonError("\(DisplayText.escaped(batch)) is no longer a folder inside inbox/production/ (it was removed or replaced by a link); not served")
        }
        let run: String, drift: Bool
        do {
            // the job of this batch's landing carries the content it was queued for
            let queued = context.job.event == .batchLanded && context.job.path == batch
                ? QueuedBatch(contentSha256: context.job.contentSha256, marker: context.marker) : nil
            if let slurm = context.slurm {
                (run, drift) = try slurm.infer(pipelines, job: context.job, batch: folder, queued: queued)
            } else {
                (run, drift) = try pipelines.infer(batch: folder, queued: queued)
            }
        } catch let superseded as BatchSuperseded {
            return "not served: \(superseded)"
        }
        let violations = try pipelines.index.qualityCheck(run: run)?.violations.count ?? 0
        return "inferred \(batch): run \(run), \(drift ? "drift: flag raised" : "no drift")"
            + (violations > 0 ? ", \(violations) data-quality violation(s): flag raised" : "")
    }
}
