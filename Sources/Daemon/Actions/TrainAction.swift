import Store
import Pipeline

/// `train`: the training pipeline on `inbox/training/<stage>` (the stage is a checked name, and the
/// folder must lie inside the training inbox: `Pipelines.train`). Idempotent across restarts: a
/// training of the same stage that succeeded since the job's first attempt counts as done.
struct TrainAction: DaemonAction {
    let stage: String

    func perform(_ context: inout ActionContext) throws -> String {
        if let since = context.since, let (run, version) = try context.pipelines.index.trainedRun(stage: stage, since: since) {
            context.trained = version
            return "trained stage \(stage): already done by run \(run) (model version \(version)) before the restart"
        }
        let (run, version) = try context.pipelines.train(stage: stage, configuration: context.training)
        context.trained = version
        return "trained stage \(stage): run \(run), model version \(version)"
    }
}
