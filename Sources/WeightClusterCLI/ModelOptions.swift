import ArgumentParser
import Datasets
import Execution
import Foundation
import ModelGraph
import ONNXFormat

/// The model argument shared by commands; omitted, it is the small VGG bundled with the tool.
struct ModelArgument: ParsableArguments {
    @Argument(help: "ONNX or packed (.wcm) model file (default: the bundled small VGG trained on Fashion-MNIST).")
    var model: String?

    var path: String {
        get throws {
            if let model { return model }
            guard let bundled = Bundle.module.path(forResource: "small-vgg-fmnist", ofType: "onnx", inDirectory: "Resources") else {
                throw ValidationError("the bundled default model is missing from this build; pass a MODEL path")
            }
            return bundled
        }
    }

    /// Loads and validates the model once (graph, operator attributes, shapes), so a bad model fails before
    /// any work. Under `.lenient` (the default: inspect, compress) an operator the executor does not run yet is
    /// a warning on stderr; commands that run the model ask for `.runnable`.
    func load(strictness: ModelValidation.Strictness = .lenient) throws -> Graph {
        try validated(try ModelFile.graph(try path), strictness: strictness)
    }

    /// `graph` (read from this argument's file) once validated, its warnings on stderr.
    func validated(_ graph: Graph, strictness: ModelValidation.Strictness = .lenient) throws -> Graph {
        for warning in try ModelValidation.validate(graph, strictness: strictness) {
            FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
        }
        return graph
    }

    /// Loads and validates the model for a command that runs it, and returns the executor validation prepared.
    func loadExecutor() throws -> Executor {
        try ModelValidation.validatedExecutor(try ModelFile.runnableGraph(try path))
    }
}

/// Where the evaluation data comes from and how it is preprocessed.
struct DataOptions: ParsableArguments {
    @Option(help: "Dataset: a folder of MNIST-style IDX files, or IMAGES.npy,LABELS.npy (default: \(DatasetSource.defaultFashionMNIST)).")
    var data: String?

    @Option(help: "Black pixels padded on every side of each image.")
    var pad: Int = 2

    @Option(help: "Mean subtracted after scaling pixels to [0,1].")
    var mean: Float = 0.2860

    @Option(help: "Standard deviation divided by after subtracting the mean.")
    var std: Float = 0.3530

    func validate() throws {
        guard pad >= 0 else { throw ValidationError("--pad must be ≥ 0, got \(pad)") }
        guard std > 0, std.isFinite, mean.isFinite else { throw ValidationError("--std must be a positive number and --mean finite") }
    }

    var source: DatasetSource { DatasetSource(argument: data) }
    var preprocessing: Preprocessing { Preprocessing(pad: pad, mean: mean, std: std) }
}
