import Compute
import Datasets
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _TestSupport
@testable import WeightClusterCLI

@Suite(.serialized) struct NeuronCLITests {
    /// An output path in a folder of this test's own, which a refused command must not create.
    let neverWritten = try! CLI.temporaryDirectory().appendingPathComponent("never-written.onnx").path

    @Test func compressNeuronsWritesJSONAndLeavesTheInputAlone() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bundled = try ModelArgumentPath.bundled()
        let copy = dir.appendingPathComponent("m.onnx").path, out = dir.appendingPathComponent("c.onnx").path
        try FileManager.default.copyItem(atPath: bundled, toPath: copy)
        let before = try Data(contentsOf: URL(fileURLWithPath: copy))
        let result = try CLI.run(["compress", copy, "-o", out, "--neurons", "spherical", "--column-reduction", "0.75", "--sparsity", "0.5",
                                  "--kernel-reduction", "0.5", "--format", "codebook", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in ["column_reduction", "sparsity", "mode", "folded_layers", "scaled_layers", "footprint_bytes", "kernel_reduction"] {
            #expect(object[key] != nil, "\(key)")
        }
        #expect(object["mode"] as? String == "spherical" && object["kernel_mode"] as? String == "plain")
        // classifier.0 reads a flattened 64×4×4 map: explicit scales; classifier.3 folds into classifier.0.
        #expect(object["folded_layers"] as? Int == 1 && object["scaled_layers"] as? Int == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["c.onnx", "m.onnx"])
        let written = try ONNXModelFile.load(out)
        #expect(written.metadata["weightcluster.neuron_clustering"]?.hasPrefix("mode=spherical") == true)
        #expect(written.metadata["weightcluster.pruning"] != nil)
    }

    @Test func textReportExplainsTheFallback() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["compress", "-o", dir.appendingPathComponent("c.onnx").path, "--neurons", "spherical-weighted",
                                  "--neuron-clusters", "64", "--layers", "/classifier/classifier.0/Gemm"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("explicit scale vector (cannot fold exactly: each column maps to one spatial position"))
        #expect(result.stdout.contains("1024 → 64 columns"))
    }

    @Test func badNeuronRequests() throws {
        for (args, text) in [
            (["--neurons", "spherical", "--column-reduction", "1"], "--column-reduction must be in [0, 1)"),
            (["--neurons", "spherical", "--neuron-clusters", "2000"], "larger than the 1024 input columns"),
            (["--neurons", "kmeans", "--column-reduction", "0.5", "--layers", "nope"], "no layer named 'nope'"),
            (["--neurons", "kmeans", "--column-reduction", "0.5", "--layers", "/features/features.0/Conv"], "is a Conv, not a fully-connected layer"),
            (["--column-reduction", "0.5"], "need --neurons"),
            (["--neurons", "spherical"], "exactly one of --column-reduction R and --neuron-clusters k"),
            (["--sparsity", "1.5"], "--sparsity must be in [0, 1)"),
            (["--neurons", "cosine", "--column-reduction", "0.5"], "cosine"),
        ] {
            let result = try CLI.run(["compress", "-o", neverWritten] + args)
            #expect(result.status != 0)
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(text), "\(args): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        let noFC = try CLI.run(["compress", Fixtures.path("ops/relu.onnx"), "-o", neverWritten, "--neurons", "spherical", "--column-reduction", "0.5"])
        #expect(noFC.status != 0 && noFC.stderr.contains("no fully-connected layer"))
        #expect(!FileManager.default.fileExists(atPath: neverWritten))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func neuronSweepWritesEveryOutput() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["sweep", "--neurons", "kmeans,spherical", "--column-reduction", "0.9", "--sparsity", "0,0.5",
                                  "--limit", "32", "--out", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("column reduction") && result.stdout.contains("folded/scaled"))
        let csv = try String(contentsOfFile: dir.appendingPathComponent("sweep.csv").path, encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 5)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("sweep.json"))) as? [String: Any]
        let rows = try #require(json?["rows"] as? [[String: Any]])
        #expect(rows.count == 4)
        for key in ["column_reduction", "sparsity", "mode", "folded_layers", "scaled_layers", "footprint_bytes", "top1"] {
            #expect(rows.allSatisfy { $0[key] != nil }, "\(key)")
        }
        let svg = try String(contentsOfFile: dir.appendingPathComponent("sweep.svg").path, encoding: .utf8)
        #expect(svg.contains("sparsity 0.5") && svg.contains("top-1 vs column reduction"))
    }
}
