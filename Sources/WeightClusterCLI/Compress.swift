import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat
import PackedFormat
import Training

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    /// The same graph with clustered weights (a drop-in model).
    case dense
    /// Codebook + indices (+ scales), shared columns + column indices, and nodes that rebuild each weight:
    /// a really smaller file.
    case codebook
    /// The packed file (docs/PACKED-FORMAT.md): indices bit-packed or entropy-coded, run with weights compressed.
    case packed
}

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Palettize weights, prune, cluster neurons and/or 2D kernels, write the compressed model, and (with --data) measure its accuracy.")

    @OptionGroup var model: ModelArgument

    @Option(name: [.short, .long], help: "Where to write the compressed ONNX model.")
    var output: String

    @Option(help: "Fraction of kernels removed, in [0, 1): K = round(N·(1 − R)).")
    var kernelReduction: Double?

    @Option(help: "Number of shared kernels K (alternative to --kernel-reduction).")
    var kernelClusters: Int?

    @OptionGroup var kernels: KernelOptions
    @OptionGroup var neuronOptions: NeuronOptions
    @OptionGroup var palettization: PalettizationOptions
    @OptionGroup var sensitivity: SensitivityOptions

    @Option(help: "dense (same graph, clustered weights), codebook (compact ONNX) or packed (the packed file: as small as the footprint).")
    var format: ExportFormat = .dense

    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Fine-tune the compressed model for this many epochs before writing it (structure kept).")
    var finetuneEpochs: Int?

    @OptionGroup var training: TrainingOptions

    @Flag(help: "Evaluate the written model on the test set (implied by --data).")
    var evaluate = false

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Option(help: "Compare the written model with the input on the first N test images: top-1/top-5 agreement, mean KL, logit cosine (no labels needed).")
    var referenceCheck: Int?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if kernelReduction != nil && kernelClusters != nil {
            throw ValidationError("give exactly one of --kernel-reduction R and --kernel-clusters K")
        }
        if kernelReduction == nil && kernelClusters == nil && neuronOptions.isEmpty && palettization.isEmpty {
            throw ValidationError("nothing to do: give --bits B (palettization), and/or exactly one of --kernel-reduction R and --kernel-clusters K, and/or --neurons MODE with --column-reduction R, and/or --sparsity S")
        }
        if training.reassignEvery != nil && (finetuneEpochs == nil || (kernelReduction == nil && kernelClusters == nil && palettization.isEmpty)) {
            throw ValidationError("--reassign-every needs codebooks to fine-tune: give --finetune-epochs and --bits, --kernel-reduction or --kernel-clusters")
        }
        if let referenceCheck, referenceCheck < 1 { throw ValidationError("--reference-check must be at least 1 image, got \(referenceCheck)") }
        if let finetuneEpochs {
            _ = try training.configuration(epochs: finetuneEpochs, seed: kernels.seed, preprocessing: dataOptions.preprocessing, epochsFlag: "--finetune-epochs")
        }
    }

    /// The library configuration the flags describe.
    func configuration(_ graph: Graph) throws -> CompressionConfiguration {
        let kernelSize: KernelClusteringConfiguration.Size? = kernelClusters.map { .clusters($0) } ?? kernelReduction.map { .reduction($0) }
        let kernelConfig = try kernelSize.map { try kernels.configuration($0) }
        let measures = try sensitivity.measures(graph, data: dataOptions)
        var config = CompressionConfiguration(
            pruning: try neuronOptions.pruning(), neurons: try neuronOptions.clustering(kernels), kernels: kernelConfig,
            palettization: try palettization.configuration(seed: kernels.seed),
            format: format != .dense || finetuneEpochs != nil ? .codebook : .dense,
            importance: measures.importance, bitsPerWeight: sensitivity.bitsPerWeight)
        config.allocationCost = measures.cost
        config.allocationForms = (sensitivity.allocationForms ?? .scalar).candidates
        config.compensation = measures.compensation
        config.targetBytes = try sensitivity.targetBytes
        return config
    }

    func run() throws {
        let inputPath = try model.path
        try ensureDistinct(output: output, input: inputPath)
        let graph = try model.load()
        var result = try mapped { try compress(graph, configuration: try configuration(graph)) }
        let uncompensated = (result.palettization?.layers ?? []).filter { $0.compensated == false }
        if let first = uncompensated.first {
            FileHandle.standardError.write(Data("warning: --compensate left \(uncompensated.count) layer\(uncompensated.count == 1 ? "" : "s") to nearest assignment (\(uncompensated.prefix(3).map(\.layer).joined(separator: ", "))\(uncompensated.count > 3 ? ", …" : "")): \(first.note ?? "")\n".utf8))
        }
        var written = result.graph
        var fineTuning: FineTuningReport?
        var beforeTraining: Double?
        // The test images, loaded once, when anything is evaluated.
        var testImages: ImageDataset?
        let measuresAccuracy = evaluate || dataOptions.data != nil || finetuneEpochs != nil
        if measuresAccuracy || referenceCheck != nil {
            testImages = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing, limit: limit)
        }
        if let finetuneEpochs, let test = testImages {
            beforeTraining = try Evaluator.evaluate(try Executor(graph: written), on: test) { Terminal.progress("before fine-tuning", $0, $1) }.top1
            let tuned = try training.fineTuning(written, epochs: finetuneEpochs, seed: kernels.seed, data: dataOptions, original: graph,
                                                epochsFlag: "--finetune-epochs")
            fineTuning = tuned.report
            written = tuned.graph
        }
        // `written` is in codebook form unless the library already rebuilt it densely (--format dense, no fine-tuning).
        let alreadyDense = format == .dense && finetuneEpochs == nil
        let packing = try ModelFile.save(written, format: alreadyDense ? .codebook : format, to: output)
        try sensitivity.savePlan(result.allocation)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0

        var report: AccuracyReport?
        var agreement: AgreementReport?
        if let referenceCheck, let images = testImages {
            agreement = try Agreement.measure(try Executor(graph: try ModelFile.runnableGraph(output)), reference: try Executor(graph: graph),
                                              on: images.prefix(referenceCheck)) { Terminal.progress("comparing with the input", $0, $1) }
        }
        if let dataset = testImages, measuresAccuracy {
            // Evaluate what was written, read back from the file.
            let executor = try Executor(graph: try ModelFile.runnableGraph(output))
            report = try Evaluator.evaluate(executor, on: dataset) { Terminal.progress("evaluating", $0, $1) }
        }
        result.model = inputPath
        result.output = output
        result.format = format == .dense ? .dense : .codebook
        result.fileBytes = fileBytes
        result.seed = kernels.seed
        result.calibrationImages = sensitivity.calibration
        result.top1 = report?.top1
        result.top5 = report?.top5
        result.images = report?.images
        if json {
            print(try CompressReport(result: result, top1BeforeFinetuning: beforeTraining, fineTuning: fineTuning, packing: packing,
                                     format: format, agreement: agreement).json())
            return
        }
        print("wrote \(output) (\(format.rawValue), \(Terminal.bytes(fileBytes)) on disk)")
        for line in result.neuronLines() { print(line) }
        if let k = result.kernels {
            let f = k.footprint, config = k.configuration
            print("kernels: \(f.kernels) → \(f.clusters) shared (\(config.mode.rawValue), \(config.scope.rawValue) scope): kernel reduction \(Terminal.percent(f.kernelReduction))")
            print("kernel footprint: codebook \(Terminal.bytes(f.codebookBytes)), indices \(Terminal.bytes(f.indexBytes)), scales \(Terminal.bytes(f.scaleBytes)) for \(Terminal.bytes(f.clusteredDenseBytes)) of kernels")
            print(String(format: "clustering: %.2f s, inertia %.6g", k.clusteringSeconds, k.inertia))
        }
        for line in result.palettizationLines() { print(line) }
        if let packing {
            print(String(format: "packed index streams: %.3f bits per index stored, entropy %.3f", packing.bitsPerIndex, packing.entropy))
            for line in packing.lines { print(line) }
        }
        print("footprint: \(Terminal.bytes(result.footprintBytes)) of \(Terminal.bytes(result.denseBytes)) dense (×\(String(format: "%.2f", result.compressionRatio)))")
        if let beforeTraining, let fineTuning {
            print("fine-tuning (\(fineTuning.epochs.count) epoch(s)): \(fineTuning.summary); test top-1 before: \(Terminal.percent(beforeTraining))")
        }
        if let report { print("top-1: \(Terminal.percent(report.top1))   top-5: \(Terminal.percent(report.top5))   (\(report.images) images)") }
        if let agreement { print("against the input: " + agreement.summary) }
    }
}

