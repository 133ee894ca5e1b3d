/// Errors raised while preparing or running a graph, naming the node and shapes involved.
public enum ExecutionError: Error, Equatable, CustomStringConvertible {
    case unsupportedOperator(op: String, domain: String, node: String, opset: Int)
    case missingValue(node: String, value: String)
    case shapeMismatch(node: String, op: String, detail: String)
    case invalidNode(node: String, op: String, detail: String)
    case missingInput(name: String, available: [String])
    case inputMismatch(name: String, detail: String)
    case cycle(nodes: [String])

    public var description: String {
        switch self {
        case .unsupportedOperator(let op, let domain, let node, let opset):
            "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(op) at node '\(node)' (opset \(opset)); WeightCluster runs the ai.onnx operators listed in the README"
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
        case .cycle(let nodes):
            "the graph has a cycle or unreachable nodes: \(nodes.prefix(5).joined(separator: ", "))"
        }
    }
}
