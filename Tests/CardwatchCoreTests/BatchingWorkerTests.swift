import CardwatchCore
import Foundation
import PropertyBased
import Synchronization
import Testing

private struct Injected: Error, Equatable {
    var n: Int
}

/// What a worker's handler saw, group by group.
private final class Seen: Sendable {
    let groups = Mutex<[[(producer: Int, seq: Int, weight: Int)]]>([])
    var items: [(producer: Int, seq: Int, weight: Int)] { groups.withLock { $0.flatMap { $0 } } }
}

@Suite struct BatchingWorkerTests {
    /// Random producers, weights, capacities and handler speeds, against the naive model: every
    /// item handled once, each producer's in its order, and no group over capacity unless alone.
    @Test func everyItemIsHandledOnceInOrderAndGroupsRespectTheCapacity() async {
        let scripts = Generator<
            (capacity: Int, producers: [[Int]], slowEvery: Int), Shrink.None<(capacity: Int, producers: [[Int]], slowEvery: Int)>
        > { rng in
            let capacity = Int.random(in: 1...40, using: &rng)
            let producers = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                (0..<Int.random(in: 0...300, using: &rng)).map { _ in Int.random(in: 1...12, using: &rng) }
            }
            return (capacity, producers, Int.random(in: 2...20, using: &rng))
        }
        await propertyCheck(count: 25, input: scripts) { script in
            let seen = Seen()
            let slowEvery = script.slowEvery
            let worker = BatchingWorker<(producer: Int, seq: Int, weight: Int)>(
                name: "test-worker", capacity: script.capacity, weigh: { $0.weight }
            ) { group in
                let n = seen.groups.withLock { g in
                    g.append(group)
                    return g.count
                }
                if n % slowEvery == 0 { usleep(200) }
            }
            let done = DispatchGroup()
            for (p, weights) in script.producers.enumerated() {
                done.enter()
                startThread(named: "producer-\(p)") {
                    for (k, w) in weights.enumerated() { try? worker.submit((p, k, w)) }
                    done.leave()
                }
            }
            done.wait()
            try? worker.flush()
            worker.stop()
            let items = seen.items
            #expect(items.count == script.producers.reduce(0) { $0 + $1.count })
            for (p, weights) in script.producers.enumerated() {
                let mine = items.filter { $0.producer == p }
                #expect(mine.map(\.seq) == Array(weights.indices), "producer \(p): each once, in order")
            }
            for group in seen.groups.withLock({ $0 }) {
                #expect(group.count == 1 || group.reduce(0) { $0 + $1.weight } <= script.capacity)
            }
        }
    }

    @Test func aFullQueueMakesTheSubmitterWait() throws {
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let handled = Atomic<Int>(0)
        let worker = BatchingWorker<Int>(name: "test-full", capacity: 2) { group in
            if group.contains(0) {
                started.signal()
                gate.wait()
            }
            handled.add(group.count, ordering: .relaxed)
        }
        try worker.submit(0)
        started.wait()  // the thread holds item 0 and blocks on the gate: the queue is empty
        try worker.submit(1)
        try worker.submit(2)  // the queue is now at its capacity
        let submitted = Atomic<Bool>(false)
        let third = DispatchSemaphore(value: 0)
        startThread(named: "test-submitter") {
            try? worker.submit(3)
            submitted.store(true, ordering: .releasing)
            third.signal()
        }
        usleep(100_000)
        let early = submitted.load(ordering: .acquiring)
        #expect(!early, "a submission past the capacity waits")
        gate.signal()
        third.wait()
        try worker.flush()
        #expect(handled.load(ordering: .relaxed) == 4)
        worker.stop()
    }

    @Test func keepingTheLatestOnlyReplacesWhatHasNotStarted() throws {
        let gate = DispatchSemaphore(value: 0)
        let seen = Mutex<[Int]>([])
        let worker = BatchingWorker<Int>(name: "test-latest", keepsLatestOnly: true) { group in
            if group == [0] { gate.wait() }
            seen.withLock { $0 += group }
        }
        try worker.submit(0)
        usleep(50_000)
        for i in 1...5 { try worker.submit(i) }
        gate.signal()
        try worker.flush()
        #expect(seen.withLock { $0 } == [0, 5])
        worker.stop()
    }

    @Test func aFailureStopsTheWorkerAndReachesEveryLaterCall() throws {
        let seen = Mutex<[Int]>([])
        let worker = BatchingWorker<Int>(name: "test-stops") { group in
            seen.withLock { $0 += group }
            if group.contains(3) { throw Injected(n: 3) }
        }
        for i in 0..<3 { try worker.submit(i) }
        try worker.flush()
        try worker.submit(3)
        #expect(throws: Injected(n: 3)) { try worker.flush() }
        #expect(throws: Injected(n: 3)) { try worker.check() }
        #expect(throws: Injected(n: 3)) { try worker.submit(4) }
        #expect(seen.withLock { $0 } == [0, 1, 2, 3])
    }

    @Test func aRememberedFailureLastsUntilAGroupSucceeds() throws {
        let worker = BatchingWorker<Int>(name: "test-remember", onFailure: .isRemembered) { group in
            if group.contains(-1) { throw Injected(n: -1) }
        }
        try worker.submit(-1)
        #expect(throws: Injected(n: -1)) { try worker.flush() }
        try worker.check()  // not stopped
        try worker.submit(1)
        try worker.flush()
        worker.stop()
    }

    @Test func stopDrainsWhatWaitsThenRefuses() throws {
        let seen = Mutex<[Int]>([])
        let worker = BatchingWorker<Int>(name: "test-stop") { group in
            usleep(2000)
            seen.withLock { $0 += group }
        }
        for i in 0..<50 { try worker.submit(i) }
        worker.stop()
        #expect(throws: BatchingWorkerStopped.self) { try worker.submit(50) }
        try worker.flush()
        #expect(seen.withLock { $0 } == Array(0..<50))
    }
}
