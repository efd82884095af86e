import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// Polling that costs what changed. A plain scan lists and stats every file of every batch at every
/// poll: on a share holding months of batches, tens of thousands of network round trips every few
/// seconds. This scanner gives `InboxScanner` the same answers while touching only what may have
/// changed:
///
/// - A folder's listing (the inbox, a stage folder, a batch folder's top level) is reused while the
///   folder's modification time is unchanged: adding, removing or renaming an entry changes it.
/// - A *settled* batch (its content handled: queued, served, or found already done) is not walked
///   again while the modification times of its folders are unchanged; batches still arriving are
///   walked at every scan, since a file growing in place changes no folder's time.
/// - Modification times are trusted only once they have stood still: a folder is looked at again
///   until a look at least `trustSeconds` after its time was first seen has been made. On a local
///   disk that is 2 s, for file systems that keep whole seconds (an entry added in the same second as
///   the last look shows no new time). On a network client it is longer than the client's caches
///   (`networkTrustSeconds`): sshfs and NFS keep a folder's listing and its attributes for up to 20
///   and 60 s, and not in step, so a fresh time can come with a listing older than it; only a listing
///   taken after both caches have turned over is kept.
/// - Every `fullRescanSeconds` everything is listed and walked again, whatever the times say: the
///   truth, for what times cannot show (a file rewritten in place inside a settled batch, an
///   attribute cache that hid a change).
public struct IncrementalScanner: Sendable {
    public let scanner: InboxScanner
    public var fullRescanSeconds: Double
    public static let defaultFullRescanSeconds = 600.0
    /// How long a folder's time must stand still before a look is trusted (see the note above).
    public var trustSeconds: Double
    public static let localTrustSeconds = 2.0
    public static let networkTrustSeconds = 65.0

    /// A folder's modification time, when that value was first seen, and when the cached content was taken.
    struct Seen: Sendable, Equatable {
        var modified: Int64
        var firstSeen: Double
        var takenAt: Double
        func trusted(after seconds: Double) -> Bool { takenAt - firstSeen >= seconds }

        /// The record after a fresh look at `now` found the folder's time `modified`.
        func looked(_ modified: Int64, now: Double) -> Seen {
            Seen(modified: modified, firstSeen: modified == self.modified ? firstSeen : now, takenAt: now)
        }
    }

    struct Listing: Sendable {
        var seen: Seen
        var entries: [(name: String, type: EntryType)]
    }

    struct Settled: Sendable {
        /// The batch's folders (relative; "" is the batch folder) and their records.
        var folders: [String: Seen]
        var snapshot: BatchSnapshot
    }

    var listings: [String: Listing] = [:]
    var settled: [String: Settled] = [:]
    var lastFull: Double?

    /// What the last scan did (for `dropline bench poll` and the tests).
    public struct Cost: Sendable, Equatable {
        public var full = false
        public var listed = 0
        public var listingsReused = 0
        public var walked = 0
        public var walksSkipped = 0
    }
    public private(set) var cost = Cost()

    public init(scanner: InboxScanner, fullRescanSeconds: Double = IncrementalScanner.defaultFullRescanSeconds,
                trustSeconds: Double = IncrementalScanner.localTrustSeconds) {
        self.scanner = scanner
        self.fullRescanSeconds = fullRescanSeconds
        self.trustSeconds = trustSeconds
    }

    /// The trust period for an inbox at `path`: longer on network and FUSE mounts.
    public static func trustSeconds(for path: String) -> Double {
        MountKind.remote(path) == nil ? localTrustSeconds : networkTrustSeconds
    }

