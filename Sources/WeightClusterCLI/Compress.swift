import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    /// The same graph with clustered weights (a drop-in model).
    case dense
    /// Codebook + indices (+ scales) and nodes that rebuild each weight: a really smaller file.
    case codebook
}

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster a CNN's 2D kernels, write the compressed model, and (with --data) measure its accuracy.")

    @OptionGroup var model: ModelArgument

    @Option(name: [.short, .long], help: "Where to write the compressed ONNX model.")
    var output: String

    @Option(help: "Fraction of kernels removed, in [0, 1): K = round(N·(1 − R)).")
    var kernelReduction: Double?

    @Option(help: "Number of shared kernels K (alternative to --kernel-reduction).")
    var kernelClusters: Int?

    @OptionGroup var kernels: KernelOptions

    @Option(help: "dense (same graph, clustered weights) or codebook (compact file).")
    var format: ExportFormat = .dense

    @OptionGroup var dataOptions: DataOptions

    @Flag(help: "Evaluate the written model on the test set (implied by --data).")
    var evaluate = false

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (kernelReduction == nil) != (kernelClusters == nil) else {
            throw ValidationError("give exactly one of --kernel-reduction R and --kernel-clusters K")
        }
    }

    func run() throws {
        let inputPath = try model.path
        try ensureDistinct(output: output, input: inputPath)
        let size: KernelClusteringConfiguration.Size = kernelClusters.map { .clusters($0) } ?? .reduction(kernelReduction!)
        let config = try kernels.configuration(size)
        let graph = try model.load()
        let energy = try kernels.channelEnergy(graph, data: dataOptions)
        let result = try clusterKernels(in: graph, configuration: config, channelEnergy: energy)
        let written = format == .codebook ? result.codebookGraph() : result.graph
        try ONNXModelFile.save(written, to: output)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0

        var report: AccuracyReport?
        if evaluate || dataOptions.data != nil {
            var dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing)
            if let limit { dataset = dataset.prefix(limit) }
            // Evaluate what was written, read back from the file.
            let executor = try Executor(graph: try ONNXModelFile.load(output))
            report = try Evaluator.evaluate(executor, on: dataset) { Terminal.progress("evaluating", $0, $1) }
        }
        let f = result.footprint
        if json {
            var object: [String: Any] = [
                "model": inputPath, "output": output, "format": format.rawValue, "mode": config.mode.rawValue,
                "scope": config.scope.rawValue, "kernels": f.kernels, "clusters": f.clusters,
                "kernel_reduction": f.kernelReduction, "footprint_bytes": f.totalBytes, "dense_bytes": f.denseBytes,
                "compression_ratio": f.compressionRatio, "codebook_bytes": f.codebookBytes, "index_bytes": f.indexBytes,
                "scale_bytes": f.scaleBytes, "rest_bytes": f.restBytes, "file_bytes": fileBytes,
                "clustering_seconds": result.clusteringSeconds, "inertia": result.inertia, "seed": config.seed,
                "calibration_images": kernels.calibration ?? 0,
            ]
            if let report { object["top1"] = report.top1; object["top5"] = report.top5; object["images"] = report.images }
            print(try Terminal.json(object))
            return
        }
        print("wrote \(output) (\(format.rawValue), \(Terminal.bytes(fileBytes)) on disk)")
        print("kernels: \(f.kernels) → \(f.clusters) shared (\(config.mode.rawValue), \(config.scope.rawValue) scope): kernel reduction \(Terminal.percent(f.kernelReduction))")
        print("footprint: \(Terminal.bytes(f.totalBytes)) of \(Terminal.bytes(f.denseBytes)) dense (×\(String(format: "%.2f", f.compressionRatio))): codebook \(Terminal.bytes(f.codebookBytes)), indices \(Terminal.bytes(f.indexBytes)), scales \(Terminal.bytes(f.scaleBytes)), rest \(Terminal.bytes(f.restBytes))")
        print(String(format: "clustering: %.2f s, inertia %.6g", result.clusteringSeconds, result.inertia))
        if let report { print("top-1: \(Terminal.percent(report.top1))   top-5: \(Terminal.percent(report.top5))   (\(report.images) images)") }
    }
}
