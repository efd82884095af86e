import Foundation
import Synchronization

/// The daemon's time: settle periods, schedules, poll intervals and deadlines all read it, so a test
/// drives them with a manual clock in milliseconds instead of sleeping.
public protocol DaemonClock: Sendable {
    /// Seconds since the epoch.
    func now() -> Double
    /// Waits `seconds` (the system clock sleeps; a manual clock moves on by itself at once).
    func sleep(_ seconds: Double)
}

/// Real time.
public struct SystemClock: DaemonClock {
    public init() {}
    public func now() -> Double { Date().timeIntervalSince1970 }
    public func sleep(_ seconds: Double) { usleep(UInt32(max(0, min(seconds, 3600)) * 1_000_000)) }
}

/// Time that moves only when told: `advance(by:)`, or `sleep`, which advances instead of waiting.
public final class ManualClock: DaemonClock {
    let current: Mutex<Double>

    public init(_ start: Double = 1_800_000_000) { current = Mutex(start) }

    public func now() -> Double { current.withLock { $0 } }
    public func sleep(_ seconds: Double) { advance(by: seconds) }
    public func advance(by seconds: Double) { current.withLock { $0 += max(0, seconds) } }
}
