import DroplineSupport
public import Foundation
import JSONFiles
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// # Owners and the daemon's lease
///
/// Every process that does work on a root (the daemon, a hand-run `dropline train` or `infer`) is an
/// *owner*: it has an id recorded on the runs and jobs it starts, and a heartbeat file
/// `outputs/.owners/<id>.json` that it rewrites every third of its time-to-live. Recovery fails or
/// completes only the work of owners that are gone: on this machine, a process whose pid no longer
/// runs with the same start time (or a machine that rebooted); on another machine that mounts the
/// root, an owner whose heartbeat is older than three times its time-to-live.
///
/// The daemon also holds the root's *lease*, `<root>/.dropline-lease.json`: one daemon per root.
/// Advisory locks cannot be trusted on network shares, so the lease uses only what NFS and SMB do
/// atomically: it is created with link(2) (fails if the file exists), renewed by rename(2) of a new
/// version over it (after checking it is still ours), and taken over from an expired holder by
/// renaming it aside (only one taker's rename succeeds) and checking that what was moved is the
/// version that was seen expired. Expiry is judged by the taker's own clock: a standby notes when it
/// first saw a version of the lease, and the lease is expired when that version has not changed for its
/// time-to-live (clocks of two machines need not agree). A holder on this machine whose process is
/// gone has released it at once.
///
/// Heartbeats are written padded to a fixed size, so that on a full disk (where a new file cannot be
/// written) the same bytes are overwritten in place and the daemon keeps its lease.

/// One owner's heartbeat: who, where, since when, and until when it counts as alive.
public struct OwnerRecord: Codable, Sendable, Equatable {
    public var id: String
    public var host: String
    public var bootId: String
    public var pid: Int32
    /// The process's start time in clock ticks since boot (/proc/<pid>/stat), so a reused pid is not mistaken for it.
    public var processStart: UInt64
    /// What it is: `watch`, `train`, `infer`, `recover`, ...
    public var command: String
    public var startedAt: String
    public var heartbeatAt: String
    public var ttlSeconds: Double
    /// Counts heartbeats: a version of the record.
    public var sequence: Int
    /// The daemon's state in its lease: `running`, or `degraded` with `detail` saying why.
    public var state: String = "running"
    public var detail: String? = nil

    public init(id: String, host: String, bootId: String, pid: Int32, processStart: UInt64, command: String, startedAt: String,
                heartbeatAt: String, ttlSeconds: Double, sequence: Int) {
        self.id = id
        self.host = host
        self.bootId = bootId
        self.pid = pid
        self.processStart = processStart
        self.command = command
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.ttlSeconds = ttlSeconds
        self.sequence = sequence
    }
}

/// What this process is on this machine.
public enum ThisProcess {
    public static var host: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        return String(cString: buffer)
    }

    public static var bootId: String {
        procFile("/proc/sys/kernel/random/boot_id")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown-boot"
    }

    /// A /proc file's text (they report a size of 0, so they are read to the end).
    static func procFile(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.readToEnd(), !data.isEmpty else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The start time (field 22 of /proc/<pid>/stat, in ticks since boot) and the state letter of
    /// process `pid`, or nil when no such process runs.
    static func stat(pid: Int32) -> (start: UInt64, state: Character)? {
        guard let text = procFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // after ")": state is field 3, so start time (field 22) is the 20th
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]), let state = fields[0].first else { return nil }
        return (start, state)
    }

    /// Field 22 of /proc/<pid>/stat (start time in ticks since boot), or nil when no such process runs.
    public static func startTime(pid: Int32) -> UInt64? { stat(pid: pid)?.start }

    /// Whether the process `pid` on this machine is the one that started at `start` and has not exited
    /// (a zombie, killed and not yet reaped, is gone for our purposes).
    public static func isRunning(pid: Int32, start: UInt64) -> Bool {
        guard let process = stat(pid: pid), process.start == start else { return false }
        return process.state != "Z" && process.state != "X"
    }
}

/// Whether an owner still lives, and why.
public enum Liveness: Sendable, Equatable {
    case alive(OwnerRecord)
    case gone(String)

    public var isAlive: Bool { if case .alive = self { true } else { false } }
}

/// The heartbeat files of a root's owners.
public enum Owners {
    public static func folder(_ root: DroplineRoot) -> String { root.outputs + "/.owners" }
    static func file(_ root: DroplineRoot, _ id: String) -> String { folder(root) + "/" + id + ".json" }

