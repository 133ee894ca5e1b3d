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
    @Option(help: ArgumentHelp(
        "Dataset: a folder of MNIST-style IDX files, IMAGES.npy,LABELS.npy, or an image folder (default: \(DatasetSource.defaultFashionMNIST)).",
        discussion: """
            An image folder has one sub-folder of .jpg/.jpeg/.png files per class (torchvision's ImageFolder); other \
            files are ignored, and one warning line counts them. Images are converted to RGB (grey and palette images copied to three channels, alpha \
            dropped). A corrupt or truncated image, an empty class folder or images of different sizes (without \
            --resize/--crop) stop the command with an error naming the file: nothing is skipped.
            """))
    var data: String?

    @Option(help: "Black pixels padded on every side of each image (default: 2; 0 for image folders).")
    var pad: Int?

    @Option(help: "Mean subtracted after scaling pixels to [0,1]: one value, or one per channel, comma-separated (default: 0.2860; 0.485,0.456,0.406 for image folders).",
            transform: DataOptions.channelValues)
    var mean: [Float]?

    @Option(help: "Standard deviation divided by after subtracting the mean: one value, or one per channel (default: 0.3530; 0.229,0.224,0.225 for image folders).",
            transform: DataOptions.channelValues)
    var std: [Float]?

    @Option(help: "Image folders: resize the shorter side to N pixels, keeping the aspect ratio (bilinear with antialiasing, as torchvision's Resize on PIL images).")
    var resize: Int?

    @Option(help: "Image folders: keep the centre N×N pixels (after --resize), as torchvision's CenterCrop.")
    var crop: Int?

    @Option(help: "Image folders: the colour order the model expects (rgb, bgr); --mean/--std values are in this order.")
    var channelOrder: Preprocessing.ChannelOrder = .rgb

    @Option(help: "Image folders: the model's input layout, channels first (nchw) or last (nhwc, as TensorFlow exports).")
    var layout: Preprocessing.Layout = .nchw

    @Option(help: "Image folders: a text file with one class folder name per line in the model's output order (line 1 is class 0); default: folder names sorted.")
    var classMap: String?

    func validate() throws {
        if let pad, pad < 0 { throw ValidationError("--pad must be ≥ 0, got \(pad)") }
        for (name, values) in [("--mean", mean ?? []), ("--std", std ?? [])] where values.count > 4 {
            throw ValidationError("\(name) takes one value or one per channel (at most 4), got \(values.count)")
        }
        guard (std ?? []).allSatisfy({ $0 > 0 && $0.isFinite }), (mean ?? []).allSatisfy(\.isFinite) else {
            throw ValidationError("--std must be a positive number and --mean finite")
        }
        for (name, value) in [("--resize", resize), ("--crop", crop)] {
            if let value, value < 1 { throw ValidationError("\(name) must be ≥ 1, got \(value)") }
        }
        if let resize, let crop, crop > resize {
            throw ValidationError("--crop \(crop) is larger than --resize \(resize): the centre crop must fit inside the resized image")
        }
        if resize != nil || crop != nil || channelOrder != .rgb || layout != .nchw || classMap != nil, !source.isImageFolder {
            throw ValidationError("--resize, --crop, --channel-order, --layout and --class-map apply to image folders (--data DIR with one sub-folder of JPEG/PNG files per class)")
        }
        if case .imageFolder(let directory, _) = source, case let ignored = ImageFolder.ignoredFiles(in: directory), let first = ignored.first {
            let count = ignored.count
            FileHandle.standardError.write(Data("warning: \(count) file\(count == 1 ? "" : "s") in the class folders of \(directory) \(count == 1 ? "is" : "are") not .jpg/.jpeg/.png and \(count == 1 ? "is" : "are") ignored (first: \(first))\n".utf8))
        }
    }

    var source: DatasetSource { DatasetSource(argument: data, classMap: classMap) }

    /// The flags as preprocessing; what is not given takes the default for the kind of data.
    var preprocessing: Preprocessing {
        if source.isImageFolder {
            return Preprocessing(pad: pad ?? 0, mean: mean ?? Preprocessing.imageNetMean, std: std ?? Preprocessing.imageNetStd,
                                 resize: resize, crop: crop, channelOrder: channelOrder, layout: layout)
        }
        let defaults = Preprocessing()
        return Preprocessing(pad: pad ?? defaults.pad, mean: mean ?? defaults.mean, std: std ?? defaults.std)
    }

    /// "0.485,0.456,0.406" or "0.5".
    static func channelValues(_ text: String) throws -> [Float] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == text.split(separator: ",", omittingEmptySubsequences: false).count else {
            throw ValidationError("'\(text)' is not a number or a comma-separated list of numbers (e.g. 0.485,0.456,0.406)")
        }
        return values
    }
}

extension Preprocessing.ChannelOrder: ExpressibleByArgument {}
extension Preprocessing.Layout: ExpressibleByArgument {}
