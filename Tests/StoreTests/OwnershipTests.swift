import Foundation
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

    @Test("a live holder that stops renewing loses the lease after its time-to-live, by the taker's clock; it then finds it lost")
    func expiry() throws {
        defer { cleanUp() }
        // a holder on another machine, with a time stamp far in the future: clocks need not agree
        try plantLease(record(host: "elsewhere", pid: 1, start: 1, ttl: 0.5, heartbeat: Date().addingTimeInterval(3600)))
        let session = try OwnerSession(root: root, command: "watch")
        defer { session.end() }
        var observation = DaemonLease.Observation()
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(session, observation: &observation) }
        usleep(300_000)
        #expect(throws: LeaseHeld.self) { try DaemonLease.acquire(session, observation: &observation) }
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
