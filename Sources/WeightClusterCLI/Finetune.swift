import ArgumentParser
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat
import Training

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a compressed model (a --format codebook file from compress) with its codebooks, shared columns and pruning kept.",
        discussion: """
        The structure travels in the file itself: kernel codebooks and shared columns are initializers that the graph
        gathers into weights, so training their values keeps every kernel equal to its codebook entry (times its
        scale) and every column shared; the pruning record in the metadata keeps pruned weights at zero.
        """)

    @OptionGroup var model: ModelArgument

    @Option(name: [.short, .long], help: "Where to write the fine-tuned ONNX model.")
    var output: String

    @Option(help: "Epochs over the training images.")
    var epochs: Int

    @OptionGroup var training: TrainingOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "codebook (the compact ONNX form), packed (the packed file) or dense (weights rebuilt).")
    var format: ExportFormat = .codebook

    @Option(help: "Evaluate on the first N test images only.")
    var limit: Int?

    @Option(help: "Seed of shuffling, augmentation and dropout.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        _ = try training.configuration(epochs: epochs, seed: seed, preprocessing: dataOptions.preprocessing)
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
    }

    func run() throws {
        let inputPath = try model.path
        try ensureDistinct(output: output, input: inputPath)
        let graph = try model.load(strictness: .runnable)
        let structure = try trainableStructure(graph)
        let test = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing, limit: limit)
        if !json { print("fine-tuning \(inputPath) (\(structure))") }
        let result = try training.fineTuning(graph, epochs: epochs, seed: seed, data: dataOptions)
        try ModelFile.save(result.graph, format: format, to: output)
        let before = try Evaluator.evaluate(try Executor(graph: graph), on: test) { Terminal.progress("test images, before", $0, $1) }
        let after = try Evaluator.evaluate(try Executor(graph: try ModelFile.runnableGraph(output)), on: test) { Terminal.progress("test images, after", $0, $1) }
        let report = result.report
        if json {
            var object: [String: Any] = [
                "model": inputPath, "output": output, "structure": structure, "test_top1_before": before.top1,
                "top1": after.top1, "images": test.count,
            ]
            object.merge(report.json) { $1 }
            print(try Terminal.json(object))
            return
        }
        for r in report.epochs {
            print(String(format: "epoch %d: loss %.4f, train accuracy %.2f%%, held-out top-1 %@, %.0f images/s, %.0f s", r.epoch, r.loss,
                         100 * r.trainAccuracy, r.heldOutTop1.map { String(format: "%.2f%%", 100 * $0) } ?? "–", r.imagesPerSecond, r.seconds)
                  + (r.reassigned.map { ", \($0) kernel re-assignments" } ?? ""))
        }
        print("fine-tuning: " + report.summary)
        print("wrote \(output) (\(format.rawValue)); test top-1 \(Terminal.percent(before.top1)) → \(Terminal.percent(after.top1)) on \(test.count) images")
    }
}
