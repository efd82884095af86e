import Store
import Pipeline

/// `promote`: the model the rule just trained (or the newest candidate) becomes champion if the
/// policy allows (`PromotionPolicy`; `always`, `never`). Idempotent: promoting the champion again
/// is a no-op that says so.
struct PromoteAction: DaemonAction {
    let policy: String

    func perform(_ context: inout ActionContext) throws -> String {
        guard let version = try context.trained ?? context.pipelines.index.newestCandidate() else { return "nothing to promote: no new candidate" }
        return try context.pipelines.promote(version: version, policy: policy, actor: "rules")
    }
}
