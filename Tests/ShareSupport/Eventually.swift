import Foundation

/// Waits until `condition` holds (checked every `every` seconds), up to `seconds`; says whether it held.
public func eventually(_ seconds: Double, every: Double = 0.2, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(UInt32(every * 1_000_000))
    }
    return try condition()
}
