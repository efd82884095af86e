import Daemon
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The rules' `run` actions: no shell, a process group of their own, default signals, output
/// drained and capped, and an end that comes whatever the program does.
@Suite("Bounded commands", .serialized)
struct CommandRunnerTests {
    let runner = CommandRunner(grace: 0.5)

    @Test("arguments reach the program as they are, without a shell; the exit status and the environment come through")
    func arguments() throws {
        let result = runner.run(["printf", "[%s]\\n", "a b", "$(touch /tmp/never)", "`id`"], environment: [:], timeout: 10)
        #expect(result.ending == .exited(0))
        #expect(result.output == "[a b]\n[$(touch /tmp/never)]\n[`id`]\n")
        #expect(runner.run(["sh", "-c", "exit 3"], environment: [:], timeout: 10).ending == .exited(3))
        let env = runner.run(["printenv", "DROPLINE_X"], environment: ["DROPLINE_X": "line one\nline two"], timeout: 10)
        #expect(env.output == "line one\nline two\n")
        let missing = runner.run(["no-such-program-dropline"], environment: [:], timeout: 10)
        guard case .notStarted(let why) = missing.ending else { Issue.record("\(missing.ending)"); return }
        #expect(why.contains("was not found"))
    }

    @Test("a program that ignores SIGTERM past its timeout is killed: SIGTERM to its group, SIGKILL after the grace period")
    func timeout() throws {
        let started = Date()
        let result = runner.run(["sh", "-c", "trap '' TERM; echo waiting; sleep 60"], environment: [:], timeout: 0.5)
        #expect(result.ending == .timedOut)
        #expect(result.output.contains("waiting"))
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test("a background child does not hold the run: the program's end ends its group, and nothing it left behind runs on")
    func backgroundChild() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("dropline-bg-\(UUID().uuidString)").path
        let started = Date()
        let result = runner.run(["sh", "-c", "(sleep 1; touch \"$0\") & echo started", marker], environment: [:], timeout: 60)
        #expect(result.ending == .exited(0))
        #expect(result.output == "started\n")
        #expect(Date().timeIntervalSince(started) < 30)
        usleep(2_000_000)
        #expect(!FileManager.default.fileExists(atPath: marker), "the background child outlived its command")
    }

    @Test("10 MB of output is drained while the program runs and kept as head and tail")
    func chatty() throws {
        let result = runner.run(["sh", "-c", "echo first; head -c 10000000 /dev/zero | tr '\\\\0' a; echo; echo last"], environment: [:], timeout: 60)
        #expect(result.ending == .exited(0))
        #expect(result.outputBytes == 10_000_000 + "first\n\nlast\n".utf8.count)
        #expect(result.output.hasPrefix("first\n") && result.output.hasSuffix("\nlast\n"))
        #expect(result.output.contains("bytes left out"))
        #expect(result.output.utf8.count < 3 * CommandRunner.keptBytes)
    }

    @Test("the program gets default signals whatever the daemon blocks or ignores")
    func signals() throws {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let oldHangUp = signal(SIGHUP, SIG_IGN)
        defer {
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            signal(SIGHUP, oldHangUp)
        }
        let term = runner.run(["sh", "-c", "kill -TERM $$; sleep 20"], environment: [:], timeout: 30)
        #expect(term.ending == .signalled(SIGTERM))
        let hangUp = runner.run(["sh", "-c", "kill -HUP $$; sleep 20"], environment: [:], timeout: 30)
        #expect(hangUp.ending == .signalled(SIGHUP))
    }

    @Test("a daemon stop ends a running command the same bounded way")
    func stop() throws {
        let stop = StopRequest()
        let thread = Thread { usleep(300_000); stop.request() }
        thread.start()
        let started = Date()
        let result = runner.run(["sh", "-c", "trap '' TERM; sleep 60"], environment: [:], timeout: 600, stop: stop)
        #expect(result.ending == .stoppedWithDaemon)
        #expect(Date().timeIntervalSince(started) < 30)
    }
}
