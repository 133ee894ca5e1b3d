import Compression
import Execution
import FileOutput
import ModelGraph
import ONNXFormat
import PackedFormat

/// The model files commands read and write: ONNX, or the packed file (told apart by its magic bytes, not its name).
enum ModelFile {
    /// The model at `path` as a graph: a packed file in codebook form (what inspection, compression and training use);
    /// an ONNX file with the weights it keeps behind constant chains (DequantizeLinear, Cast, Transpose…) folded.
    static func graph(_ path: String) throws -> Graph {
        PackedModelFile.isPacked(path) ? try PackedModel.load(path).codebookGraph() : try ONNXModelFile.load(path).foldingWeightChains()
    }

    /// The model at `path` to run: a packed file keeps its weights compressed until each layer runs.
    static func runnableGraph(_ path: String) throws -> Graph {
        PackedModelFile.isPacked(path) ? try PackedModel.load(path).graph : try ONNXModelFile.load(path).foldingWeightChains()
    }

    /// Writes a codebook graph (as `compress` and fine-tuning return it) in `format`; for the packed file, returns
    /// what each index stream became.
    @discardableResult
    static func save(_ graph: Graph, format: ExportFormat, to path: String) throws -> PackingReport? {
        switch format {
        case .packed: return try PackedModelFile.save(graph, to: path)
        case .codebook: try ONNXModelFile.save(graph, to: path)
        case .dense: try ONNXModelFile.save(try denseGraph(graph), to: path)
        }
        return nil
    }

    /// Every weight rebuilt and folded: a plain ONNX model.
    static func denseGraph(_ graph: Graph) throws -> Graph {
        var options = Executor.Options()
        options.fuseActivations = false
        options.sharedColumns = false
        options.winograd = .never
        return try Executor(graph: graph, options: options).foldedGraph()
    }
}
