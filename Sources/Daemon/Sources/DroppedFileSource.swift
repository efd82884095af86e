import Logging
import DroplineSupport
import FolderWatch
import Rules
import Store
import SystemFiles
import Hashing

/// Files people and programs drop as requests: flags (`flags/<kind>/*.json`, flag_created) and
/// labels (`inbox/labels/*.csv`, labels_landed). Each dropped file is one request, handled once; the
/// same content dropped again later is a new request. Unchanged files are not read again. Only regular files with safe names are read (links, FIFOs and the like are
/// refused with their reason, never opened).
struct DroppedFileSource: EventSource {
    /// The folder watched.
    let folder: String
    /// The prefix of the job paths, relative to the root or inbox (`flags/drift`, `labels`).
    let prefix: String
    let event: JobEvent
    /// The file-name suffix that counts (`.json`, `.csv`).
    let suffix: String
    let scanner = InboxScanner()
    /// Files already offered, by job path, with the stamp they had.
    var offered: [String: FileStamp] = [:]

    /// The largest flag or labels file read (a flag is a small JSON object; labels a CSV of names).
    static let maximumBytes = 16 << 20

    /// The flag folders the daemon acts on.
    static let flagKinds: [FlagKind] = [.drift, .retrain, .quality, .dataQuality]

    static func flags(_ root: DroplineRoot) -> [DroppedFileSource] {
        flagKinds.map { DroppedFileSource(folder: root.flags($0.rawValue), prefix: "flags/" + $0.rawValue, event: .flagCreated, suffix: ".json") }
    }

    /// Labels files (`inbox/labels/<batch>.csv`) become labels_landed jobs as soon as they appear:
    /// write them under a temporary name (`*.part`, `*.tmp`) and rename. A partial file fails with the
    /// reason in its job, and the complete file is new content, so a new job.
    static func labels(_ root: DroplineRoot) -> DroppedFileSource {
        DroppedFileSource(folder: root.labelsInbox, prefix: "labels", event: .labelsLanded, suffix: ".csv")
    }

    mutating func collect(now: Double, rules: RuleSet, queue: EventQueue) throws {
        let root = queue.root
        var refused: [(String, String)] = []
        for name in FileSystem.names(in: folder) where name.lowercased().hasSuffix(suffix) && !scanner.ignored(name) {
            let path = folder + "/" + name, relative = prefix + "/" + name
            // a safe name, or safe names joined by `~` (a batch's path: `stage-2~b1`)
            let stem = String(name.dropLast(suffix.count))
            if let problem = stem.split(separator: "~", omittingEmptySubsequences: false).lazy.compactMap({ SafeName.problem(String($0), what: "file name") }).first {
                refused.append((root.relative(path), "\(problem); \(SafeName.remedy)"))
                continue
            }
            guard let type = FileSystem.entryType(path) else { continue }
            guard type == .regular else {
                refused.append((root.relative(path), NotRegularFile(path: path, type: type).reason))
                continue
            }
            guard let stamp = FileStamp(regularFile: path), offered[relative] != stamp else { continue }
            let data: [UInt8]
            do { data = try AtomicFile.read(path, limit: Self.maximumBytes, links: .refuse) } catch {
                refused.append((root.relative(path), "cannot be read: \(error)"))
                continue
            }
            // A dropped file is a request: the same file seen again (a restart, a rescan) is the same
            // request, but a file dropped again later, even with the same content, is a new one. So the
            // queue's key is the content together with the file's identity (inode, change time).
            let request = SHA256.hash(Array((SHA256.hash(data) + " " + (FileSystem.identity(path) ?? "")).utf8))
            try queue.offer(event, path: relative, contentSha256: request, what: "\(event == .flagCreated ? "flag" : "labels") \(relative) found")
            offered[relative] = stamp  // only once it is in the queue (a locked index: offered again next time)
        }
        try queue.report(refused, area: prefix + "/")
    }

    /// Flag files not handled yet (still in their folder), as `flags/<kind>/<name>.json`, sorted per kind.
    static func pendingFlags(in root: DroplineRoot) -> [String] {
        flagKinds.flatMap { kind in
            FileSystem.names(in: root.flags(kind.rawValue)).filter { $0.hasSuffix(".json") }.map { "flags/\(kind.rawValue)/\($0)" }
        }
    }
}
