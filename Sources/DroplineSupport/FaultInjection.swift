#if canImport(Glibc)
import Glibc
#endif

/// Named points where a test can make the process die at once, as a power cut would: when the
/// environment variable DROPLINE_FAULT names the point, the process sends itself SIGKILL there.
/// Crash-safety tests use it to stop real runs between any two steps; it does nothing otherwise.
public enum FaultInjection {
    public static func point(_ name: String) {
        guard let wanted = getenv("DROPLINE_FAULT"), String(cString: wanted) == name else { return }
        kill(getpid(), SIGKILL)
    }
}
