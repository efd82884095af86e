#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DroplineSupport
import Foundation

/// A one-line progress display on standard error for long tasks.
///
/// On a terminal it redraws one line (at most ten times a second) with the count, the rate and an
/// estimate of the time left; when standard error is not a terminal it stays silent, so logs and
/// JSON consumers are not polluted. It is a class because the owner updates it from one thread only.
final class TerminalProgress: ProgressReporter, @unchecked Sendable {
    private let label: String
    private let total: Int?
    private let unit: String
    private let enabled: Bool
    private let start: Double
    private var lastDraw: Double = 0
    private var lock = pthread_mutex_t()
    private(set) var done = 0

    /// Shows progress for `label`; `total` nil when unknown. `enabled` defaults to "stderr is a tty".
    init(_ label: String, total: Int?, unit: String = "items", enabled: Bool? = nil) {
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled ?? (isatty(STDERR_FILENO) == 1)
        self.start = Self.now()
        pthread_mutex_init(&lock, nil)
    }

    deinit { pthread_mutex_destroy(&lock) }

    /// Adds `count` completed items; safe to call from several threads.
    func advance(by count: Int = 1, note: String? = nil) {
        pthread_mutex_lock(&lock)
        done += count
        let now = Self.now()
        let shouldDraw = enabled && (now - lastDraw >= 0.1 || done == total)
        if shouldDraw { lastDraw = now }
        let snapshot = done
        pthread_mutex_unlock(&lock)
        if shouldDraw { draw(done: snapshot, now: now, note: note) }
    }

    /// Ends the line.
    func finish() {
        guard enabled else { return }
        draw(done: done, now: Self.now(), note: nil)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func draw(done: Int, now: Double, note: String?) {
        let elapsed = max(now - start, 1e-9)
        let rate = Double(done) / elapsed
        var line = "\r\(label): \(done)"
        if let total {
            let percent = total > 0 ? 100 * done / total : 100
            line += "/\(total) \(unit) (\(percent)%)"
            if rate > 0, done < total {
                line += ", \(Self.duration(Double(total - done) / rate)) left"
            }
        } else {
            line += " \(unit)"
        }
        line += String(format: ", %.1f %@/s", rate, unit)
        if let note { line += " \(note)" }
        line += "\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }

    static func now() -> Double { Stopwatch.now() }
}
