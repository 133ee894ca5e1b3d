import Compute
import ModelGraph

/// Weights an exporter keeps behind constant nodes (an int8 tensor and its DequantizeLinear, a float16 tensor and
/// its Cast, a Transpose or Reshape of either) become float initializers, so that inspection, compression and
/// training see them as weights.
extension Graph {
    /// Operators a weight chain may contain: each reads only initializers or other chain values.
    public static let weightChainOperators: Set<String> = ["Transpose", "Cast", "DequantizeLinear", "Reshape", "Identity",
                                                          "Unsqueeze", "Constant"]

    /// Longest chain folded (nodes); longer ones are left to the executor.
    static let maxWeightChainNodes = 32

    /// The graph with each unambiguous weight chain folded into one float initializer named as the chain's output.
    ///
    /// A chain is the nodes computing the weight input of a Conv (input 1), a Gemm (input 1) or a MatMul (the input
    /// that is constant while the other is not) from initializers alone, through `weightChainOperators` (a Cast only to
    /// float32). It is folded only when every value it computes is read by the chain alone (not by another node, not a
    /// graph output) and its output by weight inputs alone; otherwise it stays and the executor folds it at run time, as
    /// it does any constant subgraph. The chain is evaluated by the executor's own operators; a chain that fails to
    /// evaluate is left as it is, so running the model reports the error where it happens. Initializers that only the
    /// folded chains read are dropped. A weight that is float16 data only moved or cast stays stored as float16.
    public func foldingWeightChains() -> Graph {
        let defaultDomain = { (node: Node) in node.domain.isEmpty || node.domain == "ai.onnx" }
        var producer: [String: Int] = [:]
        var readers: [String: [(node: Int, slot: Int)]] = [:]
        for (i, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = i }
            for (slot, input) in node.inputs.enumerated() where !input.isEmpty { readers[input, default: []].append((i, slot)) }
        }
        let graphOutputs = Set(outputs.map(\.name)), graphInputs = Set(inputs.map(\.name))
        func isInitializer(_ name: String) -> Bool { initializers[name] != nil && !graphInputs.contains(name) }

        /// The nodes computing `value` from initializers through chain operators, or nil.
        func chain(_ value: String) -> Set<Int>? {
            var members = Set<Int>(), pending = [value]
            while let name = pending.popLast() {
                if name.isEmpty || isInitializer(name) { continue }
                guard let p = producer[name], !graphInputs.contains(name), deferredWeights[name] == nil else { return nil }
                if members.contains(p) { continue }
                let node = nodes[p]
                guard defaultDomain(node), Graph.weightChainOperators.contains(node.opType), node.outputs.count == 1,
                      node.opType != "Cast" || node.int("to") == 1 else { return nil }
                members.insert(p)
                guard members.count <= Graph.maxWeightChainNodes else { return nil }
                pending.append(contentsOf: node.inputs)
            }
            return members
        }
        func isConstant(_ value: String) -> Bool { isInitializer(value) || (producer[value] != nil && chain(value) != nil) }
        /// Whether input `slot` of node `i` is a weight input: Conv or Gemm input 1, or the constant input of a MatMul
        /// whose other input is not.
        func isWeightInput(_ i: Int, _ slot: Int) -> Bool {
            let node = nodes[i]
            guard defaultDomain(node) else { return false }
            switch node.opType {
            case "Conv", "Gemm": return slot == 1
            case "MatMul": return node.inputs.count == 2 && (slot == 0 || slot == 1) && !isConstant(node.inputs[1 - slot])
            default: return false
            }
        }

        var folded: [String: AnyTensor] = [:], halfStored = Set<String>()
        var removed = Set<Int>(), leaves = Set<String>()
        for (i, node) in nodes.enumerated() where defaultDomain(node) && ["Conv", "Gemm", "MatMul"].contains(node.opType) {
            for (slot, weight) in node.inputs.enumerated() where !weight.isEmpty && folded[weight] == nil && isWeightInput(i, slot) {
                guard let p = producer[weight], !removed.contains(p), !graphOutputs.contains(weight),
                      readers[weight, default: []].allSatisfy({ isWeightInput($0.node, $0.slot) }),
                      let members = chain(weight) else { continue }
                // Unambiguous: every value the chain computes before its output is read only inside the chain.
                let intermediates = members.flatMap { nodes[$0].outputs }.filter { $0 != weight }
                guard intermediates.allSatisfy({ !graphOutputs.contains($0) && readers[$0, default: []].allSatisfy { members.contains($0.node) } }),
                      case .float(let value)? = try? evaluate(weight, producer: producer) else { continue }
                folded[weight] = .float(value)
                removed.formUnion(members)
                let chainLeaves = members.flatMap { nodes[$0].inputs }.filter(isInitializer)
                leaves.formUnion(chainLeaves)
                // Float16 data only moved or cast (not dequantized) is still exactly float16: keep it stored so.
                let floatLeaves = chainLeaves.filter { initializers[$0]?.floatTensor != nil }
                if !floatLeaves.isEmpty, floatLeaves.allSatisfy({ storageTypes[$0] == 10 }),
                   !members.contains(where: { nodes[$0].opType == "DequantizeLinear" }) { halfStored.insert(weight) }
            }
        }
        guard !folded.isEmpty else { return self }
        var graph = self
        graph.nodes = nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        let stillRead = Set(graph.nodes.flatMap(\.inputs)).union(graphOutputs)
        for leaf in leaves where !stillRead.contains(leaf) {
            graph.initializers[leaf] = nil
            graph.storageTypes[leaf] = nil
        }
        for (name, value) in folded { graph.initializers[name] = value }
        for name in halfStored { graph.storageTypes[name] = 10 }
        return graph
    }

    /// The value of `name`, computed from initializers by the executor's operators (the chain is already checked).
    private func evaluate(_ name: String, producer: [String: Int]) throws -> AnyTensor {
        var values = initializers
        var started = Set<Int>()
        func value(_ name: String) throws -> AnyTensor? {
            if name.isEmpty { return nil }
            if let v = values[name] { return v }
            // A node reached again before it has a value closes a cycle.
            guard let p = producer[name], started.insert(p).inserted else { throw ExecutionError.missingValue(node: "weight chain", value: name) }
            let node = nodes[p]
            let inputs = try node.inputs.map(value)
            let outputs = try Operators.evaluate(node, inputs: inputs, opset: opsetVersion)
            for (output, v) in zip(node.outputs, outputs) where !output.isEmpty { values[output] = v }
            guard let v = values[name] else { throw ExecutionError.missingValue(node: node.displayName, value: name) }
            return v
        }
        guard let result = try value(name) else { throw ExecutionError.missingValue(node: "weight chain", value: name) }
        return result
    }
}
