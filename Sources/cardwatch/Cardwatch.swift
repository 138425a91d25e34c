import ArgumentParser

@main
struct Cardwatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cardwatch",
        abstract: "Real-time card-fraud detection: a synthetic card network, schema checks, and (soon) the whole pipeline.",
        discussion: """
            Start with a month of synthetic history and check it:
              cardwatch generate --days 30 --seed 1 --out history.jsonl
              cardwatch validate history.jsonl
            Or watch a live stream of 50 transactions a second:
              cardwatch generate --tps 50
            """,
        subcommands: [
            Generate.self, Validate.self, Features.self, Train.self, Evaluate.self, Models.self, Run.self, Import.self,
            Bench.self,
        ]
    )
}
