import Compute
import Datasets
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _TestSupport
@testable import WeightClusterCLI

/// Runs the built `weightcluster` binary: exit codes and one-line errors are what a user sees.
enum CLI {
    static var binary: String {
        Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("weightcluster").path
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite(.serialized) struct CLITests {
    /// One line on stderr starting with "error:", a non-zero exit, nothing on stdout.
    /// A model whose input fixes the batch size (as EfficientNet-Lite0's export does: 1) is evaluated at that size
    /// without --batch; a --batch that contradicts it is one error line.
    @Test func evaluateRunsAFixedBatchModelAtItsSize() throws {
        let dir = try CLI.temporaryDirectory()
        let graph = Graph(nodes: [Node(name: "flat", opType: "Flatten", inputs: ["x"], outputs: ["f"]),
                                  Node(name: "fc", opType: "Gemm", inputs: ["f", "w"], outputs: ["y"], attributes: ["transB": .int(1)])],
                          initializers: ["w": .float(Tensor(shape: [10, 1024], repeating: 0.001))],
                          inputs: [ValueInfo(name: "x", shape: [.fixed(1), .fixed(1), .fixed(32), .fixed(32)])],
                          outputs: [ValueInfo(name: "y", shape: nil)], opsetVersion: 13)
        let model = dir.appendingPathComponent("fixed.onnx").path
        try ONNXModelFile.save(graph, to: model)
        let images = dir.appendingPathComponent("x.npy").path, labels = dir.appendingPathComponent("y.npy").path
        try NPYFile.write(.uint8(Tensor(shape: [3, 28, 28], repeating: 7)), to: images)
        try NPYFile.write(.int64(Tensor(shape: [3], scalars: [0, 1, 2])), to: labels)
        let result = try CLI.run(["evaluate", model, "--data", "\(images),\(labels)", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["batch"] as? Int == 1 && object["images"] as? Int == 3)
        try expectOneLineError(["evaluate", model, "--data", "\(images),\(labels)", "--batch", "4"], containing: "takes batches of exactly 1 image, not 4")
    }

    func expectOneLineError(_ arguments: [String], containing text: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status != 0, "\(arguments)")
        #expect(result.stderr.hasPrefix("error: "), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(result.stderr.contains(text), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func inspectPrintsKernelsAndParameters() throws {
        let result = try CLI.run(["inspect", Fixtures.path("models/tiny_vgg_opset13.onnx")])
        #expect(result.status == 0)
        #expect(result.stdout.contains("2D kernels: 136 of 3x3"))  // 1·8 + 8·16
        #expect(result.stdout.contains("parameters: "))
    }

    @Test func inspectJSON() throws {
        let result = try CLI.run(["inspect", "--json", Fixtures.path("models/tiny_vgg_opset13.onnx")])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect((object["kernels"] as? [String: Int])?["3x3"] == 136)
        #expect(object["dense_weight_bytes"] as? Int == 4 * (object["parameters"] as? Int ?? 0))
    }

    @Test func runWritesTheModelOutput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = Fixtures.path("models/tiny_mobilenetv2_opset17")
        let out = dir.appendingPathComponent("y.npy").path
        let result = try CLI.run(["run", base + ".onnx", "--input", base + ".input.npy", "--output", out])
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try TestSupport.readFloat(out), expected = try TestSupport.readFloat(base + ".output.npy")
        #expect(TestSupport.maxAbsDifference(ours.scalars, expected.scalars) <= 1e-4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["y.npy"])
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func evaluateJSONOnTheBundledModel() throws {
        let result = try CLI.run(["evaluate", "--limit", "64", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["images"] as? Int == 64)
        let top1 = try #require(object["top1"] as? Double)
        #expect(top1 > 0.8, "the bundled model scores 92% on the full test set")
        #expect((object["top5"] as? Double ?? 0) >= top1)
        #expect((object["images_per_second"] as? Double ?? 0) > 0)
    }

    /// `--profile` times every node: the operator table covers every op type the model runs, the node table the slowest
    /// ten, and the JSON the same figures.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func evaluateProfile() throws {
        let text = try CLI.run(["evaluate", "--limit", "64", "--profile"])
        #expect(text.status == 0, "\(text.stderr)")
        for op in ["Conv", "Gemm", "MaxPool"] { #expect(text.stdout.contains(op), "\(op) missing from\n\(text.stdout)") }
        #expect(text.stdout.contains("slowest nodes"))
        let json = try CLI.run(["evaluate", "--limit", "64", "--profile", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let byOp = try #require(object["profile_by_op"] as? [String: Double])
        let byNode = try #require(object["profile_by_node"] as? [String: Double])
        let conv: Double = byOp["Conv"] ?? 0
        #expect(conv > 0)
        // Every node's time is counted once under its op type.
        let opTotal: Double = byOp.values.reduce(0, +), nodeTotal: Double = byNode.values.reduce(0, +)
        #expect(abs(opTotal - nodeTotal) <= 1e-6 * max(1, opTotal))
    }

    /// `--reference`: a model against itself agrees everywhere; a packed 3-bit copy less; an output of another shape is
    /// one error line. `compress --reference-check N` reports the same figures for what it wrote.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func referenceAgreement() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundled = try ModelArgumentPath.bundled()
        func agreement(_ output: String, key: String = "agreement") throws -> [String: Double] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            return try #require(object[key] as? [String: Double])
        }
        let same = try CLI.run(["evaluate", "--limit", "64", "--reference", bundled, "--json"])
        #expect(same.status == 0, "\(same.stderr)")
        let a = try agreement(same.stdout)
        #expect(a["top1_agreement"] == 1 && a["top5_agreement"] == 1 && abs(a["mean_kl"] ?? 1) < 1e-9 && abs((a["logit_cosine"] ?? 0) - 1) < 1e-9)
        let packed = dir.appendingPathComponent("m.wcm").path
        let compress = try CLI.run(["compress", "-o", packed, "--bits", "3", "--format", "packed", "--reference-check", "64", "--json"])
        #expect(compress.status == 0, "\(compress.stderr)")
        let check = try agreement(compress.stdout, key: "reference_check")
        #expect((check["top1_agreement"] ?? 0) > 0.8 && (check["top1_agreement"] ?? 1) <= 1 && (check["mean_kl"] ?? 0) > 0)
        let back = try agreement(try CLI.run(["evaluate", packed, "--limit", "64", "--reference", bundled, "--json"]).stdout)
        #expect(back == check, "the same 64 images, the same two models")
        // A reference whose output has another shape: [N, 1024] instead of [N, 10].
        var flat = Graph(name: "flat", nodes: [Node(name: "f", opType: "Flatten", inputs: ["x"], outputs: ["y"])],
                         inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(1), .fixed(32), .fixed(32)])],
                         outputs: [ValueInfo(name: "y", shape: [.symbolic("N"), .fixed(1024)])])
        flat.opsetVersion = 13
        let flatPath = dir.appendingPathComponent("flat.onnx").path
        try ONNXModelFile.save(flat, to: flatPath)
        try expectOneLineError(["evaluate", "--limit", "64", "--reference", flatPath], containing: "cannot be compared")
    }

