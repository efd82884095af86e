import DroplineSupport
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a `run` action's program ended, and what it printed.
public struct CommandResult: Sendable, Equatable {
    public enum Ending: Sendable, Equatable {
        /// It exited by itself with this status.
        case exited(Int32)
        /// A signal it did not expect ended it.
        case signalled(Int32)
        /// It outlived its timeout and was stopped (SIGTERM to its process group, SIGKILL after the grace period).
        case timedOut
        /// The daemon was stopping, so it was stopped the same way.
        case stoppedWithDaemon
        /// It could not be started (not found, not executable).
        case notStarted(String)
    }

    public var ending: Ending
    /// Standard output and standard error together: the first and the last `CommandRunner.keptBytes`
    /// bytes, with a line saying how much was left out between them.
    public var output: String
    /// Everything it printed, kept or not.
    public var outputBytes: Int
    public var seconds: Double

    public var succeeded: Bool { ending == .exited(0) }
}

/// Runs a `run` action's program the way a daemon must: without a shell, in its own process group,
/// with default signal dispositions and an empty signal mask (whatever the daemon blocks or ignores),
/// standard input from /dev/null, its output drained while it runs and capped, and a bounded end.
/// At the timeout, or when the daemon stops, the whole group gets SIGTERM and, after `grace`
/// seconds, SIGKILL. When the program exits, whatever it left running in its group is ended the same
/// way, and the output pipe is read for at most `grace` more seconds, so a background child that
/// keeps the pipe open cannot hold the daemon.
///
/// Written on posix_spawn rather than Foundation's Process, which reads the output only after exit,
/// waits without bound after terminate(), and signals only the child, not its group; and rather than
/// swift-subprocess, which is async-only (the daemon's workers are threads running synchronous
/// pipelines) and does not keep the head and tail of an over-long output.
public struct CommandRunner: Sendable {
    /// Seconds between SIGTERM and SIGKILL.
    public var grace: Double = 5
    /// How many bytes of output are kept from the start, and as many from the end.
    public static let keptBytes = 4096

    public init(grace: Double = 5) { self.grace = grace }

    /// The process groups of the commands running now, in this process: an immediate exit (a second
    /// stop signal) kills them first, so no command outlives the daemon.
    static let running = Mutex<Set<pid_t>>([])

    /// Sends SIGKILL to every running command's process group.
    public static func killAll() {
        for group in running.withLock({ $0 }) { kill(-group, SIGKILL) }
    }

    /// Runs `arguments` (the program first, looked up in PATH when it has no `/`), with `environment`
    /// added to the daemon's own; returns how it ended. Never throws: a program that cannot start is
    /// an ending too.
    public func run(_ arguments: [String], environment: [String: String], timeout: Double, stop: StopRequest? = nil) -> CommandResult {
        precondition(!arguments.isEmpty, "a command needs a program")
        let started = Self.now()
        var pipeEnds: [Int32] = [-1, -1]
        // (pipe2 is not imported; the close-on-exec flag is set right after: only this daemon's own
        // commands are spawned, and each one's file actions close what it must not inherit)
        guard pipe(&pipeEnds) == 0 else {
            return CommandResult(ending: .notStarted("no pipe for its output: \(String(cString: strerror(errno)))"), output: "", outputBytes: 0, seconds: 0)
        }
        let (reader, writer) = (pipeEnds[0], pipeEnds[1])
        _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer, F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writer, 1)
        posix_spawn_file_actions_adddup2(&actions, writer, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        var merged = ProcessInfo.processInfo.environment
        // the thread policy the executable chose for itself is not the user's program's to inherit
        if let set = merged.removeValue(forKey: "DROPLINE_SET_ENVIRONMENT") {
            for name in set.split(separator: ",") { merged[String(name)] = nil }
        }
        for (key, value) in environment { merged[key] = value }
        // C strings end at NUL: a value from an event cannot hold one
        let environmentLines = merged.map { "\($0.key)=\($0.value.replacingOccurrences(of: "\u{0}", with: "?"))" }
        let argv = arguments.map { $0.replacingOccurrences(of: "\u{0}", with: "?") }

        var pid: pid_t = 0
        let spawned = Self.withCStrings(argv) { argvPointer in
            Self.withCStrings(environmentLines) { envPointer in
                posix_spawnp(&pid, argv[0], &actions, &attributes, argvPointer, envPointer)
            }
        }
        close(writer)
        guard spawned == 0 else {
            close(reader)
            let why = spawned == ENOENT ? "'\(DisplayText.escaped(argv[0]))' was not found (PATH: \(merged["PATH"] ?? "unset"))"
                : "'\(DisplayText.escaped(argv[0]))' could not be started: \(String(cString: strerror(spawned)))"
            return CommandResult(ending: .notStarted(why), output: "", outputBytes: 0, seconds: Self.now() - started)
        }
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)
        Self.running.withLock { _ = $0.insert(pid) }
        defer { Self.running.withLock { _ = $0.remove(pid) } }

