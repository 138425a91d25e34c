import CardwatchPostgres
import Foundation
import Testing

/// The throwaway PostgreSQL server the test command starts (`scripts/postgres.sh`), by the
/// URL of a database to connect to for creating others: nil when the tests run without one,
/// and then the PostgreSQL backends are left out of the contract suites (the test command
/// always sets it, and `CARDWATCH_REQUIRE_POSTGRES=1` makes its absence a failure).
let testPostgresURL: String? = ProcessInfo.processInfo.environment["CARDWATCH_TEST_POSTGRES"]

/// Runs `body` with a pool on a new, empty database of the test server; drops it afterwards.
func withPostgresDatabase<T>(_ body: (PostgresPool) throws -> T) throws -> T {
    let admin = PostgresPool(try PostgresEndpoint.parse(try #require(testPostgresURL)), size: 1)
    defer { admin.close() }
    let name = "cw_test_\(UInt64.random(in: 0...UInt64.max))"
    try admin.withSession("creating \(name)") { try $0.execute("CREATE DATABASE \(name)") }
    defer { _ = try? admin.withSession("dropping \(name)") { try $0.execute("DROP DATABASE \(name) WITH (FORCE)") } }
    var endpoint = admin.endpoint
    endpoint.database = name
    let pool = PostgresPool(endpoint, size: 4)
    defer { pool.close() }
    return try body(pool)
}

@Suite struct PostgresTestServer {
    @Test func theTestServerIsThereWhenRequired() throws {
        guard ProcessInfo.processInfo.environment["CARDWATCH_REQUIRE_POSTGRES"] == "1" else { return }
        let url = try #require(testPostgresURL, "CARDWATCH_REQUIRE_POSTGRES=1 but CARDWATCH_TEST_POSTGRES is not set")
        let pool = PostgresPool(try PostgresEndpoint.parse(url), size: 1)
        defer { pool.close() }
        try pool.withSession("pinging the test server") { try $0.execute("SELECT 1") }
    }
}
