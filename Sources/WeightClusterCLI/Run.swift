import ArgumentParser
import Compute
import Datasets
import Execution
import FileOutput

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on an input tensor from a .npy file and write its output as .npy.")

    @OptionGroup var model: ModelArgument

    @Option(help: "Input tensor (.npy, float32 or integer), fed to the model's first input.")
    var input: String

    @Option(help: "Where to write the output tensor (.npy).")
    var output: String

    @Option(help: "Which graph output to write (default: the first).")
    var outputName: String?

    func run() throws {
        let path = try model.path
        try ensureDistinct(output: output, input: path)
        try ensureDistinct(output: output, input: input)
        let executor = try model.loadExecutor()
        let value: AnyTensor = switch try NPYFile.read(input) {
        case .float(let t): .float(t)
        case .int64(let t): .int64(t)
        case .uint8(let t): .float(Tensor(shape: t.shape, scalars: t.scalars.map { Float($0) }))
        }
        guard let inputName = executor.graph.inputs.first?.name else { throw ValidationError("the model has no inputs") }
        let outputs = try executor.run([inputName: value])
        let name = outputName ?? executor.graph.outputs.first?.name ?? ""
        guard let result = outputs[name] else {
            throw ValidationError("the model has no output '\(name)'; outputs: \(executor.graph.outputs.map(\.name).joined(separator: ", "))")
        }
        switch result {
        case .float(let t): try NPYFile.write(.float(t), to: output)
        case .int64(let t): try NPYFile.write(.int64(t), to: output)
        }
        print("wrote \(output): \(name) \(result.shape)")
    }
}
