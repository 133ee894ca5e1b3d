import ArgumentParser
import Compression
import Compute
import Datasets
import Evaluation
import Execution
import Foundation
import ModelGraph
import Training

extension TrainingConfiguration.Optimizer: ExpressibleByArgument {}
extension TrainingConfiguration.Schedule: ExpressibleByArgument {}

/// `--lr auto` or `--lr RATE`.
extension FineTuningConfiguration.LearningRate: ExpressibleByArgument {
    public init?(argument: String) {
        if argument == "auto" { self = .auto } else if let rate = Float(argument) { self = .fixed(rate) } else { return nil }
    }

    public var defaultValueDescription: String {
        switch self {
        case .auto: "auto"
        case .fixed(let rate): "\(rate)"
        }
    }
}

/// Training settings shared by `finetune`, `compress --finetune-epochs` and `sweep --finetune-epochs`; they map onto
/// `FineTuningConfiguration`, and the library does the rest.
struct TrainingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Peak learning rate, or auto.",
                               discussion: "auto: a learning-rate range test (40 steps of one new batch each, the rate growing from 1e-4 to 1) picks a tenth of the rate where the smoothed loss was lowest."))
    var lr: FineTuningConfiguration.LearningRate = .auto

    @Option(help: "sgd (momentum, Nesterov) or adam.")
    var optimizer: TrainingConfiguration.Optimizer = .sgd

    @Option(name: [.customLong("train-batch"), .customLong("batch")], help: "Training batch size.")
    var trainBatch: Int = 64

    @Option(help: "Learning-rate schedule: cosine, one-cycle or constant (after a linear warm-up over 3% of the steps).")
    var schedule: TrainingConfiguration.Schedule = .cosine

    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9

    @Option(help: "L2 weight decay on weights of rank ≥ 2.")
    var weightDecay: Float = 5e-4

    @Flag(help: "No random flips and shifts of the training images.")
    var noAugment = false

    @Flag(help: "Keep BatchNormalization statistics frozen while training.")
    var freezeBatchNorm = false

    @Option(help: "Stop each epoch after this many steps.")
    var steps: Int?

    @Option(help: "Train on the first N training images only (after the held-out ones are set aside).")
    var trainLimit: Int?

    @Option(help: ArgumentHelp("Training images set aside (seeded) to choose the state to keep; 0 keeps the last state.",
                               discussion: "The model is evaluated on them before training, at four check-points per epoch and at the end; the best state is written, and when none beats the compressed model the compressed model is written."))
    var heldOut: Int = 2000

    @Option(help: ArgumentHelp("Re-assign every clustered weight to its nearest codebook entry every N steps (default: assignments stay fixed).",
                               discussion: "Each kernel keeps a dense shadow copy — the original weights with compress --finetune-epochs, else the clustered ones — trained with its own gradient (straight-through); the codebooks (and scales) train as usual."))
    var reassignEvery: Int?

    /// The library configuration these flags ask for; a setting out of range is reported with the flag that set it
    /// (`epochsFlag` names the command's epochs option).
    func configuration(epochs: Int, seed: UInt64, preprocessing: Preprocessing, epochsFlag: String = "--epochs") throws -> FineTuningConfiguration {
        var c = FineTuningConfiguration(epochs: epochs)
        c.learningRate = lr
        c.training.optimizer = optimizer
        c.training.batchSize = trainBatch
        c.training.schedule = schedule
        c.training.momentum = momentum
        c.training.nesterov = optimizer == .sgd && momentum > 0
        c.training.weightDecay = weightDecay
        c.training.augment = !noAugment
        c.training.background = (0 - preprocessing.mean[0]) / preprocessing.std[0]  // one channel: training reads IDX or .npy data
        c.training.batchNormalization = freezeBatchNorm ? .frozen : .train
        c.training.stepsPerEpoch = steps
        c.training.seed = seed
        c.trainingLimit = trainLimit
        c.heldOut = heldOut
        do {
            try c.validate()
            if let reassignEvery { try Reassignment.validate(every: reassignEvery) }
        } catch TrainingError.setting(let setting, let message) {
            let flags: [TrainingError.Setting: String] = [
                .epochs: epochsFlag, .learningRate: "--lr", .batchSize: "--batch", .momentum: "--momentum", .weightDecay: "--weight-decay",
                .stepsPerEpoch: "--steps", .reassignEvery: "--reassign-every", .heldOut: "--held-out", .trainingLimit: "--train-limit",
            ]
            throw ValidationError("\(flags[setting] ?? setting.words) \(message)")
        }
        return c
    }

    /// Fine-tunes `graph` (its structure — codebooks, shared columns, pruning record — kept) on the training split:
    /// the library chooses the rate, guards against divergence and returns the best state on the held-out images.
    /// With `--reassign-every`, the kernels' shadow weights start from `original`'s weights of the same name when given.
    func fineTuning(_ graph: Graph, epochs: Int, seed: UInt64, data: DataOptions, original: Graph? = nil,
                    epochsFlag: String = "--epochs") throws -> FineTuningResult {
        let config = try configuration(epochs: epochs, seed: seed, preprocessing: data.preprocessing, epochsFlag: epochsFlag)
        let train = try data.source.load(split: .train, preprocessing: data.preprocessing)
        let result = try Training.fineTune(graph, on: train, configuration: config, masked: prunedWeights(graph),
                                  reassignment: try reassignment(graph, original: original)) { event in
            switch event {
            case .rangeTest(let step, let total): Terminal.progress("learning-rate range test", step, total)
            case .evaluating(let done, let total): Terminal.progress("held-out images", done, total)
            case .training(let p):
                Terminal.status(String(format: "epoch %d/%d %d/%d  loss %.4f  accuracy %.2f%%  %.0f images/s", p.epoch, p.epochs, p.images, p.total,
                                       p.loss, 100 * p.accuracy, p.imagesPerSecond), done: p.images >= p.total)
            case .rangeTestDone(let r):
                FileHandle.standardError.write(Data(String(format: "learning-rate range test: lowest loss at lr %.3g, training at lr %.3g (%.0f s)\n",
                                                           Double(r.bestRate), Double(r.chosen), r.seconds).utf8))
            case .checkpoint(let c):
                FileHandle.standardError.write(Data(String(format: "check-point: step %d, held-out top-1 %.2f%%\n", c.step, 100 * c.top1).utf8))
            case .backoff(let b):
                FileHandle.standardError.write(Data(String(format: "fine-tuning diverged: %@; resuming from step %d at lr %.3g\n",
                                                           b.reason, b.resumedFrom, Double(b.toRate)).utf8))
            }
        }
        if let stopped = result.report.stopped {
            let kept = result.report.improved ? "the best state seen (step \(result.report.keptStep))" : "the compressed model unchanged"
            let lower = String(format: "--lr %.2g", Double(result.report.finalLearningRate * 0.3))
            let hint = result.report.learningRateFromRangeTest ? lower : "--lr auto (the default) or \(lower)"
            FileHandle.standardError.write(Data("warning: fine-tuning stopped: \(stopped); wrote \(kept); try \(hint)\n".utf8))
        }
        return result
    }

    /// For `sweep --finetune-epochs`: the kept graph, with the test top-1 of that graph as the last epoch's `testTop1`.
    func fineTune(_ graph: Graph, epochs: Int, seed: UInt64, data: DataOptions, test: ImageDataset,
                  original: Graph? = nil) throws -> (Graph, [EpochReport]) {
        let result = try fineTuning(graph, epochs: epochs, seed: seed, data: data, original: original, epochsFlag: "--finetune-epochs")
        var reports = result.report.epochs
        let top1 = try Evaluator.evaluate(try Executor(graph: result.graph), on: test) { Terminal.progress("evaluating", $0, $1) }.top1
        if !reports.isEmpty { reports[reports.count - 1].testTop1 = top1 }
        return (result.graph, reports)
    }

    /// The re-assignment `--reassign-every` asks for, with the shadow weights. Not a default for palettized weights:
    /// on VGG-16 at 2 bits per group, re-assigning every 50 steps at the range test's rate drove the held-out top-1
    /// to 9.90% by step 150, where fixed assignments reach 91.4% (docs/RESULTS.md).
    func reassignment(_ graph: Graph, original: Graph?) throws -> Reassignment? {
        guard let every = reassignEvery else { return nil }
        let structure = CodebookStructure(graph)
        guard !structure.isEmpty else {
            throw ValidationError("--reassign-every needs codebooks: compress with --bits, --kernel-reduction or --kernel-clusters and --format codebook")
        }
        let folded = try Executor(graph: graph).foldedGraph()
        var shadows: [String: Tensor<Float>] = [:]
        for layer in structure.layouts {
            let start = original?.initializers[layer.weight]?.floatTensor ?? folded.initializers[layer.weight]?.floatTensor
            guard let start, start.shape == layer.shape else { throw ValidationError("no weights of \(layer.shape) to start \(layer.weight)'s shadow from") }
            shadows[layer.weight] = start
        }
        return Reassignment(every: every, shadows: shadows) { g, latent in try structure.reassigned(g, to: latent) }
    }

    /// Weights recorded as pruned by `compress --sparsity` that are still plain initializers.
    func prunedWeights(_ graph: Graph) -> Set<String> {
        guard let record = graph.metadata["weightcluster.pruning"],
              let layers = record.split(separator: " ").first(where: { $0.hasPrefix("layers=") }) else { return [] }
        return Set(layers.dropFirst("layers=".count).split(separator: ",").map(String.init))
    }
}

