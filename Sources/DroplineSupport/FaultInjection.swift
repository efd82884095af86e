#if canImport(Glibc)
import Glibc
#endif

/// Named points where a test can make the process die at once, as a power cut would: when the
/// environment variable DROPLINE_FAULT names the point, the process sends itself SIGKILL there.
/// Crash-safety tests use it to stop real runs between any two steps; it does nothing otherwise.
/// DROPLINE_PAUSE=<point>=<seconds> makes it wait there instead (two-process tests: a hand-run
/// command beside a daemon that is in the middle of a run).
public enum FaultInjection {
    public static func point(_ name: String) {
        if let pause = getenv("DROPLINE_PAUSE") {
            let parts = String(cString: pause).split(separator: "=")
            if parts.count == 2, parts[0] == name, let seconds = Double(parts[1]) { usleep(UInt32(min(seconds, 600) * 1_000_000)) }
        }
        guard let wanted = getenv("DROPLINE_FAULT"), String(cString: wanted) == name else { return }
        kill(getpid(), SIGKILL)
    }
}
