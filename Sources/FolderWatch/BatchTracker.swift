#if canImport(Glibc)
import Glibc
#endif
/// # FolderWatch
///
/// Noticing production batches landing in the inbox. File-system events (inotify, or polling where
/// inotify sees nothing) are only hints that something changed; the truth is a scan of the inbox. The
/// scan goes into `BatchTracker`, a state machine that decides when a batch is complete: its marker
/// file appeared (written last by the producer, like Hadoop's _SUCCESS), or nothing in it changed
/// (names, sizes, modification times) for the settle period.

/// One batch folder as a scan saw it.
public struct BatchSnapshot: Sendable, Equatable {
    /// Relative path -> (size, modification time in nanoseconds), for the files that count.
    public var files: [String: FileStamp]
    public var hasMarker: Bool
    /// The entries of `files` that are not regular files (links, FIFOs, sockets, devices), with what
    /// they are: never opened, refused when the batch is served.
    public var special: [String: String]

    public init(files: [String: FileStamp], hasMarker: Bool, special: [String: String] = [:]) {
        self.files = files
        self.hasMarker = hasMarker
        self.special = special
    }
}

public struct FileStamp: Sendable, Equatable, Hashable {
    public var size: Int64
    public var modified: Int64
    public init(size: Int64, modified: Int64) {
        self.size = size
        self.modified = modified
    }

    init(_ info: stat) {
        self.init(size: Int64(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    /// The size and modification time (ns) of the file at `path` (symbolic links followed), or nil.
    public init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.init(info)
    }

    /// The same for a regular file only, links not followed: nil for anything else.
    public init?(regularFile path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        self.init(info)
    }
}

/// Why a batch counts as complete.
public enum Completion: String, Sendable, Codable {
    case marker
    case settled
}

/// A batch found complete.
public struct ReadyBatch: Sendable, Equatable {
    public var name: String
    public var completion: Completion
    public var files: Int

    public init(name: String, completion: Completion, files: Int) {
        self.name = name
        self.completion = completion
        self.files = files
    }
}

/// Decides, scan after scan, which batches are complete. Pure: time comes in as an argument.
public struct BatchTracker: Sendable {
    /// Seconds without any change after which a batch without a marker is complete.
    public var settleSeconds: Double

    struct State: Sendable {
        var signature: [String: FileStamp]
        var changedAt: Double
        /// The signature last reported ready (a changed folder is a new version).
        var reported: [String: FileStamp]?
    }

    private var states: [String: State] = [:]

    public init(settleSeconds: Double) {
        precondition(settleSeconds >= 0, "the settle period must be >= 0, got \(settleSeconds)")
        self.settleSeconds = settleSeconds
    }

    /// Feeds one scan of the production inbox (batch name -> snapshot) at time `now` (seconds);
    /// returns the batches that became complete, each content version once.
    public mutating func update(_ scan: [String: BatchSnapshot], now: Double) -> [ReadyBatch] {
        var ready: [ReadyBatch] = []
        for name in states.keys where scan[name] == nil { states[name] = nil }  // folder removed
        for (name, snapshot) in scan.sorted(by: { $0.key < $1.key }) {
            var state = states[name] ?? State(signature: snapshot.files, changedAt: now, reported: nil)
            if state.signature != snapshot.files {
                state.signature = snapshot.files
                state.changedAt = now
            }
            let unreported = state.reported != snapshot.files
            // A folder with its marker is a batch even with nothing else in it (it is served, and its
            // outcome says it held no image); a folder with nothing in it and no marker is not one yet.
            // A batch that changes after it was reported (files added after its marker) is reopened:
            // it is reported again once the settle period passed without change, marker or not, so a
            // producer still copying gets one new run for the final content, not one per file.
            if (!snapshot.files.isEmpty || snapshot.hasMarker) && unreported {
                if snapshot.hasMarker && state.reported == nil {
                    ready.append(ReadyBatch(name: name, completion: .marker, files: snapshot.files.count))
                    state.reported = snapshot.files
                } else if now - state.changedAt >= settleSeconds {
                    ready.append(ReadyBatch(name: name, completion: .settled, files: snapshot.files.count))
                    state.reported = snapshot.files
                }
            }
            states[name] = state
        }
        return ready
    }

    /// Seconds until the earliest batch without a marker could settle (nil: nothing is waiting), so
    /// the daemon knows when to scan again even if no event comes.
    public func nextDeadline(now: Double) -> Double? {
        states.values.filter { !$0.signature.isEmpty && $0.reported != $0.signature }
            .map { max(0, $0.changedAt + settleSeconds - now) }.min()
    }

    /// Takes back a report: the batch could not be queued (a file could not be read), so it is
    /// reported again at the next update that finds it complete.
    public mutating func reopen(_ name: String) {
        states[name]?.reported = nil
    }

    /// Marks a batch's current content as already handled (e.g. found processed in the index at start-up).
    public mutating func markHandled(_ name: String, files: [String: FileStamp]) {
        var state = states[name] ?? State(signature: files, changedAt: 0, reported: nil)
        state.reported = files
        states[name] = state
    }
}
