import DroplineSupport
import FolderWatch
import Foundation
import Logging
import Rules
import Store
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// The rules' `retention:` (`Retention`): handled production batches are archived or deleted
/// `after_days` after their job ended, so the inbox, and every poll of it, stays small. Looked at
/// hourly (and at the first look after start). Only batches the scanner holds as settled (handled,
/// and unchanged since) whose latest job succeeded or was skipped are touched; a failed one waits for
/// the user. Each move is one rename inside the root, recorded as an event in the index.
struct RetentionSweep {
    static let periodSeconds = 3600.0
    var last: Double?

    mutating func sweepIfDue(now: Double, retention: Retention?, root: DroplineRoot, index: any DroplineIndex, inbox: inout InboxSource, log: Logger) throws {
        guard let retention else { return }
        if let last, now - last < Self.periodSeconds { return }
        last = now
        let cutoff = Date(timeIntervalSince1970: now - retention.afterDays * 86400)
        for name in inbox.scanner.settledBatches.sorted() {
            guard let job = try index.latestJob(path: "production/" + name), job.event == .batchLanded,
                  job.state == .succeeded || job.state == .skipped,
                  let finished = job.finishedAt.flatMap(ISOTime.parse), finished <= cutoff else { continue }
            let folder = root.productionInbox + "/" + name
            // built from names the scanner checked; it must still be a real folder inside the inbox
            guard FileSystem.isRealDirectory(folder), FileSystem.isInside(folder, root.productionInbox) else { continue }
            do { try apply(retention, name: name, folder: folder, job: job, root: root, index: index, log: log) } catch {
                // the batch stays; the daemon goes on (a link planted as archive/ must not stop it)
                log.error("retention: could not \(retention.action.rawValue) handled batch production/\(DisplayText.escaped(name)): \(error); it stays in the inbox (tried again at the next hourly sweep)")
                if Trouble.transient(error) != nil { throw error }
                continue
            }
            inbox.scanner.unsettle(name)
        }
    }

    func apply(_ retention: Retention, name: String, folder: String, job: Job, root: DroplineRoot, index: any DroplineIndex, log: Logger) throws {
        switch retention.action {
        case .archive:
            let parts = ["archive", "production"] + name.split(separator: "/").dropLast().map(String.init)
            let parent = try RealFolders.make(under: root.path, parts)
            let base = parent + "/" + (name.split(separator: "/").last.map(String.init) ?? name)
            var destination = base, n = 1
            while FileSystem.entryType(destination) != nil {
                n += 1
                destination = base + "~\(n)"
            }
            try Syscall.retrying("rename", path: folder) { rename(folder, destination) }
            try index.event(kind: "batch_archived", subject: "inbox/production/" + name, detail: root.relative(destination))
            log.info("archived handled batch production/\(DisplayText.escaped(name)) to \(root.relative(destination)) (retention: \(retention.afterDays) day(s) after job \(job.id))")
        case .delete:
            try FileManager.default.removeItem(atPath: folder)
            try index.event(kind: "batch_deleted", subject: "inbox/production/" + name, detail: "job \(job.id)")
            log.info("deleted handled batch production/\(DisplayText.escaped(name)) (retention: \(retention.afterDays) day(s) after job \(job.id))")
        }
    }
}

/// Folders the daemon creates inside the root on the share (outcomes, the archive): made one by one,
/// and each must be a real folder, so a link planted there is refused, never followed out of the root.
enum RealFolders {
    /// Makes `root/parts[0]/parts[1]/...`; returns its path.
    static func make(under root: String, _ parts: [String]) throws -> String {
        var folder = root
        for part in parts {
            folder += "/" + part
            if FileSystem.entryType(folder) == nil { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false) }
            guard FileSystem.isRealDirectory(folder) else {
                throw DaemonError("\(folder) is not a real folder (a link or a special file); Dropline writes only into real folders: remove it")
            }
        }
        return folder
    }
}
