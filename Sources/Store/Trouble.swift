import Foundation
import GRDB
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// Causes that go away by themselves: the index locked by another process for longer than the busy
/// timeout, a full disk or quota, a write the file server refused for lack of space. The daemon waits
/// and retries work that failed for one of them (its status says it is degraded, and why) instead of
/// failing the work or stopping.
public enum Trouble {
    /// What went wrong, in a few words, when `error` is transient; nil for any other error.
    public static func transient(_ error: any Error) -> String? {
        if let postgres = error as? PostgresIndexError {
            if postgres.isConnectionLost { return "the index's PostgreSQL server cannot be reached (\(postgres.message))" }
            // 53xxx: out of resources (disk full, too many connections); 40001/40P01: lost a race, try again
            if let state = postgres.sqlState, state.hasPrefix("53") || state == "40001" || state == "40P01" { return "the index's PostgreSQL server is busy (\(postgres.message))" }
            return nil
        }
        if let database = error as? DatabaseError {
            switch database.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED: return "the index is locked by another process (\(database.message ?? "database is locked"))"
            case .SQLITE_FULL: return "the disk holding the index is full"
            case .SQLITE_IOERR:
                return database.extendedResultCode == .SQLITE_IOERR_WRITE || database.extendedResultCode == .SQLITE_IOERR_FSYNC
                    ? "the index cannot be written (I/O error: is the disk full?)" : nil
            default: return nil
            }
        }
        if let system = error as? SystemError, Self.spaceCodes.contains(system.errno) {
            return "no space left for \(system.path ?? "a file") (\(system.reason))"
        }
        if let cocoa = error as? CocoaError, cocoa.code == .fileWriteOutOfSpace || cocoa.code == .fileWriteVolumeReadOnly {
            return "no space left on the root's disk (\(cocoa.localizedDescription))"
        }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain, Self.spaceCodes.contains(Int32(ns.code)) { return "no space left on the root's disk" }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
           Self.spaceCodes.contains(Int32(underlying.code)) {
            return "no space left on the root's disk"
        }
        // components report some failures as text only; errno's own words are the last resort
        let text = String(describing: error)
        for code in Self.spaceCodes where text.contains(String(cString: strerror(code))) { return "no space left on the root's disk (\(text.prefix(200)))" }
        if text.contains("database is locked") { return "the index is locked by another process" }
        return nil
    }

    static let spaceCodes: [Int32] = [ENOSPC, EDQUOT]
}
