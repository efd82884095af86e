import Logging
import DroplineSupport
import FolderWatch
import Rules
import Store
import Hashing
import Modeling
import Pipeline
import SystemFiles

/// Production batches: scans of `inbox/production/` fed to the batch tracker, which decides when a
/// batch is complete (its marker, or the settle period: `BatchTracker`); each complete content is
/// offered once as batch_landed with its content hash.
struct InboxSource: EventSource {
    var scanner: IncrementalScanner
    var tracker: BatchTracker
    /// The reason written to each waiting batch's outcome file (rewritten only when it changes).
    var waiting: [String: String] = [:]

    init(marker: String, settleSeconds: Double, fullRescanSeconds: Double = IncrementalScanner.defaultFullRescanSeconds,
         trustSeconds: Double = IncrementalScanner.localTrustSeconds) {
        scanner = IncrementalScanner(scanner: InboxScanner(marker: marker), fullRescanSeconds: fullRescanSeconds, trustSeconds: trustSeconds)
        tracker = BatchTracker(settleSeconds: settleSeconds)
    }

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        let root = queue.root
        let scan = scanner.scan(root.productionInbox, now: now)
        try queue.report(scan.refused.map { ("inbox/production/" + $0.path, $0.reason) }, area: "inbox/production/")
        var unreadable: [(path: String, reason: String)] = []
        for ready in tracker.update(scan.batches, now: now) {
            guard let snapshot = scan.batches[ready.name] else { continue }
            let folder = root.productionInbox + "/" + ready.name
            let hash: String
            do { hash = try Self.contentHash(folder: folder, snapshot: snapshot) } catch {
                // a file that cannot be read (permissions, an I/O error on a share) keeps the batch
                // waiting, with the reason in `status`; it is tried again at every scan until it can be read
                unreadable.append(("inbox/production/" + ready.name, "cannot be read yet, so it is not queued (tried again at every scan): \(error)"))
                tracker.reopen(ready.name)
                continue
            }
            let path = "production/" + ready.name
            let offered: Job?
            do {
                offered = try queue.offer(.batchLanded, path: path, contentSha256: hash,
                                          what: "batch \(path) landed (\(ready.completion.rawValue), \(ready.files) file(s))")
            } catch {
                tracker.reopen(ready.name)  // not queued (the index is locked, the disk full): offered again next time
                throw error
            }
            tracker.markHandled(ready.name, files: snapshot.files)
            scanner.settle(ready.name, folder: folder, snapshot: snapshot, now: now)
            if offered == nil {
                queue.log.info("batch \(path) with this content is already in the job queue (queued, done or failed); not queuing it again (to rerun it: `dropline infer \(root.path) \(folder)`; failed jobs: `dropline watch --retry-failed`)")
            }
        }
        try queue.report(unreadable, area: "unreadable")
        for (path, reason) in unreadable where waiting[path] != reason {
            let batch = String(path.dropFirst("inbox/".count))
            do { try BatchOutcome.writeWaiting(root: root, batch: batch, reason: reason) } catch {
                queue.log.warning("could not write the outcome of \(batch) for its producer: \(error)")
            }
        }
        waiting = Dictionary(unreadable, uniquingKeysWith: { a, _ in a })
    }

    func nextDeadline(now: Double) -> Double? { tracker.nextDeadline(now: now).map { now + $0 } }

    /// The batch's content hash: `FrozenBatch`'s, over the files this scan counted (the serve run
    /// freezes the same listing and compares).
    static func contentHash(folder: String, snapshot: BatchSnapshot) throws -> String {
        try FrozenBatch.capture(folder: folder, snapshot: snapshot).contentSha256
    }
}
