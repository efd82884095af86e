import Logging
import Modeling
import Pipeline
import Store

/// `train`: the training pipeline on `inbox/training/<stage>` (the stage is a checked name, and the
/// folder must lie inside the training inbox: `Pipelines.train`), with the champion's recipe, the
/// command line's and then the rule's options applied (`Pipelines.retrainingRecipe`). Idempotent
/// across restarts: a training of the same stage that succeeded since the job's first attempt
/// counts as done.
struct TrainAction: DaemonAction {
    let stage: String
    var options = TrainingOverrides()

    func perform(_ context: inout ActionContext) throws -> String {
        if let since = context.since, let (run, version) = try context.pipelines.index.trainedRun(stage: stage, since: since) {
            context.trained = version
            return "trained stage \(stage): already done by run \(run) (model version \(version)) before the restart"
        }
        let recipe = try context.pipelines.retrainingRecipe(fallback: context.training, overrides: [context.overrides, options])
        context.pipelines.logger.info("training stage \(stage) with \(recipe.source): \(recipe.configuration.summary)")
        let (run, version) = try context.slurm.map { try $0.train(context.pipelines, job: context.job, stage: stage, configuration: recipe.configuration) }
            ?? context.pipelines.train(stage: stage, configuration: recipe.configuration)
        context.trained = version
        return "trained stage \(stage) with \(recipe.source) (\(recipe.configuration.summary)): run \(run), model version \(version)"
    }
}
