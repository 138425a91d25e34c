import ArgumentParser

@main
struct Cardwatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cardwatch",
        abstract:
            "Real-time card-fraud detection: a synthetic card network, features, models, and the live pipeline with its API.",
        discussion: """
            Run the whole pipeline (a first model is bootstrapped on an empty data directory;
            the dashboard is at http://127.0.0.1:8080/):
              cardwatch run
            Or work with files: a month of synthetic history, checked, trained on, imported:
              cardwatch generate --days 30 --seed 1 --out history.jsonl
              cardwatch validate history.jsonl
              cardwatch train --data history.jsonl --promote
              cardwatch import history.jsonl
            """,
        subcommands: Self.commands
    )

    static var commands: [any ParsableCommand.Type] {
        var all: [any ParsableCommand.Type] = [
            Generate.self, Validate.self, Features.self, Train.self, Evaluate.self, Models.self, Run.self, Serve.self,
            Import.self,
            Warehouse.self, Bench.self,
        ]
        #if Kafka
            all.append(KafkaTools.self)
        #endif
        return all
    }
}
