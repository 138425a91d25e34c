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
        let service = self
        try await runOnThreadUntilShutdown(name: "partition-runtime", wake: doorbell ?? Doorbell()) { stop, wake in
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
    }
}
