import Foundation
import GRDB

/// An inbox entry the daemon would not read (a link, a special file, an unsafe name, a file outside
/// any batch folder), as recorded in the `events` table with kind `refused`.
public struct Refusal: Codable, Sendable, Equatable {
    public var at: String
    /// The entry, relative to the root.
    public var path: String
    public var reason: String
}

extension Index {
    /// Records that `path` (relative to the root) was refused, and why; the same path and reason is
    /// recorded once. Returns whether it was new.
    @discardableResult
    public func recordRefusal(path: String, reason: String) throws -> Bool {
        try writing { db in
            let known = try db.value(Int.self, sql: "SELECT count(*) FROM events WHERE kind = 'refused' AND subject = ? AND detail = ?",
                                         arguments: [path, reason]) ?? 0
            guard known == 0 else { return false }
            try Self.event(db, kind: "refused", subject: path, detail: reason)
            return true
        }
    }

    /// The most recent refusals, newest first.
    public func refusals(limit: Int = 20) throws -> [Refusal] {
        try reading { db in
            try db.fetchAll(sql: "SELECT at, subject, detail FROM events WHERE kind = 'refused' ORDER BY id DESC LIMIT ?", arguments: [limit])
                .map { Refusal(at: $0["at"], path: $0["subject"], reason: $0["detail"]) }
        }
    }
}
