import ArgumentParser
import FileOutput
import Foundation
import ModelGraph
import PackedFormat

/// Converts between the model files: packed ↔ codebook ONNX ↔ dense ONNX.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model file: a packed file to ONNX (codebook form, or dense) and an ONNX codebook file to packed.")

    enum Target: String, ExpressibleByArgument, CaseIterable {
        /// The codebook ONNX graph (onnxruntime runs it).
        case onnx
        /// Every weight rebuilt: a plain ONNX model.
        case dense
        /// The packed file.
        case packed

        var format: ExportFormat {
            switch self {
            case .onnx: .codebook
            case .dense: .dense
            case .packed: .packed
            }
        }
    }

    @OptionGroup var model: ModelArgument

    @Option(help: "What to write: \(Target.allCases.map(\.rawValue).joined(separator: ", ")).")
    var to: Target

    @Option(name: [.short, .long], help: "Where to write it.")
    var output: String

    func run() throws {
        let input = try model.path
        try ensureDistinct(output: output, input: input)
        let packing = try ModelFile.save(try model.load(), format: to.format, to: output)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print("wrote \(output) (\(to.rawValue), \(Terminal.bytes(bytes)))")
        if let packing {
            print(String(format: "index streams: %.3f bits per index stored, entropy %.3f", packing.bitsPerIndex, packing.entropy))
        }
    }
}
