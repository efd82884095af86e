import Foundation
import Synchronization
import SystemFiles

/// Runs `body(0..<count)` on the CPUs this process may use (`Parallel`). After the first error, the iterations not yet started are
/// skipped; that error is thrown once all have returned.
func concurrentForEach(_ count: Int, _ body: @Sendable (Int) throws -> Void) throws {
    let failure = Mutex<(any Error)?>(nil)
    Parallel.forEach(count) { n in
        if failure.withLock({ $0 != nil }) { return }
        do { try body(n) } catch { failure.withLock { $0 = $0 ?? error } }
    }
    if let error = failure.withLock({ $0 }) { throw error }
}