    @Test func missingModel() throws {
        try expectOneLineError(["inspect", "/nonexistent/m.onnx"], containing: "model file not found: /nonexistent/m.onnx")
    }

    @Test func notAnONNXFile() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("notes.onnx").path
        try Data("just text\n".utf8).write(to: URL(fileURLWithPath: path))
        try expectOneLineError(["inspect", path], containing: "is not a valid ONNX model")
    }

    @Test func truncatedModel() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("models/tiny_vgg_opset13.onnx")))
        let path = dir.appendingPathComponent("cut.onnx").path
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        try expectOneLineError(["evaluate", path, "--limit", "1"], containing: "is not a valid ONNX model")
    }

    @Test func unsupportedOperator() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let graph = Graph(nodes: [Node(name: "attention", opType: "Einsum", inputs: ["x"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)], opsetVersion: 14)
        let path = dir.appendingPathComponent("einsum.onnx").path
        try ONNXModelFile.save(graph, to: path)
        try expectOneLineError(["run", path, "--input", Fixtures.path("ops/relu.input.npy"), "--output", dir.appendingPathComponent("y.npy").path],
                               containing: "unsupported operator Einsum at node 'attention' (opset 14)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("y.npy").path))
    }

    /// A model with two operators the executor does not run: one error line names both (a committed fixture).
    @Test func everyUnsupportedOperatorInOneLine() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try expectOneLineError(["run", Fixtures.path("unsupported/two_unsupported.onnx"), "--input", Fixtures.path("ops/relu.input.npy"),
                                "--output", dir.appendingPathComponent("y.npy").path],
                               containing: "unsupported operators (opset 16): RoiAlign at node 'roi_align', NonMaxSuppression at node 'nms'; ")
    }

    @Test func shapeMismatch() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try expectOneLineError(["run", Fixtures.path("models/tiny_resnet_opset13.onnx"), "--input", Fixtures.path("ops/relu.input.npy"),
                                "--output", dir.appendingPathComponent("y.npy").path], containing: "input 'input': expects shape [N, 1, 32, 32], got [2, 4, 7, 7]")
    }

    @Test func datasetNotFound() throws {
        try expectOneLineError(["evaluate", "--data", "/nonexistent/fmnist"], containing: "apt-get install dataset-fashion-mnist")
    }

    @Test func badOptionValues() throws {
        try expectOneLineError(["evaluate", "--batch", "0"], containing: "--batch must be ≥ 1")
        try expectOneLineError(["evaluate", "--std", "0"], containing: "--std")
    }

    @Test func outputMustNotOverwriteTheInput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("x.npy").path
        try FileManager.default.copyItem(atPath: Fixtures.path("ops/relu.input.npy"), toPath: input)
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        try expectOneLineError(["run", Fixtures.path("ops/relu.onnx"), "--input", input, "--output", input], containing: "is the input file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
    }

    @Test func commandsParseInProcess() throws {
        let command = try WeightClusterCommand.parseAsRoot(["evaluate", "m.onnx", "--limit", "10", "--batch", "8", "--pad", "0"])
        let evaluate = try #require(command as? Evaluate)
        #expect(evaluate.limit == 10 && evaluate.batch == 8 && evaluate.dataOptions.pad == 0)
        #expect(throws: (any Error).self) { try WeightClusterCommand.parseAsRoot(["evaluate", "--limit", "0"]) }
    }
}

