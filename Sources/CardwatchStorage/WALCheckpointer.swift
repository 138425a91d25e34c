import CardwatchCore
import CardwatchPipeline
import Foundation
import GRDB
import GRDBSQLite

/// Copies the log's write-ahead log back into the database file from a thread and a
/// connection of its own, every `interval` seconds.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold: that
/// commit (and every request waiting on it) stalled for the tens of milliseconds it takes
/// to copy and fsync megabytes of pages, which was the whole p99 of the HTTP API. A PASSIVE
/// checkpoint on another connection takes no write lock, so commits only ever append to the
/// WAL; once everything is copied and no reader still needs the old frames, the next commit
/// starts the WAL over from its beginning.
///
/// Under a steady stream of commits that moment never comes (a new commit always lands
/// between a checkpoint's end and the next commit's start) and the WAL grew by gigabytes,
/// every read slower with it. So once the WAL holds `restartFrames`, background passes run
/// back to back until little is left to copy, then one checkpoint runs on the writer
/// connection, inside the writers' queue: no frame can be added meanwhile, it copies only
/// what came since the last background pass, and the next commit starts the WAL over. That
/// pass holds every commit up for its copy and its two syncs, a few milliseconds.
final class WALCheckpointer: Sendable {
    private let stopped = StopSignal()
    private let bell = Doorbell()

    /// Opens the second connection; fails when the file cannot be opened. `restartFrames`: a
    /// restart holds commits up for its two syncs (3–6 ms here, longer as the WAL grows), and
    /// a longer WAL makes every page lookup slower (its index is searched segment by
    /// segment); 8,192 frames (32 MiB) did best under the HTTP benchmark (BENCHMARKS.md).
    init(path: String, writer: DatabasePool, interval: Double = 0.05, restartFrames: Int32 = 8_192) throws {
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let handle else {
            sqlite3_close_v2(handle)
            throw PipelineError("cannot open \(path) to checkpoint its WAL (SQLite code \(code))")
        }
        // Another connection (this process's writer, another process) may hold a lock a moment.
        sqlite3_busy_timeout(handle, 10_000)
        // A connection learns the file is in WAL mode from its first read; until then a
        // checkpoint does nothing.
        guard sqlite3_exec(handle, "PRAGMA journal_mode = WAL", nil, nil, nil) == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(handle))
            sqlite3_close_v2(handle)
            throw PipelineError("cannot open \(path) to checkpoint its WAL: \(message)")
        }
        let connection = Connection(handle: handle)
        startThread(named: "wal-checkpoint") { [stopped, bell] in
            while !stopped.isStopped {
                bell.wait(seconds: interval)
                var wal = connection.checkpoint()
                guard wal.frames >= restartFrames else { continue }
                // Catch up first (commits go on meanwhile), so the pass that holds them up copies little.
                for _ in 0..<8 where wal.frames - wal.copied > 512 { wal = connection.checkpoint() }
                _ = try? writer.writeWithoutTransaction { try $0.checkpoint(.passive) }
            }
            connection.close()
        }
    }

    /// Ends the thread (after at most one more checkpoint).
    func stop() {
        stopped.stop()
        bell.ring()
    }

    /// `@unchecked Sendable`: the handle is used only by the checkpoint thread once `init`
    /// has handed it over (SQLite connections may move between threads, not be shared).
    private struct Connection: @unchecked Sendable {
        let handle: OpaquePointer

        /// Copies what it can; returns the WAL's length in frames and how many of them are copied.
        func checkpoint() -> (frames: Int32, copied: Int32) {
            var frames: Int32 = 0
            var copied: Int32 = 0
            // SQLITE_BUSY (another checkpoint, e.g. another process's) just means: next time.
            _ = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied)
            return (frames, copied)
        }

        func close() { sqlite3_close_v2(handle) }
    }
}
