import Foundation
public import Logging
public import ServiceLifecycle

/// Restarts a failing stage up to `restarts` times (waiting a little longer each time);
/// after that the stage stays down and the pipeline reports itself unhealthy, while the
/// other stages go on. A stage that returns normally, or is cancelled, is not restarted.
public struct Supervised: Service {
    public let name: String
    public let restarts: Int
    public let state: PipelineState
    public let logger: Logger
    let body: @Sendable () async throws -> Void
    let backoff: Duration

    public init(
        _ name: String, restarts: Int = 3, state: PipelineState, logger: Logger, backoff: Duration = .milliseconds(200),
        body: @escaping @Sendable () async throws -> Void
    ) {
        self.name = name
        self.restarts = restarts
        self.state = state
        self.logger = logger
        self.backoff = backoff
        self.body = body
    }

    public func run() async throws {
        var failures = 0
        while true {
            do {
                try await body()
                return
            } catch is CancellationError {
                return  // shutting down
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                failures += 1
                let down = failures > restarts
                state.recordFailure(name, error, down: down)
                if down {
                    logger.critical(
                        "stage failed \(failures) times and stays down; the pipeline is unhealthy",
                        metadata: ["stage": "\(name)", "error": "\(error)"])
                    return
                }
                logger.error(
                    "stage failed; restarting (\(failures) of \(restarts))", metadata: ["stage": "\(name)", "error": "\(error)"])
                try? await Task.sleep(for: backoff * failures)
            }
        }
    }
}

/// The processor stage as a service: steps on its own thread until graceful shutdown,
/// idling briefly when the logs have nothing new, and checkpoints when it stops.
public struct ProcessorService: Service {
    public let processor: ProcessorHandle
    /// Rung by in-process writers; without a ring the processor still looks every `idle`
    /// (other processes may append to the log too).
    public let doorbell: Doorbell?
    public let idle: Double

    public init(processor: ProcessorHandle, doorbell: Doorbell? = nil, idle: Double = 0.05) {
        self.processor = processor
        self.doorbell = doorbell
        self.idle = idle
    }

    public func run() async throws {
        let stop = StopSignal()
        let processor = processor
        let doorbell = doorbell
        let idle = idle
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await runOnThread(name: "processor") {
                    while !stop.isStopped {
                        if try processor.withProcessor({ try $0.step() }) == 0 {
                            if let doorbell { doorbell.wait(seconds: idle) } else { usleep(UInt32(idle * 1e6)) }
                        }
                    }
                    try processor.withProcessor { try $0.checkpoint() }
                }
            } onCancel: {
                stop.stop()
                doorbell?.ring()
            }
        } onGracefulShutdown: {
            stop.stop()
            doorbell?.ring()
        }
    }
}

/// The processor behind a lock, so the stage thread, the retraining job and tests can
/// share it. A processor whose step failed may have decided a batch that never committed:
/// it is not used again; the next use rebuilds one with `rebuild` (which recovers from the
/// store: checkpoint, replay), which is what makes a supervised restart exact.
public final class ProcessorHandle: @unchecked Sendable {
    // `@unchecked Sendable`: `processor` and `broken` are touched only inside `lock`.
    private let lock = NSLock()
    private var processor: Processor
    private var broken = false
    private let rebuild: (@Sendable () throws -> Processor)?
    private let pending = PendingModel()
    /// Model swaps, applied at the next batch boundary (they wait for no lock).
    public var models: ModelSwitch { ModelSwitch(pending) }

    public init(_ processor: Processor, rebuild: (@Sendable () throws -> Processor)? = nil) {
        self.processor = processor
        self.rebuild = rebuild
    }

    public func withProcessor<T>(_ body: (Processor) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if broken {
            guard let rebuild else { throw PipelineError("the processor failed earlier and cannot be rebuilt") }
            processor = try rebuild()
            broken = false
        }
        if let scorer = pending.take() { processor.swapModel(scorer) }
        do { return try body(processor) } catch {
            broken = true
            throw error
        }
    }
}

/// Swaps the model of a running processor without waiting for its lock: the swap takes
/// effect at the next batch boundary.
public struct ModelSwitch: Sendable {
    let pending: PendingModel
    init(_ pending: PendingModel) { self.pending = pending }
    public func swap(to scorer: Scorer) { pending.set(scorer) }
}
