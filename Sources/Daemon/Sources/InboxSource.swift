import Logging
import DroplineSupport
import FolderWatch
import Rules
import Store
import Hashing
import SystemFiles

/// Production batches: scans of `inbox/production/` fed to the batch tracker, which decides when a
/// batch is complete (its marker, or the settle period: `BatchTracker`); each complete content is
/// offered once as batch_landed with its content hash.
struct InboxSource: EventSource {
    let scanner: InboxScanner
    var tracker: BatchTracker

    init(marker: String, settleSeconds: Double) {
        scanner = InboxScanner(marker: marker)
        tracker = BatchTracker(settleSeconds: settleSeconds)
    }

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        let root = queue.root
        let scan = scanner.scan(root.productionInbox)
        try queue.report(scan.refused.map { ("inbox/production/" + $0.path, $0.reason) }, area: "inbox/production/")
        for ready in tracker.update(scan.batches, now: now) {
            guard let snapshot = scan.batches[ready.name] else { continue }
            let folder = root.productionInbox + "/" + ready.name
            let hash: String
            do { hash = try Self.contentHash(folder: folder, snapshot: snapshot) } catch {
                queue.log.warning("cannot read batch \(ready.name) yet (\(error)); will look again")
                continue
            }
            tracker.markHandled(ready.name, files: snapshot.files)
            let path = "production/" + ready.name
            if try queue.offer(.batchLanded, path: path, contentSha256: hash,
                               what: "batch \(path) landed (\(ready.completion.rawValue), \(ready.files) file(s))") == nil {
                queue.log.info("batch \(path) with this content is already in the job queue (queued, done or failed); not queuing it again (to rerun it: `dropline infer \(root.path) \(folder)`; failed jobs: `dropline watch --retry-failed`)")
            }
        }
    }

    func nextDeadline(now: Double) -> Double? { tracker.nextDeadline(now: now).map { now + $0 } }

    /// SHA-256 over the batch's "hash  relative path" lines; a link or special file is never
    /// opened: its line says what it is instead.
    static func contentHash(folder: String, snapshot: BatchSnapshot) throws -> String {
        var listing = ""
        for file in snapshot.files.keys.sorted() {
            if let special = snapshot.special[file] {
                listing += "\(SHA256.hash(Array(special.utf8)))  \(file) (special)\n"
            } else {
                listing += "\(try SHA256.hash(file: folder + "/" + file, links: .refuse))  \(file)\n"
            }
        }
        return SHA256.hash(Array(listing.utf8))
    }
}
