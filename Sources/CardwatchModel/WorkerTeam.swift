import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fixed team of threads for the many short parallel steps of training (a histogram
/// level, a partition, a round's gradients: a dozen per tree, each tens of microseconds).
/// `DispatchQueue.concurrentPerform` parks its workers between calls and wakes them
/// through the kernel, which costs about as much as the work saved; these workers spin
/// briefly for the next step before they sleep, as OpenMP's do. Written by hand because
/// none of the listed libraries offers such a team.
final class WorkerTeam: @unchecked Sendable {
    // `@unchecked Sendable` is sound: `job` is written only by the caller of `perform`
    // before it publishes a new generation (releasing) and cleared only after every worker
    // has reported done (acquiring `pending`); workers read it only between those two
    // points. `mutex`/`condition` guard the sleep and wake-up; everything else is atomic.
    let size: Int
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var threads: [pthread_t] = []
    /// Spins of a waiting worker before it sleeps (some tens of microseconds).
    private static let spins = 20_000

    /// A team of `size` threads counting the caller's: `size - 1` are started.
    init(size: Int) {
        self.size = max(1, size)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for worker in 1..<self.size {
            let context = Unmanaged.passRetained(WorkerContext(team: self, worker: worker)).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(
                &thread, nil,
                { raw in
                    let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                    context.team.work(as: context.worker)
                    return nil
                }, context)
            precondition(started == 0, "could not start a training thread (pthread_create: \(started))")
            threads.append(thread)
        }
    }

    /// Stops and joins the workers; the team cannot be used afterwards.
    func shutdown() {
        pthread_mutex_lock(mutex)
        stopped.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `body(0)` … `body(size - 1)` at once, `body(0)` on the calling thread, and
    /// returns when all have returned.
    func perform(_ body: @Sendable (Int) -> Void) {
        guard size > 1, !threads.isEmpty else {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            pending.store(size - 1, ordering: .relaxed)
            pthread_mutex_lock(mutex)
            generation.add(1, ordering: .releasing)
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
            body(0)
            while pending.load(ordering: .acquiring) > 0 {}
            job = nil
        }
    }

    private func work(as worker: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < Self.spins { spins += 1 }
            if generation.load(ordering: .acquiring) == seen {
                pthread_mutex_lock(mutex)
                while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(condition, mutex) }
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            if stopped.load(ordering: .acquiring) { return }
            run(worker)
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// Kept apart so the worker's reference to the job is released before it reports done.
    @inline(never) private func run(_ worker: Int) { job?(worker) }
}

private final class WorkerContext {
    let team: WorkerTeam
    let worker: Int
    init(team: WorkerTeam, worker: Int) {
        self.team = team
        self.worker = worker
    }
}
