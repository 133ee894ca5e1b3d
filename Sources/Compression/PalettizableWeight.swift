import Compute
import ModelGraph

/// A weight tensor palettization can take: Conv input 1, Gemm input 1, MatMul constant input 1 ([in, out]), Gather
/// constant input 0 looked up by the model's input (an embedding table; a table gathered by constant indices is a
/// codebook another pass wrote), seen as rows = output units × columns.
struct PalettizableWeight {
    var node: Node
    var name: String
    var tensor: Tensor<Float>
    var rows: Int
    var columns: Int
    var transposed: Bool

    static func all(in graph: Graph) -> [PalettizableWeight] {
        var seen = Set<String>()
        // A Gather whose indices are constant rebuilds a weight from a table (a kernel codebook, shared columns):
        // the table is already compressed. Only a lookup by the input (an embedding) makes its table a weight.
        let constant = constantValues(in: graph)
        var result: [PalettizableWeight] = []
        for node in graph.nodes {
            let slot: Int
            switch node.opType {
            case "Conv", "Gemm", "MatMul": slot = 1
            case "Gather" where node.inputs.count > 1 && !constant.contains(node.inputs[1]): slot = 0
            default: continue
            }
            guard node.inputs.count > slot, !seen.contains(node.inputs[slot]),
                  let t = graph.initializers[node.inputs[slot]]?.floatTensor else { continue }
            let name = node.inputs[slot]
            var rows = 0, columns = 0, transposed = false
            switch node.opType {
            case "Conv":
                guard t.rank >= 3 else { continue }
                rows = t.shape[0]; columns = t.count / max(1, rows)
            case "Gemm":
                guard t.rank == 2 else { continue }
                transposed = node.int("transB", default: 0) == 0
                (rows, columns) = transposed ? (t.shape[1], t.shape[0]) : (t.shape[0], t.shape[1])
            case "MatMul":
                guard t.rank == 2 else { continue }
                transposed = true
                (rows, columns) = (t.shape[1], t.shape[0])
            default:
                guard t.rank == 2, node.int("axis", default: 0) == 0 else { continue }
                (rows, columns) = (t.shape[0], t.shape[1])
            }
            guard rows > 0, columns > 0 else { continue }
            seen.insert(name)
            result.append(PalettizableWeight(node: node, name: name, tensor: t, rows: rows, columns: columns, transposed: transposed))
        }
        return result
    }

    /// The weight as rows × columns, row-major.
    var canonical: [Float] { canonical(tensor.scalars) }

    /// Values in the tensor's order (the weight's, or one per weight) as rows × columns, row-major.
    func canonical(_ scalars: [Float]) -> [Float] {
        guard transposed else { return scalars }
        var c = [Float](repeating: 0, count: scalars.count)
        scalars.withUnsafeBufferPointer { s in
            for i in 0..<columns { for r in 0..<rows { c[r * columns + i] = s[i * rows + r] } }
        }
        return c
    }
}

/// The values computed from initializers alone, through any chain of nodes (Kahn's order over the nodes whose inputs
/// are all constant; a value that depends on a graph input never is).
func constantValues(in graph: Graph) -> Set<String> {
    var constant = Set(graph.initializers.keys)
    var pending = [Int](repeating: 0, count: graph.nodes.count)
    var readers: [String: [Int]] = [:]
    var ready: [Int] = []
    for (i, node) in graph.nodes.enumerated() {
        let waiting = Set(node.inputs.filter { !$0.isEmpty && !constant.contains($0) })
        pending[i] = waiting.count
        for name in waiting { readers[name, default: []].append(i) }
        if waiting.isEmpty { ready.append(i) }
    }
    while let i = ready.popLast() {
        for output in graph.nodes[i].outputs where !output.isEmpty && constant.insert(output).inserted {
            for r in readers[output] ?? [] {
                pending[r] -= 1
                if pending[r] == 0 { ready.append(r) }
            }
        }
    }
    return constant
}
