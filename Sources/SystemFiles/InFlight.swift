import Foundation
import Synchronization

/// Work that mostly waits on reads: `DispatchQueue.concurrentPerform` runs as many iterations at
/// once as there are cores, which leaves a network mount idle while each read waits for its round
/// trips. This keeps `width` iterations in flight on threads of their own (reading 400 photos over
/// sshfs on loopback: 1.1 s one at a time, 0.56 s eight at a time).
public enum InFlight {
    public static let defaultWidth = 8

    /// Runs `body(0..<count)` with up to `width` at once. After the first error, iterations not yet
    /// started are skipped; that error is thrown once all have returned.
    public static func forEach(_ count: Int, width: Int = defaultWidth, _ body: @escaping @Sendable (Int) throws -> Void) throws {
        guard count > 0 else { return }
        let next = Atomic<Int>(0)
        let failure = Mutex<(any Error)?>(nil)
        let group = DispatchGroup()
        for _ in 0..<min(width, count) {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while failure.withLock({ $0 == nil }) {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < count else { return }
                    do { try body(i) } catch { failure.withLock { $0 = $0 ?? error } }
                }
            }
            thread.start()
        }
        group.wait()
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
