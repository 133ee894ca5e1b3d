import Compute
import ModelGraph

/// Fully-connected layers stored with shared columns (written by neuron clustering): the weight is rebuilt by
/// `Gather(shared, index, axis = input axis)`, optionally after a `Mul(x, scale)` on the layer's input. Instead of
/// folding the Gather into a dense constant, the executor runs such a layer in its compressed form: sum the
/// inputs of each column group, then the smaller product (`SharedColumnProduct`).
extension Executor {
    /// Internal op type of a rewritten layer (never exported).
    static let sharedColumnsOp = "_SharedColumns"

    /// Gather nodes (by output name) whose every reader takes the result as the weight of a Gemm/MatMul with the
    /// gathered axis as its input axis: these stay unfolded so the readers can run compressed.
    static func sharedColumnGathers(_ nodes: [Node], graph: Graph) -> Set<String> {
        let outputs = Set(graph.outputs.map(\.name))
        var result = Set<String>()
        let candidates = Set(nodes.lazy.filter { $0.opType == "Gather" && $0.inputs.count == 2 }.compactMap { $0.outputs.first })
        guard !candidates.isEmpty else { return result }
        var readersOf: [String: [Int]] = [:]
        for (i, node) in nodes.enumerated() {
            for input in node.inputs where candidates.contains(input) && readersOf[input]?.last != i { readersOf[input, default: []].append(i) }
        }
        for node in nodes where node.opType == "Gather" && node.inputs.count == 2 {
            guard let out = node.outputs.first, !outputs.contains(out),
                  let data = graph.initializers[node.inputs[0]]?.floatTensor, data.rank == 2 else { continue }
            let axis = node.int("axis", default: 0) < 0 ? node.int("axis", default: 0) + 2 : node.int("axis", default: 0)
            let readers = (readersOf[out] ?? []).map { nodes[$0] }
            let all = !readers.isEmpty && readers.allSatisfy { reader in
                guard reader.inputs.count > 1, reader.inputs[1] == out, reader.inputs[0] != out else { return false }
                if reader.opType == "MatMul" { return axis == 0 }
                if reader.opType == "Gemm" {
                    return reader.int("transA", default: 0) == 0 && axis == (reader.int("transB", default: 0) != 0 ? 1 : 0)
                }
                return false
            }
            if all { result.insert(out) }
        }
        return result
    }

    /// Replaces each Gemm/MatMul that reads a kept Gather by a `_SharedColumns` node (absorbing a constant
    /// per-column Mul on its input when nothing else reads it). Returns the new node list and the product of
    /// each rewritten node, by its output name.
    static func rewritingSharedColumns(_ nodes: [Node], gathers: Set<String>, constants: [String: AnyTensor],
                                       graphOutputs: Set<String>) throws -> ([Node], [String: SharedColumnProduct]) {
        guard !gathers.isEmpty else { return (nodes, [:]) }
        var readers: [String: Int] = [:]
        for node in nodes { for input in node.inputs { readers[input, default: 0] += 1 } }
        let producers = Dictionary(nodes.map { ($0.outputs.first ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        var removed = Set<String>()  // first outputs of nodes taken into a rewritten node
        var products: [String: SharedColumnProduct] = [:]
        var rewritten: [String: Node] = [:]
        for node in nodes where node.inputs.count > 1 && gathers.contains(node.inputs[1]) {
            guard let gather = producers[node.inputs[1]], let out = node.outputs.first,
                  let shared = constants[gather.inputs[0]]?.floatTensor,
                  let indexValue = constants[gather.inputs[1]], indexValue.shape.count == 1 else { continue }
            let transposed = node.opType == "Gemm" && node.int("transB", default: 0) != 0
            let groups = transposed ? shared.shape[1] : shared.shape[0]
            let index = indexValue.int64Values.map { Int32(clamping: $0 < 0 ? $0 + Int64(groups) : $0) }
            let outCount = transposed ? shared.shape[0] : shared.shape[1]
            var bias: [Float]? = nil
            if node.opType == "Gemm", node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let c = constants[node.inputs[2]]?.floatTensor, c.count == outCount || c.count == 1 else { continue }
                let beta = node.float("beta", default: 1)
                if beta != 0 { bias = c.scalars.map { beta * $0 } }
            }
            // A constant per-column scale on the input, read only here, becomes part of the product.
            var input = node.inputs[0]
            var scale: [Float]? = nil
            if let mul = producers[input], mul.opType == "Mul", readers[input] == 1, !graphOutputs.contains(input) {
                let constant = mul.inputs.firstIndex { constants[$0]?.floatTensor.map { $0.count == index.count && $0.shape.last == index.count && $0.shape.dropLast().allSatisfy { $0 == 1 } } ?? false }
                if let c = constant, constants[mul.inputs[1 - c]] == nil {
                    scale = constants[mul.inputs[c]]!.floatTensor!.scalars
                    input = mul.inputs[1 - c]
                    removed.insert(mul.outputs[0])
                }
            }
            let product = try SharedColumnProduct(shared: shared, index: index, scale: scale, transposed: transposed)
            products[out] = product
            var attributes: [String: Attribute] = ["alpha": .float(node.opType == "Gemm" ? node.float("alpha", default: 1) : 1)]
            if let bias { attributes["_bias"] = .floats(bias) }
            rewritten[out] = Node(name: node.name, opType: sharedColumnsOp, inputs: [input], outputs: node.outputs, attributes: attributes)
        }
        // A Gather goes once every reader has been rewritten.
        for gather in gathers {
            let allRewritten = nodes.allSatisfy { !$0.inputs.contains(gather) || rewritten[$0.outputs.first ?? ""] != nil }
            if allRewritten { removed.insert(gather) }
        }
        let result = nodes.compactMap { node -> Node? in
            let out = node.outputs.first ?? ""
            if let replacement = rewritten[out] { return replacement }
            return removed.contains(out) ? nil : node
        }
        return (result, products)
    }
}

extension Operators {
    static func sharedColumns(_ node: Node, _ args: Arguments) throws -> [AnyTensor] {
        guard let product = args.shared else { throw args.invalid("no shared-column product prepared") }
        let bias: [Float]? = if case .floats(let b)? = node.attributes["_bias"] { b } else { nil }
        return [.float(try product.apply(try args.float(0), alpha: node.float("alpha", default: 1), bias: bias))]
    }
}
