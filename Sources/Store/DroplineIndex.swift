/// The index of a Dropline root, as the rest of Dropline uses it: methods grouped by concern (runs,
/// serving, registry, flags, jobs and the daemon, refusals), values in and out, no SQL and no
/// database types. `Index` (SQLite through GRDB) is the implementation for one machine; a second
/// backend (PostgreSQL, for several daemons) implements the same protocol and must pass the same
/// tests. Every method that changes more than one row is one transaction in the backend.
public protocol DroplineIndex: AnyObject, Sendable {
    // MARK: Runs
    func startRun(id: String, kind: RunKind, subject: String, batchID: Int64?, modelVersion: Int?, inputs: [RunInput], owner: String?) throws
    @discardableResult func reopenRun(id: String, kind: RunKind, subject: String, modelVersion: Int?, startedAt: String, owner: String?) throws -> Bool
    func finishRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput]) throws
    func failRun(id: String, error: String) throws
    func interruptedRuns() throws -> [RunRecord]
    func runs(limit: Int) throws -> [RunRecord]
    func run(_ id: String) throws -> RunRecord?
    func outputs(of run: String) throws -> [String: String]
    func event(kind: String, subject: String?, detail: String?) throws

    // MARK: Serving
    func completeTrainRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput], model: NewModel,
                          decide: ((PromotionQuestion) throws -> PromotionAnswer)?) throws
    func completeServeRun(id: String, folder: String, outputs: [String: String], inputs: [RunInput], rows: ServeRows) throws
    func servedRun(id: String) throws -> ServedRun?
    func latestServedRun(subject: String) throws -> ServedRun?
    func latestServedRun(batchPath: String) throws -> ServedRun?
    func servedBatchPaths(subject: String) throws -> [String]
    func servedRun(batchPath: String, since: String) throws -> String?
    func trainedRun(stage: String, since: String) throws -> (run: String, version: Int)?
    func driftStreak() throws -> Int
    func predictions(run: String) throws -> [PredictionRecord]
    func driftSummary(run: String) throws -> DriftSummary?
    func qualityCheck(run: String) throws -> ServeRows.QualityCheck?
    func recordQuality(_ rows: QualityRows, flag: (path: String, subject: String)?, beforeCommit: () throws -> Void) throws

    // MARK: Registry
    func models() throws -> [ModelRecord]
    func model(version: Int) throws -> ModelRecord?
    func model(folder: String) throws -> ModelRecord?
    func champion() throws -> ModelRecord?
    func highestModelVersion() throws -> Int
    func newestCandidate() throws -> Int?
    func history(version: Int?) throws -> [PromotionRecord]
    func champion(at time: String) throws -> PromotionRecord?
    func promotionReason(version: Int) throws -> String?
    func promote(version: Int, actor: String, decide: (PromotionQuestion) throws -> PromotionAnswer) throws -> PromotionAnswer?
    func promoteByHand(version: Int, reason: String, actor: String) throws
    @discardableResult func rollback(reason: String, actor: String) throws -> Int

    // MARK: Flags
    func recordFlag(kind: FlagKind, path: String, subject: String) throws
    func flagCount(kind: FlagKind, path: String, since: String) throws -> Int
    func handleFlag(kind: FlagKind, path: String, subject: String, createdAt: String, outcome: String) throws
    func flags(limit: Int) throws -> [FlagRecord]

    // MARK: Jobs and the daemon
    @discardableResult func enqueue(event: JobEvent, path: String, contentSha256: String, force: Bool) throws -> Job?
    func claimNextJob(owner: String?, leaseSeconds: Double) throws -> Job?
    @discardableResult func renewJobLeases(owner: String, leaseSeconds: Double) throws -> Int
    func listenForJobs(_ wake: @escaping @Sendable () -> Void) throws -> PostgresListener?
    /// Whether several daemons may share this index (PostgreSQL), instead of one per root.
    var isShared: Bool { get }
    func finishJob(_ id: Int64, state: JobState, detail: String) throws
    @discardableResult func requeueInterruptedJobs(isGone: (String?) -> Bool) throws -> Int
    func requeueJob(_ id: Int64, detail: String) throws
    func requeueFailedJobs() throws -> Int
    func jobs(states: [JobState]?, limit: Int) throws -> [Job]
    func latestJob(path: String) throws -> Job?
    func jobProgress(path: String) throws -> (ended: Int, busy: Int)
    func lastFiredOutcome(path: String) throws -> String?
    func recordFiring(job: Int64, rule: String, fired: Bool, reason: String, actions: [String], outcome: String?) throws
    func firings(job: Int64) throws -> [RuleFiring]
    func recordClusterJob(_ job: ClusterJob) throws
    func updateClusterJob(_ id: String, state: String, detail: String?) throws
    func clusterJobs(job: Int64) throws -> [ClusterJob]
    func recentClusterJobs(limit: Int) throws -> [ClusterJob]
    func daemonState() throws -> DaemonState?
    func daemonHeartbeat(pid: Int32, mode: String, state: DaemonState.State, startedAt: String, rulesFile: String, rulesError: String?) throws

    // MARK: Refusals
    @discardableResult func recordRefusal(path: String, reason: String) throws -> Bool
    func refusals(limit: Int) throws -> [Refusal]
}

/// The defaults of the protocol's parameters (a protocol requirement cannot declare them).
extension DroplineIndex {
    public func startRun(id: String, kind: RunKind, subject: String, batchID: Int64? = nil, modelVersion: Int? = nil, owner: String? = nil) throws {
        try startRun(id: id, kind: kind, subject: subject, batchID: batchID, modelVersion: modelVersion, inputs: [], owner: owner)
    }
    public func claimNextJob() throws -> Job? { try claimNextJob(owner: nil) }
    public func claimNextJob(owner: String?) throws -> Job? { try claimNextJob(owner: owner, leaseSeconds: Index.defaultJobLeaseSeconds) }
    public func finishRun(id: String, folder: String, outputs: [String: String]) throws {
        try finishRun(id: id, folder: folder, outputs: outputs, inputs: [])
    }
    public func runs() throws -> [RunRecord] { try runs(limit: 50) }
    public func history() throws -> [PromotionRecord] { try history(version: nil) }
    @discardableResult
    public func enqueue(event: JobEvent, path: String, contentSha256: String) throws -> Job? {
        try enqueue(event: event, path: path, contentSha256: contentSha256, force: false)
    }
    public func jobs(states: [JobState]? = nil) throws -> [Job] { try jobs(states: states, limit: 50) }
    public func jobs(limit: Int) throws -> [Job] { try jobs(states: nil, limit: limit) }
    public func refusals() throws -> [Refusal] { try refusals(limit: 20) }
}

extension Index: DroplineIndex {}
