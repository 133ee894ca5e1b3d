import Compute
import Datasets
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _TestSupport
@testable import WeightClusterCLI

@Suite(.serialized) struct FinetuneCLITests {
    /// An output path in a folder of this test's own, which a refused command must not create.
    let neverWritten = try! CLI.temporaryDirectory().appendingPathComponent("never-written.onnx").path

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func finetuneACodebookFile() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let compact = dir.appendingPathComponent("c.onnx").path, tuned = dir.appendingPathComponent("t.onnx").path
        #expect(try CLI.run(["compress", "-o", compact, "--kernel-reduction", "0.9", "--format", "codebook"]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: compact))
        let result = try CLI.run(["finetune", compact, "-o", tuned, "--epochs", "1", "--steps", "2", "--train-batch", "8", "--limit", "16",
                                  "--held-out", "64", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["top1_before"] != nil && object["top1_after"] != nil && object["top1"] != nil && (object["epochs"] as? [Any])?.count == 1)
        #expect(object["diverged"] is Bool && object["lr_source"] as? String == "range-test" && (object["lr"] as? Double ?? 0) > 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: compact)) == before, "the input is never modified")
        let trained = try ONNXModelFile.load(tuned)
        #expect(trained.initializers.keys.contains("wc_codebook_0"))
        // Dense export: the same model with the weights rebuilt.
        let dense = dir.appendingPathComponent("d.onnx").path
        #expect(try CLI.run(["finetune", compact, "-o", dense, "--epochs", "1", "--steps", "1", "--batch", "4", "--limit", "8", "--format", "dense",
                                 "--held-out", "64", "--lr", "0.01"]).status == 0)
        #expect(try ONNXModelFile.load(dense).initializers.keys.allSatisfy { !$0.contains("wc_") })
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func sweepWithAFineTunedColumn() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["sweep", "--kernel-reduction", "0.9", "--limit", "16", "--finetune-epochs", "1", "--steps", "1",
                                  "--train-batch", "4", "--held-out", "64", "--lr", "0.01", "--out", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("top-1 fine-tuned"))
        let csv = try String(contentsOfFile: dir.appendingPathComponent("sweep.csv").path, encoding: .utf8)
        let lines = csv.split(separator: "\n")
        #expect(lines[0].hasSuffix(",top1_finetuned") && !lines[1].hasSuffix(","))
    }

    @Test func badFinetuneRequests() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dense = dir.appendingPathComponent("dense.onnx").path
        #expect(try CLI.run(["compress", "-o", dense, "--kernel-reduction", "0.5"]).status == 0)
        // Labels beyond the model's 10 outputs.
        let images = dir.appendingPathComponent("x.npy").path, labels = dir.appendingPathComponent("y.npy").path
        try NPYFile.write(.uint8(Tensor(shape: [2, 28, 28], repeating: 0)), to: images)
        try NPYFile.write(.int64(Tensor(shape: [2], scalars: [3, 12])), to: labels)
        let compact = dir.appendingPathComponent("c.onnx").path
        #expect(try CLI.run(["compress", "-o", compact, "--kernel-reduction", "0.5", "--format", "codebook"]).status == 0)
        for (args, text) in [
            (["finetune", "-o", neverWritten, "--epochs", "1"], "no trainable structure recorded"),
            (["finetune", dense, "-o", neverWritten, "--epochs", "1"], "written with --format dense"),
            (["finetune", compact, "-o", neverWritten, "--epochs", "0"], "--epochs must be between 1 and 1000"),
            (["finetune", compact, "-o", neverWritten, "--epochs", "1", "--lr", "0"], "--lr must be a positive number"),
            (["finetune", compact, "-o", neverWritten, "--epochs", "1", "--held-out=-1"], "--held-out must be ≥ 0"),
            (["finetune", compact, "-o", neverWritten, "--epochs", "1", "--data", "\(images),\(labels)"], "training labels go up to 12"),
            (["compress", "-o", neverWritten, "--kernel-reduction", "0.5", "--finetune-epochs", "0"],
             "--finetune-epochs must be between 1 and 1000"),
            (["finetune", compact, "-o", neverWritten, "--epochs", "1", "--reassign-every", "0"], "--reassign-every must be at least 1"),
            (["compress", "-o", neverWritten, "--sparsity", "0.5", "--finetune-epochs", "1", "--reassign-every", "5"],
             "--reassign-every needs codebooks"),
        ] {
            let result = try CLI.run(args)
            #expect(result.status != 0)
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(text), "\(args): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: neverWritten))
    }

    /// An absurd learning rate on the bundled model: the guard says so on stderr, the JSON says `diverged`, and the
    /// written model is not less accurate than the compressed one, on the held-out images nor on the test images.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func divergenceIsCaughtAndTheCompressedModelKept() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o.onnx").path
        let result = try CLI.run(["compress", "-o", out, "--kernel-reduction", "0.9", "--finetune-epochs", "1", "--lr", "100",
                                  "--train-limit", "192", "--steps", "12", "--batch", "16", "--held-out", "256", "--limit", "256", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("fine-tuning diverged: "), "\(result.stderr)")
        #expect(result.stderr.contains("warning: fine-tuning stopped: ") && result.stderr.contains("try --lr"), "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["diverged"] as? Bool == true && object["lr"] as? Double == 100)
        let before = try #require(object["top1_before"] as? Double), after = try #require(object["top1_after"] as? Double)
        #expect(after >= before)
        let compressedTest = try #require(object["top1_before_finetuning"] as? Double), writtenTest = try #require(object["top1"] as? Double)
        #expect(writtenTest >= compressedTest)
    }
}
