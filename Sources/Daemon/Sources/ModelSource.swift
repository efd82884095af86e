import Logging
import Rules
import Store

/// The model registry: every model version (trained by a rule or by `dropline train`) raises
/// model_trained once, keyed by its content hash.
struct ModelSource: EventSource {
    /// Model folders already offered.
    var offered: Set<String> = []

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        for model in try queue.index.models() where offered.insert(model.folder).inserted {
            try queue.offer(.modelTrained, path: model.folder, contentSha256: model.contentSha256, what: "model \(model.folder) is new")
        }
    }
}