    /// The fixed size of a heartbeat file (see the module note: rewritten in place on a full disk).
    static let recordBytes = 2048

    /// Whether the owner `id` lives (nil: work recorded before owners were tracked, which is gone).
    public static func liveness(_ id: String?, in root: DroplineRoot, now: Date = Date()) -> Liveness {
        guard let id else { return .gone("recorded before owners were tracked") }
        guard let record = read(file(root, id)) else { return .gone("its heartbeat file is gone (it stopped)") }
        return liveness(record, now: now)
    }

    /// The same for a record already read.
    public static func liveness(_ record: OwnerRecord, now: Date = Date()) -> Liveness {
        if record.host == ThisProcess.host {
            guard record.bootId == ThisProcess.bootId else { return .gone("this machine restarted since it started") }
            guard ThisProcess.isRunning(pid: record.pid, start: record.processStart) else { return .gone("its process \(record.pid) is not running") }
        }
        let age = now.timeIntervalSince(ISOTime.parse(record.heartbeatAt) ?? .distantPast)
        if age > 3 * record.ttlSeconds {
            return .gone("its last heartbeat is \(Int(age)) s old (\(record.host) pid \(record.pid))")
        }
        return .alive(record)
    }

    /// The live owners' records; with `prune`, removes the heartbeat files of gone owners.
    @discardableResult
    public static func live(_ root: DroplineRoot, prune: Bool = false) -> [OwnerRecord] {
        var live: [OwnerRecord] = []
        for name in FileSystem.names(in: folder(root)) where name.hasSuffix(".json") {
            let path = folder(root) + "/" + name
            guard let record = read(path) else { continue }
            if liveness(record).isAlive { live.append(record) } else if prune { unlink(path) }
        }
        return live
    }

    /// Reads a heartbeat file (nil when missing or unreadable: a torn in-place rewrite is read again).
    static func read(_ path: String) -> OwnerRecord? {
        for attempt in 0..<3 {
            if attempt > 0 { usleep(20_000) }
            guard let bytes = try? AtomicFile.read(path, limit: 1 << 16, links: .refuse) else { return nil }
            if let record = try? SnakeCaseJSON.decoder().decode(OwnerRecord.self, from: Data(bytes)) { return record }
        }
        return nil
    }

    /// The record as the bytes of a heartbeat file: JSON padded with spaces to `recordBytes`.
    static func encode(_ record: OwnerRecord) throws -> [UInt8] {
        var bytes = Array(try JSONEncoder.snakeCaseCompact.encode(record))
        guard bytes.count < recordBytes else { throw StoreError("an owner record is over \(recordBytes) bytes") }
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: recordBytes - 1 - bytes.count) + [UInt8(ascii: "\n")]
        return bytes
    }

    /// Writes a heartbeat file: atomically by rename, or, when no new file can be written (a full
    /// disk), over the existing file's bytes in place.
    static func write(_ record: OwnerRecord, to path: String) throws {
        let bytes = try encode(record)
        do { try AtomicFile.write(bytes, to: path) } catch let error as SystemError where error.errno == ENOSPC || error.errno == EDQUOT {
            let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw error }
            defer { close(fd) }
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            guard written == bytes.count else { throw error }
        }
    }
}

extension JSONEncoder {
    static var snakeCaseCompact: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}

/// This process as an owner of a root: registers its heartbeat file, keeps it fresh on a thread of
/// its own (a pipeline busy on every core does not stop it), and removes it at the end. Holds the
/// daemon's lease too when `DaemonLease.acquire` took it.
public final class OwnerSession: @unchecked Sendable {
    public let root: DroplineRoot
    public let ttlSeconds: Double
    /// The record as last written (state guarded by `lock`).
    let lock = Mutex<State>(State())
    /// Held while the heartbeat or the lease is written and while the session ends: a heartbeat that
    /// was under way when `end` ran would otherwise write the lease and the heartbeat file again after
    /// `end` removed them (seen over sshfs: a released lease back, held by an ended session, until
    /// it expired).
    let writing = NSLock()
    struct State {
        var record: OwnerRecord?
        var holdsLease = false
        var stopped = false
        var paused = false
        var leaseLost: String?
    }
    /// Called once, from the heartbeat thread, if the lease is found taken by another daemon.
    public var onLeaseLost: (@Sendable (String) -> Void)?

    public var id: String { lock.withLock { $0.record!.id } }
    public var record: OwnerRecord { lock.withLock { $0.record! } }

