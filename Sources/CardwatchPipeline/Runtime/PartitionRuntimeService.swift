public import ServiceLifecycle

/// A `PartitionRuntime` as a stage of the `ServiceGroup`: on a thread of its own (the runtime
/// is used from one thread), it joins the group, steps until shutdown, and then leaves it,
/// checkpointing and giving up its partitions. A step that fails ends the service with the
/// error after leaving the group (its supervisor restarts it, and the partitions resume from
/// the sink), so a failed runtime never holds partitions.
public struct PartitionRuntimeService: Service {
    /// Builds the runtime (and its consumer) on the service's thread.
    public let makeRuntime: @Sendable () throws -> PartitionRuntime
    /// Rung when records are appended; without a ring the runtime polls every `idle`.
    public let doorbell: Doorbell?
    public let idle: Double

    public init(
        doorbell: Doorbell? = nil, idleSeconds: Double = 0.01, makeRuntime: @escaping @Sendable () throws -> PartitionRuntime
    ) {
        self.makeRuntime = makeRuntime
        self.doorbell = doorbell
        self.idle = idleSeconds
    }

    public func run() async throws {
        let stop = StopSignal()
        let wake = doorbell ?? Doorbell()
        let service = self
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await runOnThread(name: "partition-runtime") {
                    let runtime = try service.makeRuntime()
                    try runtime.start()
                    do {
                        while !stop.isStopped {
                            if try runtime.step() == 0 { wake.wait(seconds: service.idle) }
                        }
                    } catch {
                        try? runtime.stop()
                        throw error
                    }
                    try runtime.stop()
                }
            } onCancel: {
                stop.stop()
                wake.ring()
            }
        } onGracefulShutdown: {
            stop.stop()
            wake.ring()
        }
    }
}