        var capture = OutputCapture(kept: Self.keptBytes)
        var ending: CommandResult.Ending?
        var stopping: CommandResult.Ending?
        var killAt: Double?
        var status: Int32 = 0
        var pipeOpen = true
        let deadline = started + timeout
        // Until the program exits: drain the pipe, and stop it at the deadline or with the daemon.
        while ending == nil {
            if pipeOpen { pipeOpen = Self.drain(reader, into: &capture, waitMilliseconds: 50) } else { usleep(20_000) }
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                ending = Self.ending(status)
                break
            }
            let now = Self.now()
            if stopping == nil && (now >= deadline || stop?.requested == true) {
                stopping = now >= deadline ? .timedOut : .stoppedWithDaemon
                kill(-pid, SIGTERM)
                killAt = now + grace
            }
            if let at = killAt, now >= at {
                kill(-pid, SIGKILL)
                killAt = nil
            }
        }
        // The program is gone: end what it left in its group, read what is left, boundedly.
        if kill(-pid, SIGTERM) == 0 {
            let until = Self.now() + grace
            while Self.now() < until && kill(-pid, 0) == 0 {
                if pipeOpen { pipeOpen = Self.drain(reader, into: &capture, waitMilliseconds: 20) } else { usleep(20_000) }
            }
            kill(-pid, SIGKILL)
        }
        let drainUntil = Self.now() + min(grace, 1)
        while pipeOpen && Self.now() < drainUntil { pipeOpen = Self.drain(reader, into: &capture, waitMilliseconds: 20) }
        close(reader)
        return CommandResult(ending: stopping ?? ending!, output: capture.text, outputBytes: capture.total, seconds: Self.now() - started)
    }

    /// Reads what the pipe holds (waiting up to `waitMilliseconds` for it); false at end of file.
    static func drain(_ fd: Int32, into capture: inout OutputCapture, waitMilliseconds: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, waitMilliseconds) > 0 else { return true }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { capture.append(buffer[0..<n]); continue }
            if n == 0 { return false }
            return errno == EAGAIN || errno == EINTR
        }
    }

    /// Decodes a wait status (the W* macros are not imported into Swift).
    static func ending(_ status: Int32) -> CommandResult.Ending {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }

    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }
}

/// The head and tail of a stream of bytes, and its length.
struct OutputCapture {
    let kept: Int
    var head: [UInt8] = []
    var tail: [UInt8] = []
    var total = 0

    init(kept: Int) { self.kept = kept }

    mutating func append(_ bytes: ArraySlice<UInt8>) {
        total += bytes.count
        var rest = bytes
        if head.count < kept {
            let n = min(kept - head.count, rest.count)
            head += rest.prefix(n)
            rest = rest.dropFirst(n)
        }
        guard !rest.isEmpty else { return }
        tail += rest
        if tail.count > 2 * kept { tail.removeFirst(tail.count - kept) }
    }

    /// Head, then (when bytes were left out) a line saying how many, then tail.
    var text: String {
        let last = tail.suffix(kept)
        let left = total - head.count - last.count
        let middle = left > 0 ? "\n[... \(left) bytes left out ...]\n" : ""
        return String(decoding: head, as: UTF8.self) + middle + String(decoding: last, as: UTF8.self)
    }
}

extension CommandResult.Ending: CustomStringConvertible {
    /// As the job's outcome says it.
    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signalled(let signal): "was ended by signal \(signal) (\(String(cString: strsignal(signal))))"
        case .timedOut: "did not finish within its timeout and was stopped"
        case .stoppedWithDaemon: "was stopped because the daemon is stopping"
        case .notStarted(let why): "could not start: \(why)"
        }
    }
}
