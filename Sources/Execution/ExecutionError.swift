import ModelGraph

/// One operator type the executor does not run: where it first appears and how many nodes use it.
public struct UnsupportedOperator: Equatable, Sendable {
    public var op: String
    public var domain: String
    public var firstNode: String
    public var count: Int

    public init(op: String, domain: String, firstNode: String, count: Int) {
        self.op = op
        self.domain = domain
        self.firstNode = firstNode
        self.count = count
    }
}

extension ExecutionError {
    /// The one error for every node of `nodes` the executor does not run (nil when it runs them all): a single node
    /// is named as such; otherwise every operator type is listed with its first node and count.
    public static func unsupported(_ nodes: [Node], opset: Int) -> ExecutionError? {
        let missing = nodes.filter { !Operators.supports($0) }
        guard let first = missing.first else { return nil }
        if missing.count == 1 { return .unsupportedOperator(op: first.opType, domain: first.domain, node: first.displayName, opset: opset) }
        var ops: [UnsupportedOperator] = []
        for node in missing {
            if let i = ops.firstIndex(where: { $0.op == node.opType && $0.domain == node.domain }) { ops[i].count += 1 } else {
                ops.append(UnsupportedOperator(op: node.opType, domain: node.domain, firstNode: node.displayName, count: 1))
            }
        }
        return .unsupportedOperators(ops, opset: opset)
    }
}

/// Errors raised while preparing or running a graph, naming the node and shapes involved.
public enum ExecutionError: Error, Equatable, CustomStringConvertible {
    case unsupportedOperator(op: String, domain: String, node: String, opset: Int)
    /// Several operators (or one operator at several nodes) the executor does not run, all of them at once.
    case unsupportedOperators([UnsupportedOperator], opset: Int)
    case missingValue(node: String, value: String)
    case shapeMismatch(node: String, op: String, detail: String)
    case invalidNode(node: String, op: String, detail: String)
    case missingInput(name: String, available: [String])
    case inputMismatch(name: String, detail: String)
    case cycle(nodes: [String])
    case unknownOpset(opset: Int, newest: Int)
    case nonFinite(node: String, op: String)
    case nonFiniteInput(name: String)

    public var description: String {
        switch self {
        case .unsupportedOperator(let op, let domain, let node, let opset):
            "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(op) at node '\(node)' (opset \(opset)); WeightCluster runs the ai.onnx operators listed in the README"
        case .unsupportedOperators(let ops, let opset):
            "unsupported operators (opset \(opset)): " + ops.map { o in
                "\(o.domain.isEmpty ? "" : o.domain + ".")\(o.op) at node '\(o.firstNode)'\(o.count > 1 ? " and \(o.count - 1) more" : "")"
            }.joined(separator: ", ") + "; WeightCluster runs the ai.onnx operators listed in the README"
        case .missingValue(let node, let value):
            "node '\(node)' reads '\(value)', which no node, graph input or initializer provides"
        case .shapeMismatch(let node, let op, let detail):
            "shape mismatch at node '\(node)' (\(op)): \(detail)"
        case .invalidNode(let node, let op, let detail):
            "invalid node '\(node)' (\(op)): \(detail)"
        case .missingInput(let name, let available):
            "no value given for graph input '\(name)' (graph inputs: \(available.joined(separator: ", ")))"
        case .inputMismatch(let name, let detail):
            "input '\(name)': \(detail)"
        case .unknownOpset(let opset, let newest):
            "the model imports ai.onnx opset \(opset), which WeightCluster does not know (it knows opsets 1 to \(newest)); re-export the model at opset \(newest) or lower"
        case .nonFinite(let node, let op):
            "node '\(node)' (\(op)) is the first to produce NaN or infinite values, so no accuracy can be measured; check the model's weights and the --mean/--std preprocessing"
        case .nonFiniteInput(let name):
            "input '\(name)' holds NaN or infinite values; check the data and the --mean/--std preprocessing"
        case .cycle(let nodes):
            "the graph has a cycle or unreachable nodes: \(nodes.prefix(5).joined(separator: ", "))"
        }
    }
}
