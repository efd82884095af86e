public import Foundation

/// Times as Dropline writes them everywhere (the index, manifests, model files, logs): ISO 8601 in
/// UTC with milliseconds, e.g. `2026-12-01T10:15:00.123Z`, which sorts as text in time order.
public enum ISOTime {
    /// Now.
    public static func now() -> String { string(Date()) }

    public static func string(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
