import Compute
import ModelGraph

/// A fully-connected layer: a Gemm (transA = 0) or MatMul whose weight is a constant 2-D float initializer
/// read by this node alone. Column i of W (one per input neuron) is W[:, i] of the out×in matrix.
struct FullyConnected {
    var node: Node
    var weightName: String
    /// Weight stored out×in (Gemm transB = 1), else in×out.
    var transposed: Bool
    var inputs: Int
    var outputs: Int

    init?(_ node: Node, in graph: Graph) {
        guard node.opType == "Gemm" || node.opType == "MatMul", node.inputs.count >= 2,
              let w = graph.initializers[node.inputs[1]]?.floatTensor, w.rank == 2,
              graph.initializers[node.inputs[0]] == nil,
              graph.consumers(of: node.inputs[1]).count == 1 else { return nil }
        if node.opType == "Gemm" && node.int("transA", default: 0) != 0 { return nil }
        self.node = node
        weightName = node.inputs[1]
        transposed = node.opType == "Gemm" && node.int("transB", default: 0) != 0
        (outputs, inputs) = transposed ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
    }

    /// The columns as the rows of an in×out matrix.
    func columns(_ w: Tensor<Float>) -> [Float] {
        guard transposed else { return w.scalars }
        var c = [Float](repeating: 0, count: w.count)
        for o in 0..<outputs { for i in 0..<inputs { c[i * outputs + o] = w.scalars[o * inputs + i] } }
        return c
    }

    /// The weight tensor, in this layer's storage order, of `count` columns given as the rows of a count×out matrix.
    func weight(columns c: [Float], count: Int) -> Tensor<Float> {
        guard transposed else { return Tensor(shape: [count, outputs], scalars: c) }
        var w = [Float](repeating: 0, count: c.count)
        for i in 0..<count { for o in 0..<outputs { w[o * count + i] = c[i * outputs + o] } }
        return Tensor(shape: [outputs, count], scalars: w)
    }
}

/// The fully-connected layers a pass works on: every eligible one when `patterns` is empty, else those whose
/// node or weight name matches a pattern (`*`, `?` globs). A pattern that matches nothing, or only layers that
/// are not fully connected, is an error that names what is there.
func selectFullyConnected(_ graph: Graph, patterns: [String]) throws -> [FullyConnected] {
    let eligible = graph.nodes.compactMap { FullyConnected($0, in: graph) }
    guard !patterns.isEmpty else {
        guard !eligible.isEmpty else { throw CompressionError.noFullyConnected("") }
        return eligible
    }
    for pattern in patterns {
        let hits = graph.nodes.filter { node in
            globMatches(pattern, node.name) || node.inputs.dropFirst().prefix(1).contains { globMatches(pattern, $0) }
        }
        let names = eligible.map { $0.node.displayName }.joined(separator: ", ")
        if hits.isEmpty {
            throw CompressionError.invalidSetting("--layers: no layer named '\(pattern)' (fully-connected layers: \(names))")
        }
        if !hits.contains(where: { hit in eligible.contains { $0.node == hit } }) {
            let hit = hits[0]
            throw CompressionError.invalidSetting(
                "--layers: '\(hit.displayName)' is a \(hit.opType), not a fully-connected layer (Gemm/MatMul with a constant 2-D weight read by it alone); fully-connected layers: \(names)")
        }
    }
    return eligible.filter { layer in
        patterns.contains { globMatches($0, layer.node.name) || globMatches($0, layer.weightName) }
    }
}

/// Bytes to store a rows×columns float matrix: dense at 32 bits, or — when smaller — compressed sparse rows
/// (32-bit value plus ceil(log2 columns)-bit column index per nonzero, one 32-bit offset per row).
public func storedMatrixBytes(_ values: [Float], rows: Int, columns: Int) -> Int {
    let dense = values.count * 4
    let nonzero = values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    let sparse = (nonzero * (32 + Footprint.indexBits(clusters: columns)) + 7) / 8 + (rows + 1) * 4
    return min(dense, sparse)
}
