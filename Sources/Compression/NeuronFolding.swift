import Compute
import ModelGraph

/// Where a fully-connected layer's per-column factors can go: into the node that produced its input, through
/// ops that commute with a non-negative per-unit scale, so that scaling that node's output unit i by fᵢ
/// multiplies input i of the layer by fᵢ exactly.
struct FoldTarget {
    /// Output name of the producing Gemm/MatMul/Conv (stable across the dense and compressed graphs).
    var producerOutput: String
    /// Ops walked through, from the producer to the layer.
    var path: [String]
    /// Constant bias vectors added on the way (an `Add` after a MatMul): scaled with the unit.
    var biases: [String]
    var description: String
}

enum FoldDecision {
    case fold(FoldTarget)
    /// Not exact: the reason, for the report.
    case explicit(String)
}

/// Ops through which a non-negative per-unit (per-channel) scale passes unchanged: s·f(z) = f(s·z).
private let commuting: Set<String> = ["Relu", "LeakyRelu", "Dropout", "Identity", "MaxPool", "AveragePool", "GlobalAveragePool",
                                      "GlobalMaxPool", "Flatten", "Reshape"]

/// Decides from the graph whether the columns of `layer` can be folded into the layer before it.
func foldDecision(for layer: FullyConnected, in graph: Graph) -> FoldDecision {
    let outputs = Set(graph.outputs.map(\.name))
    var value = layer.node.inputs[0]
    var reader = layer.node
    var path: [String] = []
    var biases: [String] = []
    while true {
        if outputs.contains(value) { return .explicit("its input '\(value)' is also a graph output") }
        let readers = graph.consumers(of: value)
        if readers.count != 1 || readers[0] != reader {
            let other = readers.first { $0 != reader }?.displayName ?? "?"
            return .explicit("'\(value)' is also read by \(other), which folding would change")
        }
        guard let node = graph.producer(of: value) else { return .explicit("its input '\(value)' is a graph input") }
        let constantInput = node.inputs.first { graph.initializers[$0] != nil }
        switch node.opType {
        case let op where commuting.contains(op):
            if op == "Flatten", node.int("axis", default: 1) != 1 { return .explicit("Flatten with axis ≠ 1 in between") }
            if op == "Reshape" {
                guard let shape = graph.initializers[node.inputs[1]]?.int64Values, shape.count == 2,
                      shape[1] == Int64(layer.inputs) || shape[1] == -1 else {
                    return .explicit("Reshape '\(node.displayName)' does not keep one unit per column")
                }
            }
            path.append(op)
            reader = node
            value = node.inputs[0]
        case "Add":
            guard let bias = constantInput, let b = graph.initializers[bias]?.floatTensor, b.count == layer.inputs,
                  b.shape.last == layer.inputs, graph.consumers(of: bias).count == 1,
                  let other = node.inputs.first(where: { $0 != bias }) else {
                return .explicit("Add '\(node.displayName)' is not a per-unit bias")
            }
            biases.append(bias)
            path.append("Add")
            reader = node
            value = other
        case "Gemm", "MatMul", "Conv":
            if let reason = producerProblem(node, units: layer.inputs, in: graph) { return .explicit(reason) }
            let description = ([node.displayName] + path.reversed()).joined(separator: " → ")
            return .fold(FoldTarget(producerOutput: node.outputs[0], path: path.reversed(), biases: biases, description: description))
        default:
            return .explicit("\(node.opType) '\(node.displayName)' between the layer and its producer does not commute with a per-unit scale")
        }
    }
}

/// Why the output units of `node` cannot be rescaled one at a time, or nil when they can.
private func producerProblem(_ node: Node, units: Int, in graph: Graph) -> String? {
    guard node.inputs.count >= 2, let (weight, _) = unitWeight(of: node, in: graph) else {
        return "producer '\(node.displayName)' has no constant weight"
    }
    if node.opType == "Conv" {
        let channels = weight.shape[0]
        if channels != units {
            return "each column maps to one spatial position of a \(channels)-channel feature map of '\(node.displayName)' (\(units) columns = \(channels) × \(units / max(1, channels)) positions)"
        }
    } else if (node.opType == "Gemm" && node.int("transA", default: 0) != 0) {
        return "producer '\(node.displayName)' is a transposed-input Gemm"
    } else if unitCount(node, weight) != units {
        return "producer '\(node.displayName)' has \(unitCount(node, weight)) outputs for \(units) columns"
    }
    if node.inputs.count > 2, !node.inputs[2].isEmpty {
        guard graph.initializers[node.inputs[2]]?.floatTensor != nil else { return "producer '\(node.displayName)' has a non-constant bias" }
        if graph.consumers(of: node.inputs[2]).count != 1 { return "the bias of '\(node.displayName)' is shared with other nodes" }
    }
    return nil
}

/// The float initializer holding the producer's output units (its weight, or the shared columns its weight is
/// gathered from) and the axis of that tensor that indexes output units.
private func unitWeight(of node: Node, in graph: Graph) -> (Tensor<Float>, String)? {
    var name = node.inputs[1]
    if graph.initializers[name] == nil, let gather = graph.producer(of: name), gather.opType == "Gather",
       graph.consumers(of: name).count == 1 {
        name = gather.inputs[0]
    }
    guard let w = graph.initializers[name]?.floatTensor, w.rank >= 2, graph.consumers(of: name).count == 1 else { return nil }
    return (w, name)
}

private func unitCount(_ node: Node, _ w: Tensor<Float>) -> Int {
    node.opType == "Gemm" && node.int("transB", default: 0) != 0 ? w.shape[0] : w.shape[w.rank - 1]
}

/// Multiplies output unit i of the fold target by factors[i] (weights, bias, and biases added on the way).
func applyFold(_ factors: [Float], _ target: FoldTarget, in graph: inout Graph) {
    guard let node = graph.producer(of: target.producerOutput), let (w, name) = unitWeight(of: node, in: graph) else { return }
    var scaled = w
    let unitsOnRows = node.opType == "Conv" || (node.opType == "Gemm" && node.int("transB", default: 0) != 0)
    if unitsOnRows {
        let stride = w.count / w.shape[0]
        for u in 0..<w.shape[0] { for j in 0..<stride { scaled.scalars[u * stride + j] *= factors[u] } }
    } else {
        let columns = w.shape[w.rank - 1]
        for r in 0..<(w.count / columns) { for u in 0..<columns { scaled.scalars[r * columns + u] *= factors[u] } }
    }
    graph.initializers[name] = .float(scaled)
    var biasNames = target.biases
    if node.inputs.count > 2, !node.inputs[2].isEmpty { biasNames.append(node.inputs[2]) }
    for bias in biasNames {
        guard var b = graph.initializers[bias]?.floatTensor else { continue }
        if b.count == 1 && factors.count > 1 { b = Tensor(shape: [factors.count], repeating: b.scalars[0]) }
        for u in 0..<min(b.count, factors.count) { b.scalars[u] *= factors[u] }
        graph.initializers[bias] = .float(b)
    }
}
