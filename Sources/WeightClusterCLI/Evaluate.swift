import ArgumentParser
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a classifier's top-1/top-5 accuracy and throughput on a dataset (default: Fashion-MNIST test set).")

    @OptionGroup var model: ModelArgument
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Evaluate only the first N images.")
    var limit: Int?

    @Option(help: "Images per batch.")
    var batch: Int = 64

    @Option(help: "Write the predicted class of every image to this file, one per line (to compare two models' predictions).")
    var predictions: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be ≥ 1, got \(limit)") }
    }

    func run() throws {
        let executor = try model.loadExecutor()
        var dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing)
        if let limit { dataset = dataset.prefix(limit) }
        let report = try Evaluator.evaluate(executor, on: dataset, batchSize: batch) { done, total in
            Terminal.progress("evaluating", done, total)
        }
        if let predictions {
            try writeAtomically(Data(report.predictions.map { "\($0)\n" }.joined().utf8), to: predictions)
        }
        if json {
            print(try Terminal.json([
                "model": try model.path, "images": report.images, "top1": report.top1, "top5": report.top5,
                "per_class": report.perClass.map { $0 as Any? ?? NSNull() }, "seconds": report.seconds,
                "images_per_second": report.imagesPerSecond, "batch": batch,
            ]))
            return
        }
        print("model: \(try model.path)")
        print("images: \(report.images)")
        print("top-1: \(Terminal.percent(report.top1))   top-5: \(Terminal.percent(report.top5))")
        let perClass = report.perClass.enumerated().map { "\($0.offset): \($0.element.map(Terminal.percent) ?? "-")" }
        print("per class: " + perClass.joined(separator: "  "))
        print(String(format: "throughput: %.1f images/s (%.2f s, batch %d)", report.imagesPerSecond, report.seconds, batch))
    }
}
