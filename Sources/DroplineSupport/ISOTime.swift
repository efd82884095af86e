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

    /// The time a string of `string(_:)` names (with or without milliseconds), or nil.
    public static func parse(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = f.date(from: text) { return date }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }
}
