// swift-tools-version:6.1
import PackageDescription

// Modules follow the data flow of ARCHITECTURE.md: Core (domain types, schema,
// codecs) ← Generator (the synthetic world) ← the `cardwatch` command line tool.
let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Cardwatch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cardwatch", targets: ["cardwatch"]),
        .library(name: "CardwatchCore", targets: ["CardwatchCore"]),
        .library(name: "CardwatchGenerator", targets: ["CardwatchGenerator"]),
        .library(name: "CardwatchFeatures", targets: ["CardwatchFeatures"]),
        .library(name: "CardwatchModel", targets: ["CardwatchModel"]),
        .library(name: "CardwatchStorage", targets: ["CardwatchStorage"]),
        .library(name: "CardwatchPipeline", targets: ["CardwatchPipeline"]),
        .library(name: "CardwatchServer", targets: ["CardwatchServer"]),
        .library(name: "CardwatchPostgres", targets: ["CardwatchPostgres"]),
        .library(name: "CardwatchRedis", targets: ["CardwatchRedis"]),
    ],
    // Kafka needs librdkafka (a system library): off by default, so that the README's run command
    // builds on a fresh machine; `--traits Kafka` (the test command's) builds it in.
    traits: [
        .trait(name: "Kafka", description: "The Kafka log backend, through librdkafka (Debian librdkafka-dev)."),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Crypto derives card_id from a PAN by a keyed hash (HMAC-SHA256); the PAN is never kept.
        .target(
            name: "CardwatchCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: upcoming
        ),
        .target(
            name: "CardwatchGenerator",
            dependencies: ["CardwatchCore", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: upcoming
        ),
        .target(name: "CardwatchFeatures", dependencies: ["CardwatchCore"], swiftSettings: upcoming),
        .target(name: "CardwatchModel", swiftSettings: upcoming),
        .target(
            name: "CardwatchPipeline",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchModel", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "CardwatchStorage",
            dependencies: [
                "CardwatchModel", "CardwatchPipeline", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: upcoming
        ),
        // The warehouse, checkpoints and decision sink on PostgreSQL (the shared store of many instances).
        .target(
            name: "CardwatchPostgres",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchModel", "CardwatchPipeline", "CardwatchStorage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        // The online feature store on Redis: a RESP client over SwiftNIO (no system library).
        .target(
            name: "CardwatchRedis",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchPipeline", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        // librdkafka, found by pkg-config (Debian librdkafka-dev).
        .systemLibrary(
            name: "CRdKafka", path: "Sources/Kafka/CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // The log on Apache Kafka: producer, group consumer, reader, the outputs' topics, the mock cluster.
        .target(
            name: "CardwatchKafka",
            dependencies: [
                "CardwatchCore", "CardwatchPipeline", .product(name: "Logging", package: "swift-log"),
                .target(name: "CRdKafka", condition: .when(traits: ["Kafka"])),
            ],
            path: "Sources/Kafka/CardwatchKafka",
            swiftSettings: upcoming
        ),
        .target(
            name: "CardwatchServer",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchModel", "CardwatchPipeline",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                // The channel handler that answers single decisions on the event loop.
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // The connection guards around Hummingbird's HTTP/1 decoder (limits, timeouts, malformed requests).
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdCore", package: "hummingbird"), .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "cardwatch",
            dependencies: [
                "CardwatchCore", "CardwatchGenerator", "CardwatchFeatures", "CardwatchModel", "CardwatchStorage",
                "CardwatchPipeline", "CardwatchServer", "CardwatchPostgres", "CardwatchRedis",
                .target(name: "CardwatchKafka", condition: .when(traits: ["Kafka"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchCoreTests",
            dependencies: [
                "CardwatchCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchGeneratorTests",
            dependencies: ["CardwatchCore", "CardwatchGenerator"],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchFeaturesTests",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchGenerator",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchModelTests",
            dependencies: [
                "CardwatchModel",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchStorageTests",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchGenerator", "CardwatchModel", "CardwatchPipeline",
                "CardwatchStorage", "CardwatchPostgres", "CardwatchRedis", .product(name: "GRDB", package: "GRDB.swift"),
                .target(name: "CardwatchKafka", condition: .when(traits: ["Kafka"])),
                .product(name: "Logging", package: "swift-log"), .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CardwatchServerTests",
            dependencies: [
                "CardwatchCore", "CardwatchFeatures", "CardwatchGenerator", "CardwatchModel", "CardwatchPipeline",
                "CardwatchStorage", "CardwatchServer", "CardwatchRedis", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
    ]
)
