import Foundation
import ShareSupport
import Store
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's lease and owners' heartbeats, with real files and real processes.
@Suite("Owners and the daemon's lease", .serialized)
struct OwnershipTests {
    let root: DroplineRoot

    init() throws {
        root = try DroplineRoot.create(at: FileManager.default.temporaryDirectory.appendingPathComponent("dropline-lease-\(UUID().uuidString)").path)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: root.path) }

    /// The pid and start time of a process that has exited.
    static func exitedProcess() throws -> (Int32, UInt64) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["0.3"]
        try process.run()
        let pid = process.processIdentifier
        let start = try #require(ThisProcess.startTime(pid: pid))
        process.waitUntilExit()
        return (pid, start)
    }

    /// Writes `record` as the lease, as another daemon would have.
    func plantLease(_ record: OwnerRecord) throws {
        let data = try JSONEncoder.snakeCase.encode(record)
        try data.write(to: URL(fileURLWithPath: DaemonLease.file(root)))
    }

    func record(host: String = ThisProcess.host, pid: Int32, start: UInt64, ttl: Double = 30, heartbeat: Date = Date()) -> OwnerRecord {
        OwnerRecord(id: "other-\(pid)", host: host, bootId: ThisProcess.bootId, pid: pid, processStart: start, command: "watch",
                    startedAt: "2026-12-01T00:00:00.000Z", heartbeatAt: ISO8601DateFormatter().string(from: heartbeat), ttlSeconds: ttl, sequence: 1)
    }

    @Test("one holder: a second session is refused with the holder named; a clean end releases the lease")
    func exclusive() throws {
        defer { cleanUp() }
        let first = try OwnerSession(root: root, command: "watch")
        var observation = DaemonLease.Observation()
        #expect(try DaemonLease.acquire(first, observation: &observation) == "free")
        let second = try OwnerSession(root: root, command: "watch")
        var other = DaemonLease.Observation()
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(second, observation: &other) }
        do { try DaemonLease.acquire(second, observation: &other) } catch let held as LeaseHeld {
            #expect(held.description.contains("pid \(getpid())") && held.description.contains(ThisProcess.host))
        }
        try first.heartbeat()
        #expect(DaemonLease.read(root)?.id == first.id && DaemonLease.read(root)!.sequence >= 1)
        first.end()
        #expect(DaemonLease.read(root) == nil)
        #expect(try DaemonLease.acquire(second, observation: &other) == "free")
        second.end()
    }

    @Test("a holder on this machine whose process is gone releases the lease at once; so does a reused pid")
    func deadHolder() throws {
        defer { cleanUp() }
        let (pid, start) = try Self.exitedProcess()
        try plantLease(record(pid: pid, start: start))
        let session = try OwnerSession(root: root, command: "watch")
        defer { session.end() }
        var observation = DaemonLease.Observation()
        #expect(try DaemonLease.acquire(session, observation: &observation).contains("is not running"))
        #expect(DaemonLease.read(root)?.id == session.id)
        // our own pid with another start time is another process
        try plantLease(record(pid: getpid(), start: 1))
        let next = try OwnerSession(root: root, command: "watch")
        defer { next.end() }
        var fresh = DaemonLease.Observation()
        #expect(try DaemonLease.acquire(next, observation: &fresh).contains("is not running"))
    }

    @Test("a session ended while a heartbeat is being written leaves neither the lease nor its heartbeat file behind")
    func endDuringHeartbeat() throws {
        defer { cleanUp() }
        for i in 0..<40 {
            let session = try OwnerSession(root: root, command: "watch")
            var observation = DaemonLease.Observation()
            _ = try DaemonLease.acquire(session, observation: &observation)
            // heartbeats back to back on another thread, as the heartbeat thread writes at its time
            let stop = Atomic<Bool>(false)
            let done = DispatchSemaphore(value: 0)
            Thread {
                while !stop.load(ordering: .relaxed) { try? session.heartbeat() }
                done.signal()
            }.start()
            usleep(UInt32(500 + 100 * i))
            session.end()
            stop.store(true, ordering: .relaxed)
            done.wait()
            #expect(DaemonLease.read(root) == nil, "attempt \(i): the lease was written again after the session ended")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: Owners.folder(root))) ?? []
            #expect(left.filter { $0.hasSuffix(".json") }.isEmpty, "attempt \(i): heartbeat files left: \(left)")
            if DaemonLease.read(root) != nil || !left.isEmpty { break }
        }
    }

    @Test("a live holder that stops renewing loses the lease after its time-to-live, by the taker's clock; it then finds it lost")
    func expiry() throws {
        defer { cleanUp() }
        // a holder on another machine, with a time stamp far in the future: clocks need not agree
        try plantLease(record(host: "elsewhere", pid: 1, start: 1, ttl: 0.5, heartbeat: Date().addingTimeInterval(3600)))
        let session = try OwnerSession(root: root, command: "watch")
        defer { session.end() }
        var observation = DaemonLease.Observation()
        let firstSeen = ProcessInfo.processInfo.systemUptime  // no later than the taker's first sight
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(session, observation: &observation) }
        usleep(300_000)
        // still held before its time-to-live (checked only when the machine was not stalled past it)
        if ProcessInfo.processInfo.systemUptime - firstSeen < 0.45 {
            #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(session, observation: &observation) }
        }
        usleep(300_000)
        #expect(try DaemonLease.acquire(session, observation: &observation).contains("did not renew it"))
        // a renewal seen in between restarts the count
        try plantLease(record(host: "elsewhere", pid: 2, start: 1, ttl: 0.5))
        let standby = try OwnerSession(root: root, command: "watch")
        defer { standby.end() }
        var watching = DaemonLease.Observation()
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(standby, observation: &watching) }
        var renewed = record(host: "elsewhere", pid: 2, start: 1, ttl: 0.5)
        renewed.sequence = 2
        usleep(300_000)
        try plantLease(renewed)
        usleep(300_000)
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(standby, observation: &watching) }
        // the first session's lease was replaced: its next heartbeat says so
        #expect(throws: LeaseLost.self) { try session.heartbeat() }
        #expect(session.leaseLost != nil)
    }

    @Test("liveness: a missing heartbeat is gone; another machine's owner lives while its heartbeat is fresh")
    func liveness() throws {
        defer { cleanUp() }
        #expect(!Owners.liveness("nobody-1-00000000", in: root).isAlive)
        #expect(!Owners.liveness(nil, in: root).isAlive)
        let session = try OwnerSession(root: root, command: "train")
        #expect(Owners.liveness(session.id, in: root).isAlive)
        #expect(Owners.live(root).map(\.command) == ["train"])
        #expect(Owners.liveness(record(host: "elsewhere", pid: 1, start: 1, ttl: 10)).isAlive)
        #expect(!Owners.liveness(record(host: "elsewhere", pid: 1, start: 1, ttl: 10, heartbeat: Date().addingTimeInterval(-31))).isAlive)
        session.end()
        #expect(!Owners.liveness(session.id, in: root).isAlive, "its heartbeat file is removed at the end")
    }

    @Test("a link or a FIFO where the lease goes is refused with what to do, never followed or opened", arguments: ["link", "fifo"])
    func plantedLease(kind: String) throws {
        defer { cleanUp() }
        let target = root.path + "/elsewhere.json"
        if kind == "link" {
            try FileManager.default.createSymbolicLink(atPath: DaemonLease.file(root), withDestinationPath: target)
        } else {
            #expect(mkfifo(DaemonLease.file(root), 0o644) == 0)
        }
        let session = try OwnerSession(root: root, command: "watch")
        defer { session.end() }
        var observation = DaemonLease.Observation()
        do {
            try DaemonLease.acquire(session, observation: &observation)
            Issue.record("took a planted \(kind) as the lease")
        } catch {
            #expect("\(error)".contains("not a lease Dropline wrote") && "\(error)".contains("remove it"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: target), "written through the link")
    }

    @Test("two sessions racing for a free lease from many threads: exactly one wins")
    func race() throws {
        defer { cleanUp() }
        let sessions = try (0..<8).map { _ in try OwnerSession(root: root, command: "watch") }
        defer { sessions.forEach { $0.end() } }
        let wins = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: sessions.count) { i in
            var observation = DaemonLease.Observation()
            if (try? DaemonLease.acquire(sessions[i], observation: &observation)) != nil { wins.withLock { $0 += 1 } }
        }
        #expect(wins.withLock { $0 } == 1)
    }
}

