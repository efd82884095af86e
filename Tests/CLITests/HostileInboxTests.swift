import Foundation
import GRDB
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hostile input through the real `dropline watch`: names with shell syntax and newlines, links out of
/// the root, FIFOs, traversal in flags, slow and chatty commands, a hostile rules edit.
@Suite("dropline watch on hostile input", .enabled(if: Binary.path != nil, "the dropline executable was not built"), .serialized)
struct HostileInboxTests {
    typealias W = WatchDaemonTests

    static func append(_ rules: String, to root: String) throws {
        try (try String(contentsOfFile: root + "/rules.yaml", encoding: .utf8) + rules).write(toFile: root + "/rules.yaml", atomically: true, encoding: .utf8)
    }

    /// Runs `watch --once` and waits for it to end by itself (a hang is a failure, not a stuck test).
    static func watchOnce(_ root: String, _ arguments: [String] = []) throws -> W.Daemon {
        let daemon = try W.Daemon(root: root, arguments: ["--once", "--settle", "1"] + arguments + W.training)
        if !W.eventually(180, { !daemon.process.isRunning }) {
            Issue.record("watch --once did not end: \(daemon.log)")
            kill(daemon.process.processIdentifier, SIGKILL)
        }
        daemon.process.waitUntilExit()
        return daemon
    }

