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

/// Training settings shared by `finetune`, `compress --finetune-epochs` and `sweep --finetune-epochs`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Learning rate (peak rate for one-cycle).")
    var lr: Float = 0.01

    @Option(help: "sgd (momentum, Nesterov) or adam.")
    var optimizer: TrainingConfiguration.Optimizer = .sgd

    @Option(name: [.customLong("train-batch"), .customLong("batch")], help: "Training batch size.")
    var trainBatch: Int = 64

    @Option(help: "Learning-rate schedule: cosine, one-cycle or constant.")
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

    @Option(help: "Train on the first N training images only.")
    var trainLimit: Int?

    @Option(help: ArgumentHelp("Re-assign every clustered kernel to its nearest codebook entry every N steps (default: assignments stay fixed).",
                               discussion: "Each kernel keeps a dense shadow copy — the original weights with compress --finetune-epochs, else the clustered ones — trained with its own gradient (straight-through); the codebooks (and scales) train as usual."))
    var reassignEvery: Int?

    func configuration(epochs: Int, seed: UInt64, preprocessing: Preprocessing) throws -> TrainingConfiguration {
        var c = TrainingConfiguration(epochs: epochs)
        c.learningRate = lr
        c.optimizer = optimizer
        c.batchSize = trainBatch
        c.schedule = schedule
        c.momentum = momentum
        c.nesterov = optimizer == .sgd && momentum > 0
        c.weightDecay = weightDecay
        c.augment = !noAugment
        c.background = (0 - preprocessing.mean) / preprocessing.std
        c.batchNormalization = freezeBatchNorm ? .frozen : .train
        c.stepsPerEpoch = steps
        c.seed = seed
        try c.validate()
        if let trainLimit, trainLimit < 1 { throw ValidationError("--train-limit must be at least 1, got \(trainLimit)") }
        if let reassignEvery, reassignEvery < 1 { throw ValidationError("--reassign-every must be at least 1, got \(reassignEvery)") }
        return c
    }

    /// Fine-tunes `graph` (its structure — codebooks, shared columns, pruning record — kept) and returns the
    /// trained graph with one report per epoch, each with the test top-1 on `test`. With `--reassign-every`, the
    /// kernels' shadow weights start from `original`'s weights of the same name when given.
    func fineTune(_ graph: Graph, epochs: Int, seed: UInt64, data: DataOptions, test: ImageDataset,
                  original: Graph? = nil) throws -> (Graph, [EpochReport]) {
        let config = try configuration(epochs: epochs, seed: seed, preprocessing: data.preprocessing)
        var train = try data.source.load(split: .train, preprocessing: data.preprocessing)
        if let trainLimit { train = train.prefix(trainLimit) }
        let classes = try outputClasses(graph, sample: test.count > 0 ? test : train)
        if let bad = train.labels.first(where: { $0 >= classes }) {
            throw ValidationError("model has \(classes) outputs but the training labels go up to \(train.labels.max() ?? bad)")
        }
        let trainer = try Trainer(graph: graph, configuration: config, masked: prunedWeights(graph),
                                  reassignment: try reassignment(graph, original: original))
        let reports = try trainer.train(train, evaluate: { g in
            try Evaluator.evaluate(try Executor(graph: g), on: test) { Terminal.progress("evaluating", $0, $1) }.top1
        }, progress: { p in
            Terminal.status(String(format: "epoch %d/%d %d/%d  loss %.4f  accuracy %.2f%%  %.0f images/s", p.epoch, p.epochs, p.images, p.total,
                                   p.loss, 100 * p.accuracy, p.imagesPerSecond), done: p.images >= p.total)
        })
        return (trainer.graph, reports)
    }

    /// The re-assignment `--reassign-every` asks for, with the kernels' shadow weights.
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

    func outputClasses(_ graph: Graph, sample: ImageDataset) throws -> Int {
        let y = try Executor(graph: graph)(sample.batch(0..<min(1, sample.count)))
        return y.shape.last ?? 0
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
        var entry: [String: Any] = ["epoch": epoch, "loss": loss, "train_accuracy": trainAccuracy, "top1": testTop1 ?? 0,
                                    "images_per_second": imagesPerSecond, "seconds": seconds]
        if let reassigned { entry["reassigned"] = reassigned }
        return entry
    }
}
