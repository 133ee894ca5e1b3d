import ArgumentParser
import Datasets
import Evaluation
import Execution
import ModelGraph
import FileOutput
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a classifier's top-1/top-5 accuracy and throughput on a dataset (default: Fashion-MNIST test set).")

    @OptionGroup var model: ModelArgument
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Evaluate only the first N images.")
    var limit: Int?

    @Option(help: "Images per batch (default: 64, or the batch size the model's input fixes, e.g. 1).")
    var batch: Int?

    @Option(help: "Write the predicted class of every image to this file, one per line (to compare two models' predictions).")
    var predictions: String?

    @Option(help: "A reference model (e.g. the dense original): also report top-1/top-5 agreement with it, mean KL divergence and logit cosine (no labels needed).")
    var reference: String?

    @Flag(help: "Time every node: print the time per operator type and the 10 slowest nodes (--json: profile_by_op, profile_by_node).")
    var profile = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be ≥ 1, got \(limit)") }
    }

    func run() throws {
        let executor = try model.loadExecutor()
        executor.profiling = profile
        // Loaded (and checked) before any work, so a bad reference fails at once.
        let referenceExecutor = try reference.map { try ModelValidation.validatedExecutor(try ModelFile.runnableGraph($0)) }
        // A model exported with a fixed batch dimension (EfficientNet-Lite0's export: 1) is run at that size.
        let fixed = [executor, referenceExecutor].compactMap { $0?.graph.inputs.first?.shape?.first }.compactMap { dim -> Int? in
            if case .fixed(let n) = dim, n >= 1 { return n }
            return nil
        }
        if let n = fixed.first, let other = ([batch].compactMap { $0 } + fixed).first(where: { $0 != n }) {
            throw ValidationError("the model\(fixed.count > 1 ? "s' inputs take" : "'s input takes") batches of exactly \(n) image\(n == 1 ? "" : "s"), not \(other); drop --batch or pass --batch \(n)")
        }
        let batch = fixed.first ?? self.batch ?? 64
        let dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing, limit: limit)
        let report = try Evaluator.evaluate(executor, on: dataset, batchSize: batch) { done, total in
            Terminal.progress("evaluating", done, total)
        }
        var agreement: AgreementReport?
        if let referenceExecutor {
            agreement = try Agreement.measure(executor, reference: referenceExecutor, on: dataset, batchSize: batch) { done, total in
                Terminal.progress("comparing with the reference", done, total)
            }
        }
        if let predictions {
            try writeAtomically(Data(report.predictions.map { "\($0)\n" }.joined().utf8), to: predictions)
        }
        if json {
            print(try Terminal.json([
                "model": try model.path, "images": report.images, "top1": report.top1, "top5": report.top5,
                "per_class": report.perClass.map { $0 as Any? ?? NSNull() }, "seconds": report.seconds,
                "images_per_second": report.imagesPerSecond, "batch": batch,
            ].merging(profile ? ["profile_by_op": executor.profile, "profile_by_node": executor.nodeProfile] : [:]) { $1 }
             .merging(try agreement.map { ["reference": reference ?? "", "agreement": try JSONSerialization.jsonObject(with: try JSONEncoder().encode($0))] } ?? [:]) { $1 }))
            return
        }
        print("model: \(try model.path)")
        print("images: \(report.images)")
        print("top-1: \(Terminal.percent(report.top1))   top-5: \(Terminal.percent(report.top5))")
        let perClass = report.perClass.enumerated().map { "\($0.offset): \($0.element.map(Terminal.percent) ?? "-")" }
        print("per class: " + perClass.joined(separator: "  "))
        print(String(format: "throughput: %.1f images/s (%.2f s, batch %d)", report.imagesPerSecond, report.seconds, batch))
        if let agreement, let reference { print("against \(reference): " + agreement.summary) }
        if profile {
            let total = executor.profile.values.reduce(0, +)
            func rows(_ times: [String: Double], _ title: String, limit: Int) -> [[String]] {
                [[title, "seconds", "share"]] + times.sorted { $0.value > $1.value }.prefix(limit).map {
                    [$0.key, String(format: "%.3f", $0.value), String(format: "%.1f%%", 100 * $0.value / max(total, 1e-12))]
                }
            }
            print("")
            print(Terminal.table(rows(executor.profile, "operator", limit: .max)))
            print("")
            print(Terminal.table(rows(executor.nodeProfile, "slowest nodes", limit: 10)))
        }
    }
}

extension AgreementReport {
    /// One line: agreements, KL and cosine.
    var summary: String {
        String(format: "top-1 agreement %.2f%%, top-5 agreement %.2f%%, mean KL %.4g nats, logit cosine %.5f (%d images)",
               100 * top1Agreement, 100 * top5Agreement, meanKL, meanCosine, images)
    }
}
