import CardwatchPipeline
import CardwatchServer
import ServiceLifecycle

/// An API node's live feed: the warehouse's newest alerts, asked for every half second, the
/// ones not seen at the last ask published to the feed's subscribers (oldest first). Live
/// only, as the processors' feed is: a dashboard loads the history from `/alerts/recent`, and
/// more than `window` alerts within one interval lose their oldest.
struct AlertPoller: Sendable {
    let serving: any ServingStore
    let feed: AlertFeed
    var interval: Duration = .milliseconds(500)
    var window = 500

    func run() async throws {
        var previous: Set<String>?
        while !Task.isShuttingDownGracefully {
            let recent = try serving.recentAlerts(limit: window)
            if let previous {
                feed.publish(recent.filter { !previous.contains($0.transactionID) }.reversed())
            }
            previous = Set(recent.map(\.transactionID))
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }
}