import Synchronization

extension JSONEncoder {
    static var snakeCase: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}

/// The lease on a real network file system: one SFTP share mounted twice (two clients with their own
/// caches), where advisory locks mean nothing across clients.
@Suite("The daemon's lease on a network share (SFTP, two sshfs clients)", .enabled(if: SFTPShare.available, "\(SFTPShare.unavailable)"), .serialized)
struct NetworkLeaseTests {
    @Test("held through one client, refused through the other; expired on one, taken through the other, found lost by the first; a race across clients has one winner")
    func twoClients() throws {
        let share = try SFTPShare()
        defer { share.close() }
        // the root's folders only: an index in WAL mode on a network file system is what issue 15 forbids
        for folder in ["inbox", "outputs", "flags"] {
            try FileManager.default.createDirectory(atPath: share.mounts[0] + "/root/" + folder, withIntermediateDirectories: true)
        }
        let here = try DroplineRoot(existing: share.mounts[0] + "/root")
        let there = try DroplineRoot(existing: share.mounts[1] + "/root")

        let first = try OwnerSession(root: here, command: "watch", ttlSeconds: 0.9)
        var observation = DaemonLease.Observation()
        #expect(try DaemonLease.acquire(first, observation: &observation) == "free")
        let second = try OwnerSession(root: there, command: "watch", ttlSeconds: 0.9)
        var watching = DaemonLease.Observation()
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(second, observation: &watching) }
        // the first renews (its own thread, every 0.3 s): the second keeps seeing new versions
        usleep(1_200_000)
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(second, observation: &watching) }

        // the first stops renewing (as a machine that hangs would): its last version expires
        first.stopHeartbeats()
        _ = try? DaemonLease.acquire(second, observation: &watching)
        var taken = false
        for _ in 0..<30 where !taken {
            usleep(200_000)
            taken = (try? DaemonLease.acquire(second, observation: &watching)) != nil
        }
        #expect(taken, "the standby never took over")
        #expect(DaemonLease.read(here)?.id == second.id, "the first client sees the new holder")
        #expect(throws: LeaseLost.self) { try first.heartbeat() }
        second.end()
        first.end()
        #expect(DaemonLease.read(here) == nil && DaemonLease.read(there) == nil)

        // eight contenders, four on each client, for a free lease
        let roots = [here, there]
        let sessions = try (0..<8).map { try OwnerSession(root: roots[$0 % 2], command: "watch") }
        defer { sessions.forEach { $0.end() } }
        let wins = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: sessions.count) { i in
            var seen = DaemonLease.Observation()
            if (try? DaemonLease.acquire(sessions[i], observation: &seen)) != nil { wins.withLock { $0 += 1 } }
        }
        #expect(wins.withLock { $0 } == 1)
    }
}
