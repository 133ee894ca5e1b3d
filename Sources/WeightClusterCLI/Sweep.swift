import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress at several settings, evaluate each, and chart accuracy against size.",
        discussion: """
        Kernel sweep (default): kernel reductions × kernel modes.
        Neuron sweep (--neurons): sparsity × column reduction × neuron modes on the fully-connected layers.
        """)

    @OptionGroup var model: ModelArgument

    @Option(help: "Comma-separated kernel reductions, each in [0, 1).")
    var kernelReduction: String = "0.5,0.75,0.856,0.9,0.95,0.99"

    @Option(help: "Comma-separated modes to run at each reduction (plain, scaled).")
    var kernelModes: String?

    @Option(help: "Neuron sweep: comma-separated modes (kmeans, spherical, spherical-weighted).")
    var neurons: String?

    @Option(help: "Neuron sweep: comma-separated column reductions, each in [0, 1).")
    var columnReduction: String = "0.5,0.75,0.9"

    @Option(help: "Neuron sweep: comma-separated sparsities (magnitude pruning first), each in [0, 1).")
    var sparsity: String = "0"

    @Option(help: "Neuron sweep: pruning threshold per layer or global.")
    var pruneScope: PruningConfiguration.Scope = .layer

    @Option(help: "Neuron sweep: fully-connected layers (names or globs, comma-separated; default all).")
    var layers: [String] = []

    @OptionGroup var kernels: KernelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Also fine-tune every point for this many epochs and report its top-1 (a fine-tuned column).")
    var finetuneEpochs: Int?

    @OptionGroup var training: TrainingOptions

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Option(help: "Folder for sweep.csv, sweep.json, sweep.md and sweep.svg.")
    var out: String?

    func run() throws {
        let graph = try model.load(strictness: .runnable)
        var dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing)
        if let limit { dataset = dataset.prefix(limit) }
        let plan = try neurons != nil ? neuronPlan() : kernelPlan()
        let energy = neurons == nil ? try kernels.channelEnergy(graph, data: dataOptions) : [:]
        let baseline = try Evaluator.evaluate(try Executor(graph: graph), on: dataset) { Terminal.progress("baseline", $0, $1) }
        var rows: [SweepRow] = []
        var pruned: (Double, PruningResult)? = nil
        for (number, point) in plan.enumerated() {
            // Pruning is shared by every point of the same sparsity.
            var prune: PruningResult? = nil
            if let s = point.sparsity, s > 0 {
                if pruned?.0 != s {
                    pruned = (s, try pruneWeights(in: graph, configuration: .init(sparsity: s, scope: pruneScope, layers: layerPatterns)))
                }
                prune = pruned?.1
            }
            let pipeline = try Pipeline(prune?.graph ?? graph, pruning: nil, neurons: point.neurons, kernels: point.kernels,
                                        channelEnergy: energy)
            let footprint = ModelFootprint(original: graph, pruning: prune, neurons: pipeline.neurons, kernels: pipeline.kernels)
            let label = "\(point.label) (\(number + 1)/\(plan.count))"
            let report = try Evaluator.evaluate(try Executor(graph: pipeline.graph), on: dataset) { Terminal.progress(label, $0, $1) }
            var row = SweepRow(mode: point.mode, footprintBytes: footprint.totalBytes, denseBytes: footprint.denseBytes,
                               compressionRatio: footprint.compressionRatio, top1: report.top1, deltaTop1: report.top1 - baseline.top1,
                               clusteringSeconds: pipeline.seconds)
            if let k = pipeline.kernels {
                row.scope = k.configuration.scope.rawValue
                row.kernelReduction = k.footprint.kernelReduction
                row.clusters = k.footprint.clusters
                row.kernels = k.footprint.kernels
                row.inertia = k.inertia
            }
            if let n = pipeline.neurons {
                let columns = n.layers.reduce(0) { $0 + $1.inputs }, shared = n.layers.reduce(0) { $0 + $1.clusters }
                row.sparsity = point.sparsity ?? 0
                row.columnReduction = 1 - Double(shared) / Double(max(1, columns))
                row.clusters = shared
                row.columns = columns
                row.foldedLayers = n.foldedLayers
                row.scaledLayers = n.scaledLayers
                row.inertia = n.layers.reduce(0) { $0 + $1.inertia }
            }
            var tuned = ""
            if let finetuneEpochs {
                let (_, reports) = try training.fineTune(pipeline.graph, epochs: finetuneEpochs, seed: kernels.seed, data: dataOptions, test: dataset)
                row.top1Finetuned = reports.last?.testTop1
                tuned = ", fine-tuned \(Terminal.percent(row.top1Finetuned ?? 0))"
            }
            rows.append(row)
            FileHandle.standardError.write(Data("\(label): top-1 \(Terminal.percent(report.top1))\(tuned)\n".utf8))
        }
        let sweep = SweepReport(model: try model.path, images: dataset.count, baselineTop1: baseline.top1, rows: rows)
        print(sweep.table())
        if let out {
            try createOutputDirectory(out)
            for (name, text) in [("sweep.csv", sweep.csv()), ("sweep.json", try sweep.json()), ("sweep.md", sweep.markdown()),
                                 ("sweep.svg", sweep.svg())] {
                try writeAtomically(Data(text.utf8), to: (out as NSString).appendingPathComponent(name))
            }
            print("wrote \(out)/sweep.{csv,json,md,svg}")
        }
    }

    struct Point {
        var label: String
        var mode: String
        var sparsity: Double?
        var neurons: NeuronClusteringConfiguration?
        var kernels: KernelClusteringConfiguration?
    }

    var layerPatterns: [String] { layers.flatMap { $0.split(separator: ",").map { String($0).trimmed } } }

    func kernelPlan() throws -> [Point] {
        let reductions = try fractions(kernelReduction, option: "--kernel-reduction")
        let modes = try (kernelModes ?? kernels.kernelMode.rawValue).split(separator: ",").map { text in
            guard let mode = KernelClusteringConfiguration.Mode(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown kernel mode '\(text)' (plain, scaled)")
            }
            return mode
        }
        return try modes.flatMap { mode in
            try reductions.map { r in
                var options = kernels
                options.kernelMode = mode
                return Point(label: "\(mode.rawValue) R=\(r)", mode: mode.rawValue, kernels: try options.configuration(.reduction(r)))
            }
        }
    }

    func neuronPlan() throws -> [Point] {
        let reductions = try fractions(columnReduction, option: "--column-reduction")
        let sparsities = try fractions(sparsity, option: "--sparsity")
        let modes = try neurons!.split(separator: ",").map { text in
            guard let mode = NeuronClusteringConfiguration.Mode(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown neuron mode '\(text)' (kmeans, spherical, spherical-weighted)")
            }
            return mode
        }
        var plan: [Point] = []
        for s in sparsities {
            for mode in modes {
                for r in reductions {
                    var config = NeuronClusteringConfiguration(size: .reduction(r), mode: mode, layers: layerPatterns,
                                                               seed: kernels.seed, maxIterations: kernels.maxIterations)
                    config.initialization = kernels.kernelInit
                    try config.validate()
                    plan.append(Point(label: "\(mode.rawValue) sparsity=\(s) R=\(r)", mode: mode.rawValue, sparsity: s, neurons: config))
                }
            }
        }
        return plan
    }

    func fractions(_ text: String, option: String) throws -> [Double] {
        try text.split(separator: ",").map { item -> Double in
            guard let r = Double(String(item).trimmed), r >= 0, r < 1 else {
                throw ValidationError("\(option) values must be numbers in [0, 1), got '\(item)'")
            }
            return r
        }
    }
}