    /// Scans `inbox` at time `now` (seconds, monotonic): the same result as `InboxScanner.scan`.
    public mutating func scan(_ inbox: String, now: Double) -> InboxScanner.Scan {
        let full = lastFull.map { now - $0 >= fullRescanSeconds } ?? true
        if full { lastFull = now }
        var cost = Cost(full: full)
        var times: [String: Int64?] = [:]  // one stat per folder per scan
        func modified(_ folder: String) -> Int64? {
            if let known = times[folder] { return known }
            var info = stat()
            let value: Int64? = lstat(folder, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
                ? Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) : nil
            times[folder] = value
            return value
        }
        var listings = self.listings, settled = self.settled
        let trust = trustSeconds
        var listed = Set<String>()
        let scanner = self.scanner
        let result = scanner.scan(inbox, listing: { folder in
            listed.insert(folder)
            let time = modified(folder)
            if !full, let cached = listings[folder], let time, cached.seen.modified == time, cached.seen.trusted(after: trust) {
                cost.listingsReused += 1
                return cached.entries
            }
            // the time is read before the listing: a change in between shows as a new time next scan
            let entries = scanner.children(of: folder)
            cost.listed += 1
            if let time {
                let seen = listings[folder]?.seen.looked(time, now: now) ?? Seen(modified: time, firstSeen: now, takenAt: now)
                listings[folder] = Listing(seen: seen, entries: entries)
            }
            return entries
        }, snapshot: { name, folder in
            if !full, let known = settled[name],
               known.folders.allSatisfy({ relative, seen in seen.trusted(after: trust) && modified(Self.join(folder, relative)) == seen.modified }) {
                cost.walksSkipped += 1
                return known.snapshot
            }
            let snapshot = scanner.snapshot(folder)
            cost.walked += 1
            if let known = settled[name] {
                if known.snapshot == snapshot {
                    // same content: a folder's time moved (metadata, a junk file) or was not trusted yet
                    var folders: [String: Seen] = [:]
                    for relative in Self.folders(of: snapshot) {
                        guard let time = modified(Self.join(folder, relative)) else { continue }
                        folders[relative] = known.folders[relative]?.looked(time, now: now) ?? Seen(modified: time, firstSeen: now, takenAt: now)
                    }
                    settled[name] = Settled(folders: folders, snapshot: snapshot)
                } else {
                    settled[name] = nil  // changed after it was handled: scanned as arriving again
                }
            }
            return snapshot
        })
        self.listings = listings.filter { listed.contains($0.key) }
        self.settled = settled.filter { result.batches[$0.key] != nil }
        self.cost = cost
        return result
    }

    /// The batch `name` (at `folder`) was handled with this content: it is walked again only when
    /// one of its folders changes, or at the next full rescan.
    public mutating func settle(_ name: String, folder: String, snapshot: BatchSnapshot, now: Double) {
        var folders: [String: Seen] = [:]
        for relative in Self.folders(of: snapshot) {
            var info = stat()
            guard lstat(Self.join(folder, relative), &info) == 0 else { continue }
            let time = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            // the content was taken at an earlier scan; when that was is not known here, so the time
            // counts from now and the batch is walked once more before it is trusted
            folders[relative] = Seen(modified: time, firstSeen: now, takenAt: now - 1)
        }
        settled[name] = Settled(folders: folders, snapshot: snapshot)
    }

    /// The batches settled now (handled, and unchanged at the last scan).
    public var settledBatches: [String] { Array(settled.keys) }

    /// Takes back `settle` (the batch is to be looked at as arriving).
    public mutating func unsettle(_ name: String) { settled[name] = nil }

    /// The folders of a batch: itself ("") and every folder holding one of its files.
    static func folders(of snapshot: BatchSnapshot?) -> Set<String> {
        var result: Set<String> = [""]
        for path in snapshot?.files.keys.map({ $0 }) ?? [] {
            var parts = path.split(separator: "/").dropLast()
            while !parts.isEmpty {
                result.insert(parts.joined(separator: "/"))
                parts = parts.dropLast()
            }
        }
        return result
    }

    static func join(_ folder: String, _ relative: String) -> String { relative.isEmpty ? folder : folder + "/" + relative }
}
