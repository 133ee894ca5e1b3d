import ArgumentParser

/// The root command. Each subcommand lives in its own file and runs in-process in tests.
public struct WeightClusterCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "weightcluster",
        abstract: "Make trained CNNs smaller by clustering their weights, and measure what it costs.",
        subcommands: [Evaluate.self, Inspect.self, Run.self],
        defaultSubcommand: Evaluate.self)

    public init() {}
}
