import CardwatchPipeline
import CardwatchStorage
import Foundation
import GRDB
import Testing

@Suite struct TopologyTests {
    @Test func theEmbeddedTopologyKeepsEverythingInTheDataDirectory() throws {
        var t = try Topology.parse(
            log: nil, dataDirectory: "/var/lib/cw", partitions: 4, sources: [.generator(transactionsPerSecond: 50)])
        #expect(t == (try Topology.parse(log: "sqlite", dataDirectory: "/var/lib/cw", partitions: 4, sources: t.sources)))
        #expect(t.log == .sqlite(path: "/var/lib/cw/log.sqlite"))
        #expect(t.warehouse == t.log, "the embedded sink commits in the log's file")
        #expect(t.registry == .sqlite(path: "/var/lib/cw/registry.sqlite"))
        #expect(t.checkpoints == .files(directory: "/var/lib/cw/checkpoints"))
        #expect(t.logDirectory == "/var/lib/cw")
        #expect(t.text.contains("log: sqlite:/var/lib/cw/log.sqlite, 4 partitions"))
        // An existing log keeps its own partitioning, whatever was asked.
        t.opened = .init(partitions: 2, partitioner: "fnv1a64")
        #expect(t.text.contains("2 partitions, keys by fnv1a64"))
        #expect(t.json["partitions"] as? Int == 2 && t.json["partitioner"] as? String == "fnv1a64")
        #expect(t.text.contains("generator (50.0 tx/s)"))
    }

    @Test func unknownLogBackendsAreRefusedByName() {
        for (value, says) in [("sqlite:/elsewhere", "--data-dir"), ("postgres://db", "unknown backend 'postgres'")] {
            do {
                _ = try Topology.parse(log: value, dataDirectory: "/d", partitions: nil, sources: [])
                Issue.record("--log \(value) was accepted")
            } catch {
                #expect(error.description.contains(says), "\(error)")
            }
        }
    }

    /// Kafka is a log in builds with the `Kafka` trait (the test command's); without it,
    /// `--log kafka://` says how to get a build that has it.
    @Test func aKafkaLogNeedsTheKafkaTrait() throws {
        let url = "kafka://b1:9092,b2:9092"
        #if Kafka
            let t = try Topology.parse(
                log: url, warehouse: "postgres://cw@db:5432/fraud", dataDirectory: "/d", partitions: 6, sources: [])
            #expect(t.log == .kafka(url: url) && t.consumerGroup == "cardwatch")
            #expect(t.text.contains("log: \(url), 6 partitions"))
            #expect(t.text.contains("processor: consumer group cardwatch on the Kafka cluster"))
            #expect(t.json["log"] as? String == url)
            // Alone on the SQLite warehouse: a file of its own in the data directory.
            let alone = try Topology.parse(log: url, dataDirectory: "/d", partitions: nil, sources: [])
            #expect(alone.warehouse == .sqlite(path: "/d/kafka/log.sqlite") && alone.serving == alone.warehouse)
        #else
            #expect {
                try Topology.parse(log: url, dataDirectory: "/d", partitions: nil, sources: [])
            } throws: { ($0 as? TopologyError)?.description.contains("--traits Kafka") == true }
        #endif
    }

    @Test func aPostgresWarehouseHoldsTheDecisionsTheReadsAndTheCheckpoints() throws {
        let url = "postgres://cw@db.internal:5432/fraud"
        let t = try Topology.parse(log: nil, warehouse: url, dataDirectory: "/d", partitions: nil, sources: [])
        #expect(t.log == .sqlite(path: "/d/log.sqlite"))
        #expect(t.warehouse == .postgres(url: url) && t.serving == t.warehouse && t.checkpoints == t.warehouse)
        #expect(t.text.contains("decision sink (warehouse): \(url)"))
        #expect(
            try Topology.parse(log: nil, warehouse: "sqlite", dataDirectory: "/d", partitions: nil, sources: []).warehouse
                == t.log)
        #expect(throws: TopologyError.self) {
            try Topology.parse(log: nil, warehouse: "mysql://db/x", dataDirectory: "/d", partitions: nil, sources: [])
        }
    }

    /// `--print-topology` reads an existing log's partitioning without opening the log.
    @Test func anExistingLogsPartitioningIsReadWithoutOpeningIt() throws {
        try withDataDirectory { dir in
            #expect(try SQLiteEventLog.partitioning(directory: dir) == nil, "no log yet")
            do { _ = try SQLiteEventLog(directory: dir, partitions: 3) }
            let found = try #require(try SQLiteEventLog.partitioning(directory: dir))
            #expect(found.partitions == 3 && found.partitioner == .murmur2)
            // A log from before the partitioner was recorded: read as FNV-1a, and left as it is
            // (opening it would record the partitioner).
            let path = URL(fileURLWithPath: dir).appendingPathComponent(SQLiteEventLog.fileName).path
            var config = Configuration()
            config.busyMode = .timeout(10)
            let queue = try DatabaseQueue(path: path, configuration: config)
            try queue.write { try $0.execute(sql: "DELETE FROM meta WHERE key = 'partitioner'") }
            try queue.close()
            #expect(try SQLiteEventLog.partitioning(directory: dir)?.partitioner == .fnv1a64)
            let after = try DatabaseQueue(path: path, configuration: config)
            #expect(try after.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM meta WHERE key = 'partitioner'") } == 0)
            try after.close()
        }
    }
}
