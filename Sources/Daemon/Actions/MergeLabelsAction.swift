import Store
import Foundation
import Pipeline

/// `merge_labels`: ground truth for a served batch merged into the index (`GroundTruth`), which may
/// raise a quality flag. Idempotent: merging the same labels again replaces the same rows.
struct MergeLabelsAction: DaemonAction {
    /// The labels file's path relative to inbox/.
    let file: String

    func perform(_ context: inout ActionContext) throws -> String {
        let result = try GroundTruth(context.pipelines).merge(labels: context.root.inbox + "/" + file)
        return String(format: "merged labels %@: %d labelled image(s) of batch %@, accuracy %.4f%@", file, result.labelled, result.batch, result.accuracy,
                      result.belowConstraint ? String(format: " below the constraint %.4f: quality flag raised", result.constraintAccuracy) : "")
    }
}
