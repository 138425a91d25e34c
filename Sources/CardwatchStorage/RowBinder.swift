import GRDB
import GRDBSQLite

/// Binds one row's values straight into a prepared statement and runs it. GRDB's
/// `StatementArguments` box every value in an existential, which cost more than the
/// insert itself for the 49-column silver rows; this is the plain SQLite C API, for the
/// per-transaction inserts only. Text is copied by SQLite (`SQLITE_TRANSIENT`).
struct RowBinder {
    /// Held so the prepared statement lives (and is not finalized) while rows are bound to it.
    private let owner: Statement
    let statement: SQLiteStatement
    private var index: Int32 = 0
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement) {
        owner = statement
        self.statement = statement.sqliteStatement
    }

    mutating func text(_ v: String?) {
        index += 1
        guard var v else {
            sqlite3_bind_null(statement, index)
            return
        }
        v.withUTF8 { b in _ = sqlite3_bind_text(statement, index, b.baseAddress, Int32(b.count), Self.transient) }
    }

    mutating func blob(_ v: ArraySlice<UInt8>) {
        index += 1
        v.withUnsafeBytes { b in _ = sqlite3_bind_blob(statement, index, b.baseAddress, Int32(b.count), Self.transient) }
    }

    mutating func double(_ v: Double?) {
        index += 1
        if let v, !v.isNaN { sqlite3_bind_double(statement, index, v) } else { sqlite3_bind_null(statement, index) }
    }

    mutating func int(_ v: Int64?) {
        index += 1
        if let v { sqlite3_bind_int64(statement, index, v) } else { sqlite3_bind_null(statement, index) }
    }

    mutating func int(_ v: Int) { int(Int64(v)) }

    /// Runs the statement with the bound values and resets it for the next row.
    mutating func run(_ db: Database) throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        index = 0
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }
}
