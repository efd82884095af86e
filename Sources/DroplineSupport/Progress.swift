#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How long work reports how far it got: the one interface libraries use. The terminal display
/// (`TerminalProgress`) lives in the executable; libraries never draw on a terminal themselves.
public protocol ProgressReporter: AnyObject, Sendable {
    /// `count` more items are done (`note`: what is happening now, for the display).
    func advance(by count: Int, note: String?)
    /// The work is over.
    func finish()
}

extension ProgressReporter {
    public func advance() { advance(by: 1, note: nil) }
}

/// Makes a reporter for a task: its label, its total when known, and the unit counted.
public typealias ProgressFactory = @Sendable (_ label: String, _ total: Int?, _ unit: String) -> (any ProgressReporter)?

/// Monotonic time, for measuring durations (not wall time).
public enum Stopwatch {
    /// Monotonic seconds.
    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
