import Testing

@testable import CardwatchModel

/// The parallel steps of tree growing (row partition, histograms, the worker team) against
/// naive one-thread references, on random data with missing values, random jobs and team
/// sizes, with the parallel thresholds at one row so small cases take the parallel paths.
@Suite struct TreeBuilderParallelTests {
    struct Case {
        var bins: FeatureBins
        var binned: [UInt8]
        var rows: Int
        var features: Int
        var order: [Int32]
        /// Consecutive, disjoint stretches of `order`, some rows left between them.
        var stretches: [(start: Int, end: Int)]
    }

    static func randomCase(_ rng: inout SplitMix) -> Case {
        let rows = 20 + Int(rng.next() % 3_000)
        let features = 1 + Int(rng.next() % 6)
        var values: [Double] = []
        for _ in 0..<(rows * features) {
            values.append(rng.unit() < 0.1 ? .nan : (rng.unit() * 40).rounded(.down) + (rng.unit() < 0.5 ? rng.unit() : 0))
        }
        let data = FeatureMatrix(columns: features, values: values, labels: (0..<rows).map { _ in rng.unit() < 0.3 })
        let bins = FeatureBins(data, maxBins: 3 + Int(rng.next() % 60), threads: 1 + Int(rng.next() % 3))
        let binned = bins.binned(data, threads: 1 + Int(rng.next() % 3))
        // A random subset of rows, ascending, as after sampling; then stretches over it.
        let order = (0..<Int32(rows)).filter { _ in rng.unit() < 0.8 }
        var stretches: [(Int, Int)] = []
        var at = 0
        while at < order.count {
            at += Int(rng.next() % 3)  // rows of earlier leaves, left alone
            let end = min(order.count, at + 1 + Int(rng.next() % UInt64(max(1, order.count / 3))))
            if at < end { stretches.append((at, end)) }
            at = end
        }
        return Case(bins: bins, binned: binned, rows: rows, features: features, order: order, stretches: stretches)
    }

    @Test func partitionEqualsANaiveStablePartition() {
        var rng = SplitMix(seed: 0xFACE)
        for _ in 0..<300 {
            let c = Self.randomCase(&rng)
            let team = WorkerTeam(size: 1 + Int(rng.next() % 4))
            defer { team.shutdown() }
            var builder = TreeBuilder(
                bins: c.bins, binned: c.binned, rows: c.rows, features: c.features, parameters: GBDTParameters(), team: team)
            builder.parallelPartitionRows = 1
            let jobs = c.stretches.map { s -> PartitionJob in
                let j = Int(rng.next() % UInt64(c.features))
                return PartitionJob(
                    start: s.start, end: s.end, feature: j, bin: UInt8(rng.next() % UInt64(c.bins.cuts[j].count + 1)),
                    missing: c.bins.missing[j], missingLeft: rng.unit() < 0.5)
            }
            var order = c.order
            let mids = builder.partition(&order, jobs)

            var expected = c.order
            var expectedMids: [Int] = []
            for job in jobs {
                let rows = c.order[job.start..<job.end]
                let goesLeft = { (r: Int32) -> Bool in
                    let b = c.binned[Int(r) * c.features + job.feature]
                    return b == job.missing ? job.missingLeft : b <= job.bin
                }
                let left = rows.filter(goesLeft)
                let right = rows.filter { !goesLeft($0) }
                expected.replaceSubrange(job.start..<job.end, with: left + right)
                expectedMids.append(job.start + left.count)
            }
            #expect(order == expected, "team of \(team.size), \(jobs.count) jobs over \(c.order.count) rows")
            #expect(mids == expectedMids)
        }
    }

    @Test func histogramsEqualNaiveSums() {
        var rng = SplitMix(seed: 0xBEEF)
        for _ in 0..<300 {
            let c = Self.randomCase(&rng)
            let team = WorkerTeam(size: 1 + Int(rng.next() % 4))
            defer { team.shutdown() }
            var builder = TreeBuilder(
                bins: c.bins, binned: c.binned, rows: c.rows, features: c.features, parameters: GBDTParameters(), team: team)
            builder.parallelHistogramRows = 1
            let pairs = (0..<(2 * c.rows)).map { _ in rng.unit() * 2 - 1 }
            let use = (0..<c.features).filter { _ in rng.unit() < 0.7 }
            // Destinations in a shuffled order, as smaller children land at 2m or 2m + 1.
            var slots = Array(0..<c.stretches.count)
            slots.shuffle(using: &rng)
            let jobs = c.stretches.enumerated().map { RowJob(start: $1.start, end: $1.end, destination: slots[$0]) }
            let size = c.bins.slots * 2
            var hist = [Double](repeating: .nan, count: max(1, jobs.count) * size)  // stale values must be overwritten
            builder.buildHistograms(c.order, pairs, use, jobs, into: &hist)

            for job in jobs {
                var naive = [Double](repeating: 0, count: size)
                for k in job.start..<job.end {
                    let r = Int(c.order[k])
                    for j in use {
                        let slot = (c.bins.offsets[j] + Int(c.binned[r * c.features + j])) * 2
                        naive[slot] += pairs[2 * r]
                        naive[slot + 1] += pairs[2 * r + 1]
                    }
                }
                let got = Array(hist[job.destination * size..<(job.destination + 1) * size])
                let close = zip(got, naive).allSatisfy { abs($0 - $1) <= 1e-9 * max(1, abs($1)) }
                #expect(close, "job \(job.start)..<\(job.end), team of \(team.size)")
            }
        }
    }

    @Test func piecesCoverEachJobOnceInOrder() {
        var rng = SplitMix(seed: 7)
        for _ in 0..<500 {
            var jobs: [RowJob] = []
            var at = Int(rng.next() % 5)
            for d in 0..<Int(rng.next() % 8) {
                let end = at + Int(rng.next() % 50)  // empty jobs too
                jobs.append(RowJob(start: at, end: end, destination: d))
                at = end + Int(rng.next() % 3)
            }
            let workers = 1 + Int(rng.next() % 4)
            let pieces = Piece.cut(jobs, workers: workers)
            for (j, job) in jobs.enumerated() {
                let mine = pieces.filter { $0.job == j }
                #expect(mine.first?.start == job.start && mine.first?.first == true)
                #expect(mine.last?.end == job.end)
                #expect(zip(mine, mine.dropFirst()).allSatisfy { $0.end == $1.start && !$1.first })
            }
            #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.worker <= $1.worker })
            #expect(pieces.allSatisfy { $0.worker < workers })
        }
    }

    @Test func aTeamRunsEveryWorkerOncePerStep() {
        for size in 1...4 {
            let team = WorkerTeam(size: size)
            var counts = [Int](repeating: 0, count: size)
            counts.withUnsafeMutableBufferPointer { c in
                let shared = CountBuffer(counts: c)
                for _ in 0..<5_000 { team.perform { shared.counts[$0] += 1 } }
            }
            team.shutdown()
            #expect(counts == [Int](repeating: 5_000, count: size))
        }
    }
}

/// Each worker writes only its own element. `@unchecked Sendable`: the buffer outlives the steps.
private struct CountBuffer: @unchecked Sendable {
    let counts: UnsafeMutableBufferPointer<Int>
}