    @Test("shell syntax in a batch name runs nothing; links, FIFOs, newlines and traversal are refused and recorded; the unstaged layout is served")
    func hostileNames() throws {
        let root = try W.trainedRoot(seed: 21)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-outside-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let served = root + "/served.txt"
        try Self.append("""

          - name: note-batches
            on: batch_landed
            do:
              - run: {command: [sh, -c, 'printf "%s\\\\n" "$DROPLINE_PATH" >> "$0"', "\(served)"], timeout: 30}

        """, to: root)
        let production = root + "/inbox/production"
        let pwned = "x$(touch${IFS}PWNED)"
        for name in ["original/\(pwned)", "unstaged", "original/with-links", "original/nl\n2026-01-01T00:00:00Z error forged"] {
            try W.writeBatch(production + "/" + name, count: 6, seed: 31, pause: 0)
            _ = FileManager.default.createFile(atPath: production + "/" + name + "/_READY", contents: nil)
        }
        #expect(symlink("/etc/passwd", production + "/original/with-links/passwd.png") == 0)
        #expect(mkfifo(production + "/original/with-links/pipe.png", 0o644) == 0)
        try W.writeBatch(outside, count: 6, seed: 32, pause: 0)
        _ = FileManager.default.createFile(atPath: outside + "/_READY", contents: nil)
        #expect(symlink(outside, production + "/original/linked") == 0)
        try Data(#"{"kind": "drift", "stage": "../../..", "batch": "zz"}"#.utf8).write(to: URL(fileURLWithPath: root + "/flags/drift/evil.json"))
        #expect(mkfifo(root + "/flags/retrain/pipe.json", 0o644) == 0)

        let daemon = try Self.watchOnce(root)
        #expect(daemon.process.terminationStatus == 0)
        for place in [root, root + "/inbox/production/original", FileManager.default.currentDirectoryPath, "/tmp"] {
            #expect(!FileManager.default.fileExists(atPath: place + "/PWNED"), "a name ran a command in \(place)")
        }
        let notes = try String(contentsOfFile: served, encoding: .utf8).split(separator: "\n").sorted()
        #expect(notes == ["production/original/with-links", "production/unstaged"])
        // every log line is one event: the newline in a name is escaped, so nothing starts a forged line
        #expect(daemon.log.split(separator: "\n").allSatisfy { $0.hasPrefix("20") && !$0.hasPrefix("2026-01-01T00:00:00Z") })
        #expect(daemon.log.contains("nl\\n2026-01-01T00:00:00Z error forged"))

        let status = try Binary.run(["status", root, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        for command in [["status", root, "--json"], ["runs", root, "--json"], ["models", "list", root, "--json"], ["rules", "check", root, "--json"]] {
            let output = try Binary.run(command)
            #expect(output.status == 0, "\(command): \(output.stderr)")
            #expect(JSONStyle.camelCaseKeys(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8))).isEmpty, "\(command)")
        }
        let refused = Set((object["refused"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String })
        #expect(refused == ["inbox/production/original/\(pwned)", "inbox/production/original/linked",
                            "inbox/production/original/nl\n2026-01-01T00:00:00Z error forged", "flags/retrain/pipe.json"])

        let queue = try DatabaseQueue(path: root + "/index.sqlite")
        try queue.read { db in
            let firing = try String.fetchOne(db, sql: """
                SELECT f.reason FROM rule_firings f JOIN jobs j ON j.id = f.job_id WHERE j.path = 'flags/drift/evil.json' AND f.rule = 'retrain-on-drift'
                """)
            #expect(firing?.contains("no training folder") == true)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM models") == 1)
            let images = try Row.fetchAll(db, sql: "SELECT path, outcome FROM images WHERE outcome = 'not_regular'").map { $0["path"] as String }
            #expect(Set(images) == ["inbox/production/original/with-links/passwd.png", "inbox/production/original/with-links/pipe.png"])
        }
    }

    @Test("a command past its timeout is stopped with its group; a hostile rules edit keeps the rules; SIGTERM during a long command returns")
    func boundedCommands() throws {
        let root = try W.trainedRoot(seed: 22)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.append("""

          - name: stubborn
            on: batch_landed
            match: production/original/slow
            do:
              - run: {command: [sh, -c, "trap '' TERM INT HUP; head -c 300000 /dev/zero; sleep 300 & sleep 300"], timeout: 2}
          - name: long
            on: batch_landed
            match: production/original/long
            do:
              - run: {command: [sh, -c, "trap '' TERM; sleep 300"], timeout: 600}

        """, to: root)
        let daemon = try W.Daemon(root: root, arguments: ["--settle", "1"] + W.training)
        #expect(W.eventually(30) { daemon.log.contains("watching") })
        let slow = root + "/inbox/production/original/slow"
        try W.writeBatch(slow, count: 4, seed: 41, pause: 0)
        _ = FileManager.default.createFile(atPath: slow + "/_READY", contents: nil)
        #expect(try W.eventually(90) { try W.jobs(root).contains { $0.path == "production/original/slow" && $0.state == "failed" } }, "\(daemon.log)")
        #expect(daemon.log.contains("did not finish within its timeout") && daemon.log.contains("bytes left out"))

        // a rules edit that would crash a recursive parser: refused, the previous rules stay
        let deep = String(repeating: "(", count: 20_000) + "a" + String(repeating: ")", count: 20_000)
        try Self.append("  - name: deep\n    on: batch_landed\n    when: '\(deep)'\n    do: [infer: {}]\n", to: root)
        #expect(W.eventually(30) { daemon.log.contains("the previous rules stay in force") }, "\(daemon.log)")
        #expect(daemon.process.isRunning)

        let long = root + "/inbox/production/original/long"
        try W.writeBatch(long, count: 4, seed: 42, pause: 0)
        _ = FileManager.default.createFile(atPath: long + "/_READY", contents: nil)
        #expect(W.eventually(60) { daemon.log.contains("rule long fires") }, "\(daemon.log)")
        let asked = Date()
        kill(daemon.process.processIdentifier, SIGTERM)
        #expect(W.eventually(60) { !daemon.process.isRunning }, "the daemon did not stop while a command ran")
        #expect(Date().timeIntervalSince(asked) < 60)
        if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
        daemon.process.waitUntilExit()
        #expect(daemon.log.contains("was stopped because the daemon is stopping"))
    }
}

extension HostileInboxTests {
    @Test("a second stop signal exits at once and kills the running command's group; nothing outlives the daemon")
    func secondSignal() throws {
        let root = try W.trainedRoot(seed: 23)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pidFile = root + "/command.pid"
        try Self.append("""

          - name: stubborn
            on: batch_landed
            do:
              - run: {command: [sh, -c, "echo $$ > \\"$0\\"; trap '' TERM; sleep 300", "\(pidFile)"], timeout: 600}

        """, to: root)
        let daemon = try W.Daemon(root: root, arguments: ["--settle", "1"] + W.training)
        #expect(W.eventually(30) { daemon.log.contains("watching") })
        let batch = root + "/inbox/production/original/b"
        try W.writeBatch(batch, count: 4, seed: 43, pause: 0)
        _ = FileManager.default.createFile(atPath: batch + "/_READY", contents: nil)
        #expect(W.eventually(60) { FileManager.default.fileExists(atPath: pidFile) }, "\(daemon.log)")
        let pid = pid_t((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(pid > 0 && kill(pid, 0) == 0)
        kill(daemon.process.processIdentifier, SIGTERM)
        #expect(W.eventually(10) { daemon.log.contains("stop requested") })
        kill(daemon.process.processIdentifier, SIGTERM)
        #expect(W.eventually(10) { !daemon.process.isRunning }, "the second signal did not end the daemon")
        if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 130)
        #expect(W.eventually(10) { kill(pid, 0) != 0 }, "the command outlived the daemon")
        if kill(pid, 0) == 0 { kill(-pid, SIGKILL) }
    }
}
