import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat
import Training

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    /// The same graph with clustered weights (a drop-in model).
    case dense
    /// Codebook + indices (+ scales), shared columns + column indices, and nodes that rebuild each weight:
    /// a really smaller file.
    case codebook
}

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune, cluster neurons and/or 2D kernels, write the compressed model, and (with --data) measure its accuracy.")

    @OptionGroup var model: ModelArgument

    @Option(name: [.short, .long], help: "Where to write the compressed ONNX model.")
    var output: String

    @Option(help: "Fraction of kernels removed, in [0, 1): K = round(N·(1 − R)).")
    var kernelReduction: Double?

    @Option(help: "Number of shared kernels K (alternative to --kernel-reduction).")
    var kernelClusters: Int?

    @OptionGroup var kernels: KernelOptions
    @OptionGroup var neuronOptions: NeuronOptions

    @Option(help: "dense (same graph, clustered weights) or codebook (compact file).")
    var format: ExportFormat = .dense

    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Fine-tune the compressed model for this many epochs before writing it (structure kept).")
    var finetuneEpochs: Int?

    @OptionGroup var training: TrainingOptions

    @Flag(help: "Evaluate the written model on the test set (implied by --data).")
    var evaluate = false

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if kernelReduction != nil && kernelClusters != nil {
            throw ValidationError("give exactly one of --kernel-reduction R and --kernel-clusters K")
        }
        if kernelReduction == nil && kernelClusters == nil && neuronOptions.isEmpty {
            throw ValidationError("nothing to do: give exactly one of --kernel-reduction R and --kernel-clusters K, and/or --neurons MODE with --column-reduction R, and/or --sparsity S")
        }
        if training.reassignEvery != nil && (finetuneEpochs == nil || (kernelReduction == nil && kernelClusters == nil)) {
            throw ValidationError("--reassign-every needs kernel codebooks to fine-tune: give --finetune-epochs and --kernel-reduction or --kernel-clusters")
        }
        if let finetuneEpochs {
            _ = try training.configuration(epochs: finetuneEpochs, seed: kernels.seed, preprocessing: dataOptions.preprocessing, epochsFlag: "--finetune-epochs")
        }
    }

    func run() throws {
        let inputPath = try model.path
        try ensureDistinct(output: output, input: inputPath)
        let kernelSize: KernelClusteringConfiguration.Size? = kernelClusters.map { .clusters($0) } ?? kernelReduction.map { .reduction($0) }
        let kernelConfig = try kernelSize.map { try kernels.configuration($0) }
        let pruneConfig = try neuronOptions.pruning()
        let neuronConfig = try neuronOptions.clustering(kernels)
        let graph = try model.load()
        let energy = kernelConfig == nil ? [:] : try kernels.channelEnergy(graph, data: dataOptions)
        let pipeline = try Pipeline(graph, pruning: pruneConfig, neurons: neuronConfig, kernels: kernelConfig, channelEnergy: energy,
                                    codebook: format == .codebook || finetuneEpochs != nil)
        var written = pipeline.graph
        var fineTuning: FineTuningReport?
        var beforeTraining: Double?
        // The test images, loaded once, when anything is evaluated.
        var testImages: ImageDataset?
        if evaluate || dataOptions.data != nil || finetuneEpochs != nil {
            testImages = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing)
            if let limit { testImages = testImages?.prefix(limit) }
        }
        if let finetuneEpochs, let test = testImages {
            beforeTraining = try Evaluator.evaluate(try Executor(graph: written), on: test) { Terminal.progress("before fine-tuning", $0, $1) }.top1
            let result = try training.fineTuning(written, epochs: finetuneEpochs, seed: kernels.seed, data: dataOptions, original: graph,
                                                 epochsFlag: "--finetune-epochs")
            fineTuning = result.report
            written = try exported(result.graph, format: format)
        }
        try ONNXModelFile.save(written, to: output)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0

        var report: AccuracyReport?
        if let dataset = testImages {
            // Evaluate what was written, read back from the file.
            let executor = try Executor(graph: try ONNXModelFile.load(output))
            report = try Evaluator.evaluate(executor, on: dataset) { Terminal.progress("evaluating", $0, $1) }
        }
        let total = pipeline.footprint
        if json {
            var object: [String: Any] = [
                "model": inputPath, "output": output, "format": format.rawValue, "footprint_bytes": total.totalBytes,
                "dense_bytes": total.denseBytes, "compression_ratio": total.compressionRatio, "file_bytes": fileBytes,
                "clustering_seconds": pipeline.seconds, "seed": kernels.seed,
            ]
            if let f = pipeline.kernels?.footprint, let config = kernelConfig {
                object.merge([
                    "mode": config.mode.rawValue, "kernel_mode": config.mode.rawValue, "scope": config.scope.rawValue,
                    "kernels": f.kernels, "clusters": f.clusters, "kernel_reduction": f.kernelReduction,
                    "kernel_footprint_bytes": f.totalBytes, "codebook_bytes": f.codebookBytes, "index_bytes": f.indexBytes,
                    "scale_bytes": f.scaleBytes, "rest_bytes": f.restBytes, "inertia": pipeline.kernels!.inertia,
                    "calibration_images": kernels.calibration ?? 0,
                ]) { $1 }
            }
            if let pruning = pipeline.pruning {
                object["sparsity"] = pruning.configuration.sparsity
                object["prune_scope"] = pruning.configuration.scope.rawValue
                object["pruned_layers"] = pruning.layers.map { ["layer": $0.nodeName, "weights": $0.weights, "zeros": $0.zeros, "stored_bytes": $0.storedBytes] }
            }
            if let neurons = pipeline.neurons {
                let columns = neurons.layers.reduce(0) { $0 + $1.inputs }, shared = neurons.layers.reduce(0) { $0 + $1.clusters }
                object["mode"] = neurons.configuration.mode.rawValue
                object["sparsity"] = object["sparsity"] ?? 0.0
                object["column_reduction"] = 1 - Double(shared) / Double(max(1, columns))
                object["folded_layers"] = neurons.foldedLayers
                object["scaled_layers"] = neurons.scaledLayers
                object["neuron_layers"] = neurons.layers.map { layer -> [String: Any] in
                    var entry: [String: Any] = ["layer": layer.nodeName, "inputs": layer.inputs, "outputs": layer.outputs,
                                                "clusters": layer.clusters, "column_reduction": layer.columnReduction,
                                                "live_columns": layer.liveColumns, "dense_bytes": layer.denseBytes,
                                                "stored_bytes": layer.storedBytes, "reconstruction_error": layer.inertia]
                    switch layer.factors {
                    case .none: entry["factors"] = "none"
                    case .folded(let into): entry["factors"] = "folded"; entry["folded_into"] = into
                    case .explicit(let reason): entry["factors"] = "explicit"; entry["reason"] = reason
                    }
                    return entry
                }
            }
            if let report { object["top1"] = report.top1; object["top5"] = report.top5; object["images"] = report.images }
            if let beforeTraining, let fineTuning {
                object["top1_before_finetuning"] = beforeTraining
                object.merge(fineTuning.json) { $1 }
                object["finetune_epochs"] = object.removeValue(forKey: "epochs")
            }
            print(try Terminal.json(object))
            return
        }
        print("wrote \(output) (\(format.rawValue), \(Terminal.bytes(fileBytes)) on disk)")
        for line in pipeline.neuronLines() { print(line) }
        if let result = pipeline.kernels, let config = kernelConfig {
            let f = result.footprint
            print("kernels: \(f.kernels) → \(f.clusters) shared (\(config.mode.rawValue), \(config.scope.rawValue) scope): kernel reduction \(Terminal.percent(f.kernelReduction))")
            print("kernel footprint: codebook \(Terminal.bytes(f.codebookBytes)), indices \(Terminal.bytes(f.indexBytes)), scales \(Terminal.bytes(f.scaleBytes)) for \(Terminal.bytes(f.clusteredDenseBytes)) of kernels")
            print(String(format: "clustering: %.2f s, inertia %.6g", result.clusteringSeconds, result.inertia))
        }
        print("footprint: \(Terminal.bytes(total.totalBytes)) of \(Terminal.bytes(total.denseBytes)) dense (×\(String(format: "%.2f", total.compressionRatio)))")
        if let beforeTraining, let fineTuning {
            print("fine-tuning (\(fineTuning.epochs.count) epoch(s)): \(fineTuning.summary); test top-1 before: \(Terminal.percent(beforeTraining))")
        }
        if let report { print("top-1: \(Terminal.percent(report.top1))   top-5: \(Terminal.percent(report.top5))   (\(report.images) images)") }
    }
}