/// What `finetune` can keep while training, described; throws when the file records nothing trainable.
func trainableStructure(_ graph: Graph) throws -> String {
    let codebooks = Set(WeightLayout.recorded(in: graph).map(\.codebook)).count
    let shared = graph.initializers.keys.filter { $0.hasSuffix("/wc_shared_columns") }.count
    let pruned = graph.metadata["weightcluster.pruning"] != nil
    if codebooks == 0 && shared == 0 && !pruned {
        if graph.metadata["weightcluster.kernel_clustering"] != nil || graph.metadata["weightcluster.neuron_clustering"] != nil {
            throw ValidationError("this model was written with --format dense, which does not keep the clustering structure; write it with `weightcluster compress … --format codebook` to fine-tune it")
        }
        throw ValidationError("the model has no trainable structure recorded (no codebook, shared columns or pruning record); compress it first with `weightcluster compress … --format codebook`")
    }
    var parts: [String] = []
    if codebooks > 0 { parts.append("\(codebooks) codebook tensor\(codebooks == 1 ? "" : "s")") }
    if shared > 0 { parts.append("\(shared) shared-column layer\(shared == 1 ? "" : "s")") }
    if pruned { parts.append("pruning masks") }
    return parts.joined(separator: ", ")
}

extension EpochReport {
    /// One epoch in the JSON reports of `finetune` and `compress --finetune-epochs`.
    var json: [String: Any] {
        var entry: [String: Any] = ["epoch": epoch, "loss": loss, "train_accuracy": trainAccuracy,
                                    "images_per_second": imagesPerSecond, "seconds": seconds]
        if let heldOutTop1 { entry["held_out_top1"] = heldOutTop1 }
        if let testTop1 { entry["top1"] = testTop1 }
        if let reassigned { entry["reassigned"] = reassigned }
        return entry
    }
}

