import Logging
import Rules
import Store

/// The model registry: every model version (trained by a rule or by `dropline train`) raises
/// model_trained once, keyed by its content hash, after its promotion decision: while a job that
/// trains is running (`busy`), new versions wait, so that the event's `model.state` is what the
/// job's own promote action decided (rules/README.md), also with `--jobs 2`.
struct ModelSource: EventSource {
    /// Model folders already offered.
    var offered: Set<String> = []
    var busy: @Sendable () -> Bool = { false }

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        guard !busy() else { return }
        for model in try queue.index.models() where offered.insert(model.folder).inserted {
            try queue.offer(.modelTrained, path: model.folder, contentSha256: model.contentSha256, what: "model \(model.folder) is new")
        }
    }
}
