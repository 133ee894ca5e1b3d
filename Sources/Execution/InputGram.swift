import Compute
import ModelGraph

/// XᵀX of the vectors a layer's weight multiplies — the receptive fields of a Conv (one group), the rows of a Gemm's
/// or MatMul's input — accumulated over batches run through the graph. A change ΔW of the weight changes the layer's
/// output by ‖ΔW Xᵀ‖² = tr(ΔW XᵀX ΔWᵀ), which GPTQ-style error compensation minimises.
public final class InputGram {
    public let node: Node
    /// The weight's input axis (a canonical weight row): C·kh·kw for a Conv, the input features for Gemm/MatMul.
    public let columns: Int
    /// `columns`×`columns`, row-major.
    public private(set) var matrix: [Float]
    /// Vectors accumulated so far.
    public private(set) var count = 0
    private let executor: Executor
    private let value: String
    private let kernel: [Int]?

    /// Nil when the node is not one whose input is a plain vector per weight row (grouped or depthwise Conv, a
    /// transposed Gemm input, a weight that is not a constant).
    public init?(node: Node, graph: Graph) throws {
        guard node.inputs.count > 1,
              let shape = graph.initializers[node.inputs[1]]?.floatTensor?.shape ?? graph.deferredWeights[node.inputs[1]]?.shape,
              shape.allSatisfy({ $0 > 0 }) else { return nil }
        switch node.opType {
        case "Conv":
            guard shape.count == 4, node.int("group", default: 1) == 1 else { return nil }
            columns = shape[1] * shape[2] * shape[3]
            kernel = [shape[2], shape[3]]
        case "Gemm":
            guard shape.count == 2, node.int("transA", default: 0) == 0 else { return nil }
            columns = node.int("transB", default: 0) == 0 ? shape[0] : shape[1]
            kernel = nil
        case "MatMul":
            guard shape.count == 2 else { return nil }
            columns = shape[0]
            kernel = nil
        default: return nil
        }
        guard let elements = checkedElementCount([columns, columns]) else { return nil }
        matrix = [Float](repeating: 0, count: elements)
        self.node = node
        value = node.inputs[0]
        // The graph cut after the value: only the nodes it depends on, the value its one output.
        var g = graph
        var needed: Set<String> = [value], kept = [Bool](repeating: false, count: graph.nodes.count), changed = true
        while changed {
            changed = false
            for (i, n) in graph.nodes.enumerated().reversed() where !kept[i] && n.outputs.contains(where: needed.contains) {
                kept[i] = true
                changed = true
                needed.formUnion(n.inputs.filter { !$0.isEmpty })
            }
        }
        g.nodes = graph.nodes.indices.filter { kept[$0] }.map { graph.nodes[$0] }
        g.outputs = [ValueInfo(name: value, shape: nil)]
        executor = try Executor(graph: g)
    }

    /// Runs the graph on `feeds` and adds what the layer's weight would multiply.
    public func add(_ feeds: [String: AnyTensor]) throws {
        guard let x = try executor.run(feeds)[value]?.floatTensor else {
            throw ExecutionError.missingValue(node: node.displayName, value: value)
        }
        try matrix.withUnsafeMutableBufferPointer { g in
            if let kernel {
                let args = Arguments(node: node, values: [], opset: executor.graph.opsetVersion)
                let window = try Operators.window2D(node, args: args, input: x.shape, kernel: kernel)
                guard x.rank == 4, x.shape[1] * kernel[0] * kernel[1] == columns else {
                    throw args.mismatch("input \(x.shape) does not fit a weight row of \(columns)")
                }
                try Gram.accumulate(convolutionInput: x, window: window, into: g.baseAddress!)
                count += x.shape[0] * (window.outputSize(h: x.shape[2], w: x.shape[3]).map { $0.h * $0.w } ?? 0)
            } else {
                guard x.rank >= 1, x.shape.last == columns else {
                    throw ExecutionError.inputMismatch(name: value, detail: "\(x.shape) does not end in the weight's \(columns) inputs")
                }
                let rows = x.count / max(1, columns)
                x.scalars.withUnsafeBufferPointer { Gram.accumulate(rows: $0.baseAddress!, count: rows, width: columns, into: g.baseAddress!) }
                count += rows
            }
        }
    }
}
