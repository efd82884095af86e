import Foundation
import GRDB

/// Which SQL the backend speaks, for the few statements that differ.
enum SQLDialect: Sendable {
    case sqlite, postgresql
}

/// One transaction on the index, on either backend. The index's queries are written once, in SQL
/// that SQLite and PostgreSQL both accept (`?` placeholders, numbered for PostgreSQL; `ON CONFLICT`;
/// `RETURNING`); rows come back as GRDB rows, so every record decodes the same way from both.
///
/// Values cross as SQLite's storage classes (integers, doubles, text, blobs, NULL), which is also
/// what the PostgreSQL schema stores (`Schema.postgresql`): BIGINT, DOUBLE PRECISION, TEXT.
final class IndexTransaction {
    typealias Arguments = [(any DatabaseValueConvertible)?]

    enum Backend {
        case sqlite(Database)
        case postgresql(PostgresSession)
    }

    let backend: Backend
    /// Rows changed by the last `execute`.
    private(set) var changesCount = 0

    init(_ backend: Backend) { self.backend = backend }

    var dialect: SQLDialect {
        switch backend {
        case .sqlite: .sqlite
        case .postgresql: .postgresql
        }
    }

    func execute(sql: String, arguments: Arguments = []) throws {
        switch backend {
        case .sqlite(let db):
            try db.execute(sql: sql, arguments: StatementArguments(arguments))
            changesCount = db.changesCount
        case .postgresql(let session):
            changesCount = try session.query(sql, arguments).affected
        }
    }

    func fetchAll(sql: String, arguments: Arguments = []) throws -> [Row] {
        switch backend {
        case .sqlite(let db): try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments))
        case .postgresql(let session): try session.query(sql, arguments).rows.map { Row($0.named) }
        }
    }

    func fetchOne(sql: String, arguments: Arguments = []) throws -> Row? {
        try fetchAll(sql: sql, arguments: arguments).first
    }

    /// The first column of every row.
    func values<T: DatabaseValueConvertible>(_ type: T.Type, sql: String, arguments: Arguments = []) throws -> [T] {
        switch backend {
        case .sqlite(let db): return try T.fetchAll(db, sql: sql, arguments: StatementArguments(arguments))
        case .postgresql(let session):
            return try session.query(sql, arguments).rows.map { row in
                guard let first = row.ordered.first else { throw StoreError("the query returned no column: \(sql)") }
                guard let value = T.fromDatabaseValue(first) else { throw StoreError("cannot read \(first) as \(T.self): \(sql)") }
                return value
            }
        }
    }

    /// The first column of the first row (nil: no row, or NULL).
    func value<T: DatabaseValueConvertible>(_ type: T.Type, sql: String, arguments: Arguments = []) throws -> T? {
        switch backend {
        case .sqlite(let db): return try T.fetchOne(db, sql: sql, arguments: StatementArguments(arguments))
        case .postgresql(let session):
            guard let first = try session.query(sql, arguments).rows.first?.ordered.first, !first.isNull else { return nil }
            guard let value = T.fromDatabaseValue(first) else { throw StoreError("cannot read \(first) as \(T.self): \(sql)") }
            return value
        }
    }

    func records<T: FetchableRecord>(_ type: T.Type, sql: String, arguments: Arguments = []) throws -> [T] {
        try fetchAll(sql: sql, arguments: arguments).map { try T(row: $0) }
    }

    func record<T: FetchableRecord>(_ type: T.Type, sql: String, arguments: Arguments = []) throws -> T? {
        try fetchOne(sql: sql, arguments: arguments).map { try T(row: $0) }
    }

    /// Seconds between two ISO 8601 text columns, as SQL.
    func secondsBetween(_ start: String, _ end: String) -> String {
        switch dialect {
        case .sqlite: "(julianday(\(end)) - julianday(\(start))) * 86400"
        case .postgresql: "extract(epoch FROM (\(end))::timestamptz - (\(start))::timestamptz)::double precision"
        }
    }

    /// The order rows of a table without an id were inserted in.
    var insertionOrder: String {
        switch dialect {
        case .sqlite: "rowid"
        case .postgresql: "seq"
        }
    }
}
