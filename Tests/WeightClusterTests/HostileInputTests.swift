import Foundation
import Testing

/// The hostile corpus (`Fixtures/hostile`, written by `Scripts/make_hostile_corpus.py --small`): each case runs
/// the built binary and must end as its manifest says — an `error` case with exactly one stderr line starting
/// "error: " and a non-zero exit, an `ok` case with exit 0 — never with a signal or a hang, and without the
/// planted file outside the model folders ever reaching an output.
enum HostileCorpus {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var expect: String
        var setup: [String]
        var arguments: [String]
        var testDescription: String { name }
    }

    static let secret = Data("PLANTED-SECRET-0123456789abcdef".utf8)

    static let cases: [Case] = {
        guard let text = try? String(contentsOfFile: Fixtures.path("hostile/cases.tsv"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Case(name: f[0], expect: f[1], setup: f[2].split(separator: ";").map(String.init),
                        arguments: f[3].split(separator: "|", omittingEmptySubsequences: false).map(String.init))
        }
    }()

    /// One scratch copy of the corpus for the whole suite, with every case's setup done.
    static let root: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-hostile-\(UUID().uuidString)")
        try! FileManager.default.copyItem(at: URL(fileURLWithPath: Fixtures.path("hostile")), to: dir)
        try! FileManager.default.createDirectory(at: dir.appendingPathComponent("out"), withIntermediateDirectories: true)
        for c in cases { try! setUp(c.setup, root: dir.path) }
        return dir.path
    }()

    static func setUp(_ steps: [String], root: String) throws {
        let fm = FileManager.default
        for step in steps where !step.isEmpty {
            let (kind, rest) = (step.prefix { $0 != ":" }, step.drop { $0 != ":" }.dropFirst())
            let argument = rest.replacingOccurrences(of: "{root}", with: root)
            switch kind {
            case "secret":
                try fm.createDirectory(atPath: root + "/outside", withIntermediateDirectories: true)
                try secret.write(to: URL(fileURLWithPath: root + "/outside/secret.bin"))
            case "fifo":
                if !fm.fileExists(atPath: root + "/" + argument) { #expect(mkfifo(root + "/" + argument, 0o600) == 0) }
            case "dir":
                try fm.createDirectory(atPath: root + "/" + argument, withIntermediateDirectories: true)
            case "file":
                try Data(count: 64).write(to: URL(fileURLWithPath: root + "/" + argument))
            case "link":
                let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
                try? fm.removeItem(atPath: root + "/" + parts[0])
                try fm.createSymbolicLink(atPath: root + "/" + parts[0], withDestinationPath: parts[1])
            default:
                Issue.record("unknown setup step \(step)")
            }
        }
    }

    struct Outcome {
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var stdout: String
        var stderr: String
    }

    /// Runs the binary with a time limit; output goes to files so nothing can block on a full pipe.
    static func run(_ arguments: [String], seconds: Double = 60) throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline { timedOut = true; process.terminate(); break }
            usleep(5_000)
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                       timedOut: timedOut, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                       stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

@Suite(.serialized) struct HostileInputTests {
    @Test func theCorpusIsThere() {
        #expect(HostileCorpus.cases.count >= 120)
    }

    @Test(arguments: HostileCorpus.cases)
    func hostileInput(_ c: HostileCorpus.Case) throws {
        let root = HostileCorpus.root
        let result = try HostileCorpus.run(c.arguments.map { $0.replacingOccurrences(of: "{root}", with: root) })
        #expect(!result.timedOut, "\(c.name) did not finish")
        #expect(!result.signalled, "\(c.name) ended with signal \(result.status): \(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        if c.expect == "ok" {
            #expect(result.status == 0, "\(c.name): \(result.stderr)")
            #expect(!lines.contains { $0.hasPrefix("error:") }, "\(c.name): \(result.stderr)")
        } else {
            #expect(result.status != 0, "\(c.name) exited 0: \(result.stdout)")
            // Exactly one error line, the last one (a command that had started, like sweep, may have printed progress).
            #expect(lines.filter { $0.hasPrefix("error") }.count == 1 && lines.last?.hasPrefix("error: ") == true,
                    "\(c.name): \(result.stderr)")
            #expect(lines.count == 1 || c.arguments.first == "sweep", "\(c.name): \(result.stderr)")
        }
        // The planted file is never changed and never copied into an output.
        let secretPath = root + "/outside/secret.bin"
        if FileManager.default.fileExists(atPath: secretPath) {
            #expect(FileManager.default.contents(atPath: secretPath) == HostileCorpus.secret)
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/out")) ?? []
        where (try? FileManager.default.attributesOfItem(atPath: root + "/out/" + name)[.type] as? FileAttributeType) == .typeRegular {
            let data = FileManager.default.contents(atPath: root + "/out/" + name) ?? Data()
            #expect(data.range(of: HostileCorpus.secret.prefix(14)) == nil, "\(name) holds the planted secret")
        }
    }

    /// A refused location says the same whether or not the file it names exists, so a model cannot probe.
    @Test func refusalsDoNotRevealWhetherAFileExists() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = dir.path
        try FileManager.default.copyItem(atPath: Fixtures.path("hostile/m"), toPath: root + "/m")
        try FileManager.default.copyItem(atPath: Fixtures.path("hostile/data"), toPath: root + "/data")
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        func stderr(_ name: String) throws -> String {
            let c = try #require(HostileCorpus.cases.first { $0.name == name })
            return try HostileCorpus.run(c.arguments.map { $0.replacingOccurrences(of: "{root}", with: root) }).stderr
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/m/ext_symlink_outside/link.bin",
                                                   withDestinationPath: root + "/outside/secret.bin")
        let absent = try ["ext_traversal", "ext_symlink_outside", "ext_constant_traversal"].map(stderr)
        try HostileCorpus.setUp(["secret"], root: root)
        let present = try ["ext_traversal", "ext_symlink_outside", "ext_constant_traversal"].map(stderr)
        #expect(absent == present)
        #expect(present.allSatisfy { $0.contains("refused") && !$0.contains("PLANTED") })
    }

    /// `run` writing onto a symlink replaces the link with a regular file; the file it pointed to is untouched.
    @Test func anOutputSymlinkIsReplacedNotFollowed() throws {
        let root = HostileCorpus.root
        _ = try HostileCorpus.run(["run", root + "/m/good_classifier/model.onnx", "--input", root + "/data/img_cls.npy",
                                   "--output", root + "/out/link.npy"])
        let attributes = try FileManager.default.attributesOfItem(atPath: root + "/out/link.npy")
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        #expect(FileManager.default.contents(atPath: root + "/outside/secret.bin") == HostileCorpus.secret)
    }
}