    /// Registers this process as an owner of `root` and starts its heartbeat.
    public init(root: DroplineRoot, command: String, ttlSeconds: Double = 30) throws {
        self.root = root
        self.ttlSeconds = ttlSeconds
        let pid = getpid()
        let host = ThisProcess.host
        let safeHost = String(host.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }.prefix(64))
        let id = "\(safeHost)-\(pid)-\(String(format: "%08x", UInt32.random(in: 0...UInt32.max)))"
        let now = ISOTime.now()
        let record = OwnerRecord(id: id, host: host, bootId: ThisProcess.bootId, pid: pid, processStart: ThisProcess.startTime(pid: pid) ?? 0,
                                 command: command, startedAt: now, heartbeatAt: now, ttlSeconds: ttlSeconds, sequence: 0)
        try FileManager.default.createDirectory(atPath: Owners.folder(root), withIntermediateDirectories: true)
        try Owners.write(record, to: Owners.file(root, id))
        lock.withLock { $0.record = record }
        // the thread holds the session only while it writes, so the session ends when its owner lets go
        let thread = Thread { [weak self] in
            var waited = 0.0
            while true {
                usleep(100_000)
                waited += 0.1
                guard let session = self, !session.lock.withLock({ $0.stopped }) else { return }
                if waited >= session.ttlSeconds / 3, !session.lock.withLock({ $0.paused }) {
                    waited = 0
                    try? session.heartbeat()
                }
            }
        }
        thread.name = "dropline-heartbeat"
        thread.start()
    }

    deinit { end() }

    /// Rewrites the heartbeat file (and the lease, when held) with a new sequence number and time;
    /// `state` and `detail` go into the lease (what `dropline status` shows). Throws `LeaseLost` when
    /// another daemon holds the lease now.
    public func heartbeat(state: String? = nil, detail: String?? = nil) throws {
        var lostNow: String?
        defer { if let lostNow { onLeaseLost?(lostNow) } }  // outside `writing`: the handler may end the session
        writing.lock()
        defer { writing.unlock() }
        guard !lock.withLock({ $0.stopped }) else { return }
        let (record, holds) = lock.withLock { s -> (OwnerRecord, Bool) in
            var r = s.record!
            r.sequence += 1
            r.heartbeatAt = ISOTime.now()
            if let state { r.state = state }
            if let detail { r.detail = detail }
            s.record = r
            return (r, s.holdsLease && s.leaseLost == nil)
        }
        try Owners.write(record, to: Owners.file(root, record.id))
        if holds {
            do { try DaemonLease.renew(root: root, record: record) } catch let lost as LeaseLost {
                let first = lock.withLock { s -> Bool in
                    defer { s.leaseLost = lost.description }
                    return s.leaseLost == nil
                }
                if first { lostNow = lost.description }
                throw lost
            }
        }
    }

    /// Stops the heartbeat thread without ending the session (tests: an owner that hangs).
    public func stopHeartbeats() { lock.withLock { $0.paused = true } }

    /// Why the lease was lost, if it was.
    public var leaseLost: String? { lock.withLock { $0.leaseLost } }

    func markHoldsLease(_ holds: Bool) { lock.withLock { $0.holdsLease = holds } }

    /// Ends the session: releases the lease if held, removes the heartbeat file.
    public func end() {
        writing.lock()
        defer { writing.unlock() }
        let (record, holds, already) = lock.withLock { s -> (OwnerRecord?, Bool, Bool) in
            defer { s.stopped = true }
            return (s.record, s.holdsLease && s.leaseLost == nil, s.stopped)
        }
        guard !already, let record else { return }
        if holds { DaemonLease.release(root: root, id: record.id) }
        unlink(Owners.file(root, record.id))
    }
}

/// The lease is held by another live daemon.
public struct LeaseHeld: Error, CustomStringConvertible, Sendable {
    public var holder: OwnerRecord
    public var description: String {
        "another daemon owns \(holder.command == "watch" ? "this root" : "this root's lease"): \(holder.host) pid \(holder.pid), started \(holder.startedAt), last heartbeat \(holder.heartbeatAt) (lease \(Int(holder.ttlSeconds)) s)"
    }
}

/// The lease was taken by another daemon while this one held it (it was not renewed in time).
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// The root's daemon lease (see the module note).
public enum DaemonLease {
    public static func file(_ root: DroplineRoot) -> String { root.path + "/.dropline-lease.json" }

    /// The lease as it is now, if any.
    public static func read(_ root: DroplineRoot) -> OwnerRecord? { Owners.read(file(root)) }