extension FineTuningReport {
    /// The keys `finetune --json` and `compress --finetune-epochs --json` share.
    var json: [String: Any] {
        var object: [String: Any] = [
            "top1_before": top1Before, "top1_after": top1After, "diverged": diverged, "lr": Double(learningRate),
            "lr_final": Double(finalLearningRate), "lr_source": learningRateFromRangeTest ? "range-test" : "given",
            "held_out_images": heldOutImages, "training_images": trainingImages, "improved": improved, "kept_step": keptStep,
            "steps": steps, "finetune_seconds": seconds, "epochs": epochs.map(\.json),
            "backoffs": backoffs.map { ["step": $0.step, "resumed_from": $0.resumedFrom, "reason": $0.reason,
                                        "from_lr": Double($0.fromRate), "to_lr": Double($0.toRate)] as [String: Any] },
            "checkpoints": checkpoints.map { ["step": $0.step, "epoch": $0.epoch, "top1": $0.top1] as [String: Any] },
        ]
        if let stopped { object["stopped"] = stopped }
        if let rangeTest {
            object["range_test"] = ["best_lr": Double(rangeTest.bestRate), "chosen_lr": Double(rangeTest.chosen), "seconds": rangeTest.seconds,
                                    "points": rangeTest.points.map { [Double($0.learningRate), Double($0.loss), Double($0.smoothedLoss)] }] as [String: Any]
        }
        return object
    }
}
