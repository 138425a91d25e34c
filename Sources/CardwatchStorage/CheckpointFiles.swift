import CardwatchCore
import CardwatchFeatures
import CardwatchPipeline
import Foundation

/// Feature-state checkpoints as files beside the log (`checkpoints/features-<arrival>.snapshot`),
/// built and written on a thread of their own once the batch they follow has committed.
///
/// Inside the batch's transaction, a snapshot (10 MB for a few thousand cards, gigabytes
/// for millions) held SQLite's single writer while it was copied into the WAL: every HTTP
/// request waiting on a commit waited for it too. A checkpoint need not commit with its
/// batch: it is the engine after arrival `a`, written after `a` is committed, and a restart
/// replays the committed arrivals after whichever checkpoint it finds. A file is written
/// under a temporary name, synced, then renamed, so a checkpoint is whole or absent; the
/// newest two are kept.
final class CheckpointFiles: Sendable {
    let directory: String
    /// Builds and writes the newest queued checkpoint; one queued and not started yet is
    /// replaced by a newer one. A failed write is remembered until a later one succeeds.
    private let writer: BatchingWorker<(arrival: Int64, engine: FeatureEngine)>

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        writer = BatchingWorker(name: "snapshot-writer", keepsLatestOnly: true, onFailure: .isRemembered) { queued in
            guard let newest = queued.last else { return }
            let checkpoint = Checkpoint(arrival: newest.arrival, state: newest.engine.snapshot())
            if let failure = Self.save(checkpoint, in: directory) { throw PipelineError(failure) }
        }
    }

    /// Queues a checkpoint of the engine after a committed arrival (its snapshot is built on
    /// this type's thread); a newer one replaces one not started yet.
    func write(_ engine: FeatureEngine, after arrival: Int64) {
        // Refused only after `stop()`, when no checkpoint is wanted any more.
        try? writer.submit((arrival, engine))
    }

    /// Waits until every queued checkpoint is on disk; throws if writing the last one failed.
    func waitUntilWritten() throws { try writer.flush() }

    /// The newest checkpoint of an arrival at most `limit` (a checkpoint can outlive its batch
    /// only when a power loss drops the last commits), after the queued ones are written. A
    /// checkpoint that could not be written (a full disk) left the older ones in place: they
    /// serve, with a longer replay, so a failed write never stops a recovery.
    func latest(atMost limit: Int64) throws -> Checkpoint? {
        try? writer.flush()
        for arrival in try Self.arrivals(in: directory).reversed() where arrival <= limit {
            let data = try Data(contentsOf: URL(fileURLWithPath: Self.path(arrival, in: directory)))
            return Checkpoint(arrival: arrival, state: [UInt8](data))
        }
        return nil
    }

    /// Ends the thread once the queued checkpoint is written.
    func stop() { writer.stop() }

    /// Writes, syncs and renames into place; removes all but the newest two. Returns an error message.
    private static func save(_ checkpoint: Checkpoint, in directory: String) -> String? {
        let final = path(checkpoint.arrival, in: directory)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return "cannot create \(temporary): \(String(cString: strerror(errno)))" }
        var failed: String?
        checkpoint.state.withUnsafeBytes { bytes in
            var at = 0
            while at < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + at, bytes.count - at)
                if n <= 0 {
                    failed = "cannot write \(temporary): \(String(cString: strerror(errno)))"
                    return
                }
                at += n
            }
        }
        if failed == nil && fsync(fd) != 0 { failed = "cannot sync \(temporary): \(String(cString: strerror(errno)))" }
        close(fd)
        if let failed {
            unlink(temporary)
            return failed
        }
        guard rename(temporary, final) == 0 else { return "cannot rename \(temporary): \(String(cString: strerror(errno)))" }
        let dir = open(directory, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)  // the rename itself
            close(dir)
        }
        for old in ((try? arrivals(in: directory)) ?? []).dropLast(2) { unlink(path(old, in: directory)) }
        return nil
    }

    /// The arrivals of the checkpoints on disk, oldest first.
    private static func arrivals(in directory: String) throws -> [Int64] {
        try FileManager.default.contentsOfDirectory(atPath: directory).compactMap { name -> Int64? in
            guard name.hasPrefix("features-"), name.hasSuffix(".snapshot") else { return nil }
            return Int64(name.dropFirst("features-".count).dropLast(".snapshot".count))
        }.sorted()
    }

    private static func path(_ arrival: Int64, in directory: String) -> String {
        let digits = String(arrival)
        return directory + "/features-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".snapshot"
    }
}