    /// What a standby has seen of the lease: a version and when (its own monotonic clock) it first saw it.
    public struct Observation: Sendable {
        var id: String?
        var sequence: Int = -1
        var since: Double = 0
        public init() {}
    }

    static func monotonic() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// One attempt to take the lease for `session`: taken when there is none, when its holder's
    /// process is gone from this machine, or when `observation` (kept by the caller between attempts)
    /// saw the same version unchanged for its time-to-live. Throws `LeaseHeld` otherwise. Returns
    /// why it was free ("free", or what happened to the previous holder).
    @discardableResult
    public static func acquire(_ session: OwnerSession, observation: inout Observation) throws -> String {
        let root = session.root
        let path = file(root)
        for _ in 0..<8 {
            var record = session.record
            record.heartbeatAt = ISOTime.now()
            let temporary = path + ".new-" + record.id
            try Owners.write(record, to: temporary)
            defer { unlink(temporary) }
            if link(temporary, path) == 0 {
                // link over NFS may report failure after succeeding, or the reverse: the file says
                guard read(root)?.id == record.id else { continue }
                session.markHoldsLease(true)
                return "free"
            }
            let code = errno
            guard code == EEXIST else { throw SystemError(call: "link", path: path, errno: code) }
            guard let holder = read(root) else {
                if let type = FileSystem.entryType(path), type != .regular {
                    throw StoreError("\(path) is a \(type), not a lease Dropline wrote; links and special files are never followed there: remove it, then start again")
                }
                continue  // released meanwhile, or a version being replaced
            }
            if holder.id == record.id { session.markHoldsLease(true); return "free" }
            var why: String?
            if holder.host == ThisProcess.host, case .gone(let reason) = Owners.liveness(holder) {
                why = "its holder \(holder.host) pid \(holder.pid) is gone (\(reason))"
            } else if observation.id == holder.id && observation.sequence == holder.sequence {
                let unchanged = monotonic() - observation.since
                if unchanged >= holder.ttlSeconds {
                    why = "its holder \(holder.host) pid \(holder.pid) did not renew it for \(Int(unchanged)) s (lease \(Int(holder.ttlSeconds)) s)"
                }
            } else {
                observation = Observation()
                observation.id = holder.id
                observation.sequence = holder.sequence
                observation.since = monotonic()
            }
            guard let why else { throw LeaseHeld(holder: holder) }
            // take it over: move the expired version aside; only one taker's rename finds it
            let aside = path + ".expired-" + record.id
            guard rename(path, aside) == 0 else { continue }
            // the version moved must be the one seen expired (compared by content: inode numbers are
            // not stable across the clients of a network file system)
            let moved = Owners.read(aside)
            if moved?.id != holder.id || moved?.sequence != holder.sequence {
                // renewed between our look and the rename: give the live version back
                _ = link(aside, path)
                unlink(aside)
                observation = Observation()
                continue
            }
            unlink(aside)
            if link(temporary, path) == 0, read(root)?.id == record.id {
                session.markHoldsLease(true)
                return why
            }
        }
        if let holder = read(root) { throw LeaseHeld(holder: holder) }
        throw StoreError("could not take the lease \(path): it changed on every attempt")
    }

    /// Rewrites the lease with `record` (a new version), after checking that it is still ours.
    /// Runs `body` holding the root's lease for the moment (a command that must not run beside a
    /// daemon, such as adopting the index); refused, naming the holder, while a daemon holds it.
    public static func whileHolding<T>(_ root: DroplineRoot, command: String, _ body: () throws -> T) throws -> T {
        let session = try OwnerSession(root: root, command: command)
        defer { session.end() }
        var observation = Observation()
        do { _ = try acquire(session, observation: &observation) } catch let held as LeaseHeld {
            throw StoreError("\(held); stop that daemon first (a standby daemon adopts the index on its own when it takes over)")
        }
        return try body()
    }

    static func renew(root: DroplineRoot, record: OwnerRecord) throws {
        let path = file(root)
        guard let current = read(root), current.id == record.id else {
            let holder = read(root)
            throw LeaseLost(description: "the lease of \(root.path) is now held by " + (holder.map { "\($0.host) pid \($0.pid) (since \($0.startedAt))" } ?? "no one (it was removed)"))
        }
        try Owners.write(record, to: path)
    }

    /// Removes the lease if `id` still holds it.
    static func release(root: DroplineRoot, id: String) {
        guard read(root)?.id == id else { return }
        unlink(file(root))
    }
}
