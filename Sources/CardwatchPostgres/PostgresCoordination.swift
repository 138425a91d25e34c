public import CardwatchPipeline
import Foundation
public import Logging
import NIOCore
import NIOPosix
import PostgresNIO
public import ServiceLifecycle

/// Listens on `PostgresRegistryStore.channel` and rings `wake` at each announcement, so an
/// instance's model follower looks at the registry at once when any process promotes (the
/// follower's own look every 500 ms stays: a notification sent while this listener was
/// reconnecting is not lost, only later). One connection of its own, outside the pool;
/// reconnected with a backoff (100 ms doubling to 5 s) whenever it closes.
public struct PostgresModelNotifications: Service {
    public let endpoint: PostgresEndpoint
    public let wake: Doorbell
    public let logger: Logger

    public init(endpoint: PostgresEndpoint, wake: Doorbell, logger: Logger) {
        self.endpoint = endpoint
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        let endpoint = endpoint
        let bell = wake
        let logger = logger
        try await runOnThreadUntilShutdown(name: "model-notifications") { stop, idle in
            var failures = 0
            while !stop.isStopped {
                let pool = PostgresPool(endpoint, size: 1)
                defer { pool.close() }
                do {
                    try pool.withSession("listening for model promotions") { s in
                        s.connection.addListener(channel: PostgresRegistryStore.channel) { _, _ in bell.ring() }
                        // LISTEN is sent by the listener; this statement runs after it on the connection.
                        try s.execute("SELECT 1")
                        failures = 0
                        while !stop.isStopped && !s.connection.isClosed { idle.wait(seconds: 0.2) }
                    }
                } catch {
                    failures += 1
                    if failures == 1 { logger.warning("model notifications: \(error); reconnecting") }
                }
                if !stop.isStopped { idle.wait(seconds: min(5, 0.1 * Double(1 << min(failures, 6)))) }
            }
        }
    }
}

/// The retraining lease of instances sharing a PostgreSQL registry: a session-level advisory
/// lock (`pg_try_advisory_lock`) held on one connection while the run trains; released at the
/// end, or by the server when that connection goes (a crashed instance holds nothing).
public struct PostgresRetrainingLease: RetrainingLease {
    public let pool: PostgresPool
    static let key = PostgresSchema.migrationLock + 3

    public init(pool: PostgresPool) { self.pool = pool }

    public func whileHeld<T>(_ body: () throws -> T) throws -> T? {
        try pool.withSession("taking the retraining lease") { s in
            guard try s.query("SELECT pg_try_advisory_lock($1)", bindings(Self.key)).rows.first?.decode(Bool.self) == true
            else { return nil }
            defer { _ = try? s.query("SELECT pg_advisory_unlock($1)", bindings(Self.key)) }
            return try body()
        }
    }
}
