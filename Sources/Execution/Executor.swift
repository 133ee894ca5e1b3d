import Compute
import ModelGraph

/// Runs a graph on the CPU. Preparation sorts the nodes, checks every operator is supported, folds the
/// nodes whose inputs are all constant (shape-computation chains, Constant nodes) and records when each
/// intermediate value is last read, so `run` frees it right after.
public final class Executor: @unchecked Sendable {
    public let graph: Graph
    /// The nodes left to run after constant folding, in topological order.
    public let plan: [Node]
    /// Initializers plus folded values.
    public let constants: [String: AnyTensor]
    private let lastUse: [String: Int]
    private let outputNames: Set<String>

    public init(graph: Graph) throws {
        self.graph = graph
        let sorted = try Executor.topologicallySorted(graph)
        for node in sorted where !Operators.supports(node) {
            throw ExecutionError.unsupportedOperator(op: node.opType, domain: node.domain, node: node.displayName,
                                                     opset: graph.opsetVersion)
        }
        var constants = graph.initializers
        var remaining: [Node] = []
        let graphInputs = Set(graph.inputs.map(\.name))
        for node in sorted {
            let foldable = Operators.isFoldable(node)
                && node.inputs.allSatisfy { $0.isEmpty || (constants[$0] != nil && !graphInputs.contains($0)) }
            if foldable {
                let inputs = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
                let outputs = try Operators.evaluate(node, inputs: inputs, opset: graph.opsetVersion)
                for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { constants[name] = value }
            } else {
                remaining.append(node)
            }
        }
        var lastUse: [String: Int] = [:]
        for (index, node) in remaining.enumerated() {
            for input in node.inputs where !input.isEmpty && constants[input] == nil { lastUse[input] = index }
        }
        self.plan = remaining
        self.constants = constants
        self.lastUse = lastUse
        self.outputNames = Set(graph.outputs.map(\.name))
    }

    /// Runs the graph on named inputs and returns every graph output.
    public func run(_ feeds: [String: AnyTensor]) throws -> [String: AnyTensor] {
        var values: [String: AnyTensor] = [:]
        for input in graph.inputs {
            guard let value = feeds[input.name] else {
                throw ExecutionError.missingInput(name: input.name, available: graph.inputs.map(\.name))
            }
            try Executor.check(value, against: input)
            values[input.name] = value
        }
        for (index, node) in plan.enumerated() {
            var inputs: [AnyTensor?] = []
            inputs.reserveCapacity(node.inputs.count)
            for name in node.inputs {
                if name.isEmpty { inputs.append(nil); continue }
                guard let value = values[name] ?? constants[name] else {
                    throw ExecutionError.missingValue(node: node.displayName, value: name)
                }
                inputs.append(value)
                // Free intermediates whose last reader is this node (the local copy keeps it alive until done).
                if lastUse[name] == index && !outputNames.contains(name) { values[name] = nil }
            }
            let outputs = try Operators.evaluate(node, inputs: inputs, opset: graph.opsetVersion)
            for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { values[name] = value }
        }
        var result: [String: AnyTensor] = [:]
        for output in graph.outputs {
            guard let value = values[output.name] ?? constants[output.name] else {
                throw ExecutionError.missingValue(node: "graph output", value: output.name)
            }
            result[output.name] = value
        }
        return result
    }

    /// Runs a single-input, single-output model on a float tensor.
    public func callAsFunction(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard let inputName = graph.inputs.first?.name, let outputName = graph.outputs.first?.name else {
            throw ExecutionError.missingInput(name: "<first input>", available: graph.inputs.map(\.name))
        }
        let outputs = try run([inputName: .float(input)])
        guard let output = outputs[outputName]?.floatTensor else {
            throw ExecutionError.inputMismatch(name: outputName, detail: "output is not a float tensor")
        }
        return output
    }

    static func check(_ value: AnyTensor, against info: ValueInfo) throws {
        if info.elementType == 1, value.floatTensor == nil {
            throw ExecutionError.inputMismatch(name: info.name, detail: "expects float32, got \(value.elementTypeName)")
        }
        guard let dims = info.shape else { return }
        let shape = value.shape
        let matches = dims.count == shape.count && zip(dims, shape).allSatisfy { dim, n in
            if case .fixed(let d) = dim { return d == n || d <= 0 }
            return true
        }
        if !matches {
            throw ExecutionError.inputMismatch(name: info.name,
                detail: "expects shape [\(dims.map(\.description).joined(separator: ", "))], got \(shape)")
        }
    }

    /// Kahn's algorithm; keeps the file's order among ready nodes.
    static func topologicallySorted(_ graph: Graph) throws -> [Node] {
        var available = Set(graph.initializers.keys).union(graph.inputs.map(\.name))
        available.insert("")
        var producers: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for o in node.outputs { producers[o] = i } }
        for node in graph.nodes {
            for input in node.inputs where !available.contains(input) && producers[input] == nil {
                throw ExecutionError.missingValue(node: node.displayName, value: input)
            }
        }
        var done = [Bool](repeating: false, count: graph.nodes.count)
        var order: [Node] = []
        var progress = true
        while progress {
            progress = false
            for (i, node) in graph.nodes.enumerated() where !done[i] && node.inputs.allSatisfy(available.contains) {
                done[i] = true
                order.append(node)
                available.formUnion(node.outputs)
                progress = true
            }
        }
        if order.count != graph.nodes.count {
            throw ExecutionError.cycle(nodes: graph.nodes.indices.filter { !done[$0] }.map { graph.nodes[$0].displayName })
        }
        return order
    }
}