@Suite(.serialized) struct CompressCLITests {
    /// An output path in a folder of this test's own, which a refused command must not create.
    let neverWritten = try! CLI.temporaryDirectory().appendingPathComponent("never-written.onnx").path

    let model = Fixtures.path("models/tiny_resnet_opset13.onnx")

    @Test func compressWritesJSONAndAnONNXFile() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("c.onnx").path
        let result = try CLI.run(["compress", model, "-o", out, "--kernel-reduction", "0.5", "--format", "codebook", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in ["kernels", "clusters", "kernel_reduction", "footprint_bytes", "dense_bytes", "clustering_seconds", "inertia"] {
            #expect(object[key] != nil, "\(key)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["c.onnx"])
        _ = try ONNXModelFile.load(out)
    }

    @Test func compressRefusesToOverwriteItsInput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("m.onnx").path
        try FileManager.default.copyItem(atPath: model, toPath: copy)
        let before = try Data(contentsOf: URL(fileURLWithPath: copy))
        let result = try CLI.run(["compress", copy, "-o", copy, "--kernel-reduction", "0.5"])
        #expect(result.status != 0 && result.stderr.contains("is the input file"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == before)
    }

    @Test func compressRejectsBadSizes() throws {
        for (args, text) in [(["--kernel-reduction", "1"], "[0, 1)"), (["--kernel-clusters", "0"], "at least 1"),
                             (["--kernel-clusters", "100000"], "larger than the number of kernels"), ([], "exactly one of")] {
            let result = try CLI.run(["compress", model, "-o", neverWritten] + args)
            #expect(result.status != 0)
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(text), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: neverWritten))
    }

    @Test func modelWithoutConvolutions() throws {
        let result = try CLI.run(["compress", Fixtures.path("ops/gemm_transb.onnx"), "-o", neverWritten, "--kernel-reduction", "0.5"])
        #expect(result.status != 0 && result.stderr.contains("no Conv layer"))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func sweepWritesTableCSVJSONMarkdownAndSVG() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["sweep", "--kernel-reduction", "0.5,0.9", "--kernel-modes", "plain,scaled", "--limit", "32",
                                  "--out", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Δtop-1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["sweep.csv", "sweep.json", "sweep.md", "sweep.svg"])
        let csv = try String(contentsOfFile: dir.appendingPathComponent("sweep.csv").path, encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 5)
    }
}

/// The bundled default model's path, as the CLI finds it.
enum ModelArgumentPath {
    static func bundled() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("Sources/WeightClusterCLI/Resources/small-vgg-fmnist.onnx").path
    }
}