/// `compress --json`: the library's report, plus fine-tuning when it ran (the keys `finetune --json` uses, its
/// epochs under `finetune_epochs`).
struct CompressReport {
    var result: CompressionResult
    var top1BeforeFinetuning: Double?
    var fineTuning: FineTuningReport?
    var packing: PackingReport?
    var format: ExportFormat
    var agreement: AgreementReport?

    func json() throws -> String {
        var object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(result)) as? [String: Any] ?? [:]
        object["format"] = format.rawValue
        if let agreement { object["reference_check"] = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(agreement)) }
        if let packing {
            object["index_streams"] = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(packing.streams))
            object["bits_per_index"] = packing.bitsPerIndex
            object["index_entropy"] = packing.entropy
        }
        if let fineTuning {
            object["top1_before_finetuning"] = top1BeforeFinetuning
            object.merge(fineTuning.json) { $1 }
            object["finetune_epochs"] = object.removeValue(forKey: "epochs")
        }
        return try Terminal.json(object)
    }
}

extension CompressionResult {
    /// Human-readable lines on palettization: totals, then one line per weight.
    func palettizationLines() -> [String] {
        guard let p = palettization else { return [] }
        var lines = [String(format: "palettization: %d weights in %d tensors, %.2f bits per weight, %.2f s", p.denseBytes / 4, p.layers.count,
                            bitsPerWeight ?? 0, p.seconds)]
        if p.sharedCodebookBytes > 0 { lines.append("  shared codebooks: \(Terminal.bytes(p.sharedCodebookBytes))") }
        for l in p.layers {
            lines.append("  \(l.layer) (\(l.opType)): \(l.form) \(l.bits)-bit, K=\(l.clusters)\(l.clusterDim > 1 ? ", d=\(l.clusterDim)" : ""), \(l.granularity) (\(l.codebooks) codebook\(l.codebooks == 1 ? "" : "s")), \(Terminal.bytes(l.denseBytes)) → \(Terminal.bytes(l.storedBytes)), relative error \(String(format: "%.3g", l.relativeError))"
                         + (l.note.map { "; \($0)" } ?? ""))
        }
        return lines
    }
}
