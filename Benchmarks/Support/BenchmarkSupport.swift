import Foundation

/// Helpers shared by the benchmark executables. Not API.

/// Peak resident set size of this process (VmHWM), in bytes; 0 where /proc is not available.
public func peakRSSBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
}

/// The command line, with `--name value` options taken out as they are read; `rest` is what remains.
public struct BenchmarkArguments {
    public private(set) var rest = Array(CommandLine.arguments.dropFirst())

    public init() {}

    public mutating func take(_ name: String) -> String? {
        guard let i = rest.firstIndex(of: name), i + 1 < rest.count else { return nil }
        defer { rest.removeSubrange(i...i + 1) }
        return rest[i + 1]
    }

    public mutating func take(_ name: String, _ fallback: Int) -> Int { take(name).flatMap(Int.init) ?? fallback }
}

/// `body`'s value, or its error as one line on standard error and exit status 1: for what a user's file decides (a
/// model that does not load or prepare), which must not end in a crash report.
@discardableResult
public func orExit<T>(_ body: () throws -> T) -> T {
    do { return try body() } catch {
        let name = URL(fileURLWithPath: CommandLine.arguments.first ?? "benchmark").lastPathComponent
        FileHandle.standardError.write(Data("\(name): error: \(error)\n".utf8))
        exit(1)
    }
}
