import ArgumentParser
import Foundation

/// The root command. Each subcommand lives in its own file and runs in-process in tests.
public struct WeightClusterCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "weightcluster",
        abstract: "Make trained CNNs smaller by clustering their weights, and measure what it costs.",
        subcommands: [Evaluate.self, Inspect.self, Run.self, Compress.self, Sweep.self, Finetune.self],
        defaultSubcommand: Evaluate.self)

    public init() {}
}

extension WeightClusterCommand {
    /// Parses `arguments`, runs the command, and turns any error into one line on stderr and a non-zero exit.
    /// Help and version requests print as usual.
    public static func runAsMain(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}
