/// Whether this build has the Kafka log (the package's `Kafka` trait: `swift build --traits
/// Kafka`, which needs librdkafka), and what to do when it has not.
public enum KafkaSupport {
    /// The consumer group of Cardwatch's instances on Kafka (`--group`'s default).
    public static let defaultGroup = "cardwatch"

    /// Why `--log kafka://…` cannot run in this build, and how to get a build that can (nil: it can).
    public static var missing: String? {
        #if Kafka
            return nil
        #else
            return "this build has no Kafka support; it is a package trait: install librdkafka "
                + "(apt-get install librdkafka-dev) and build with `swift build -c release --traits Kafka` "
                + "(or `swift run -c release --traits Kafka cardwatch …`)"
        #endif
    }
}
