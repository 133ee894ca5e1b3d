import ArgumentParser
import Foundation

/// The root command. Each subcommand lives in its own file and runs in-process in tests.
public struct WeightClusterCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "weightcluster",
        abstract: "Make trained CNNs smaller by clustering their weights, and measure what it costs.",
        version: "0.5.0",
        subcommands: [Evaluate.self, Inspect.self, Run.self, Compress.self, Sweep.self, Finetune.self, Export.self],
        defaultSubcommand: Evaluate.self)

    public init() {}
}

extension WeightClusterCommand {
    /// Our own errors print their description; a Foundation error (which would print as an
    /// "Error Domain=NSCocoaErrorDomain Code=…" dump) becomes its file and a short reason.
    static func oneLine(_ error: Error) -> String {
        if let cocoa = error as? CocoaError {
            let path = cocoa.filePath ?? cocoa.url?.path ?? "a file"
            let reason = switch cocoa.code {
            case .fileWriteFileExists: "a file with that name already exists"
            case .fileNoSuchFile, .fileReadNoSuchFile: "no such file or folder"
            case .fileWriteNoPermission, .fileReadNoPermission: "permission denied"
            case .fileWriteOutOfSpace: "the disk is full"
            default: "the operation failed (Foundation code \(cocoa.code.rawValue))"
            }
            return "\(path): \(reason)"
        }
        if type(of: error) == NSError.self { return (error as NSError).localizedDescription.split(separator: "\n").first.map(String.init) ?? "failed" }
        let text = message(for: error)
        return text.split(separator: "\n").first.map(String.init) ?? "\(error)"
    }

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
            let message = oneLine(error)
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}
