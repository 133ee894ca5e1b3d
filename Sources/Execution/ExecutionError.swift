/// Errors raised while preparing or running a graph, naming the node and shapes involved.
public enum ExecutionError: Error, Equatable, CustomStringConvertible {
    case unsupportedOperator(op: String, domain: String, node: String, opset: Int)
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
