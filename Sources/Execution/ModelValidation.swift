import Compute
import ModelGraph

/// Checks a model once, when it is loaded, so that a bad model fails before any work: the opset, the graph
/// (every value produced once, nothing missing, no cycle), every operator's attributes, and then every shape,
/// by running the graph once on a batch of one zero input when its input shapes are known apart from the batch.
public enum ModelValidation {
    public enum Strictness: Sendable {
        /// Every operator must be one the executor runs (evaluate, run, finetune).
        case runnable
        /// Operators the executor does not run yet are reported as warnings (inspect, compress).
        case lenient
    }

    /// Validates `graph`; returns warnings (unsupported operators under `.lenient`), throws the first error.
    @discardableResult
    public static func validate(_ graph: Graph, strictness: Strictness = .runnable) throws -> [String] {
        try check(graph, strictness: strictness).warnings
    }

    /// Validates `graph` as `.runnable` and returns the executor the validation prepared, so a command that runs
    /// the model prepares it once.
    public static func validatedExecutor(_ graph: Graph) throws -> Executor {
        guard let executor = try check(graph, strictness: .runnable).executor else { throw ExecutionError.missingValue(node: "graph", value: "executor") }
        return executor
    }

    static func check(_ graph: Graph, strictness: Strictness) throws -> (warnings: [String], executor: Executor?) {
        try Executor.checkOpset(graph)
        let sorted = try Executor.topologicallySorted(graph)
        var warnings: [String] = []
        if let error = ExecutionError.unsupported(sorted, opset: graph.opsetVersion) {
            guard strictness == .lenient else { throw error }
            warnings.append(error.description)
        }
        for node in sorted where Operators.supports(node) { try checkAttributes(node) }
        guard warnings.isEmpty else { return (warnings, nil) }
        let executor = try Executor(graph: graph, sorted: sorted)
        // Shapes and channel counts: one forward pass at batch 1 (constants are folded on the way).
        if let feeds = zeroFeeds(graph) { _ = try executor.run(feeds) }
        return (warnings, executor)
    }

    /// Attribute rules the ONNX specification states, checked without data.
    static func checkAttributes(_ node: Node) throws {
        func invalid(_ detail: String) -> ExecutionError { .invalidNode(node: node.displayName, op: node.opType, detail: detail) }
        let limit = ShapeLimits.maxWindow
        switch node.opType {
        case "Conv", "ConvTranspose", "MaxPool", "AveragePool":
            if let k = node.ints("kernel_shape"), !k.allSatisfy({ $0 >= 1 && $0 <= limit }) {
                throw invalid("kernel_shape \(k) must be 1…\(limit)")
            }
            if node.opType.hasSuffix("Pool"), node.ints("kernel_shape") == nil { throw invalid("kernel_shape is required") }
            if let s = node.ints("strides"), !s.allSatisfy({ $0 >= 1 && $0 <= limit }) { throw invalid("strides \(s) must be 1…\(limit)") }
            if let d = node.ints("dilations"), !d.allSatisfy({ $0 >= 1 && $0 <= limit }) { throw invalid("dilations \(d) must be 1…\(limit)") }
            if let p = node.ints("pads"), !p.allSatisfy({ $0 >= 0 && $0 <= limit }) { throw invalid("pads \(p) must be 0…\(limit)") }
            if node.opType.hasPrefix("Conv"), node.int("group", default: 1) < 1 { throw invalid("group \(node.int("group", default: 1)) must be ≥ 1") }
        case "LRN":
            guard let size = node.int("size"), size >= 1, size <= limit else { throw invalid("size must be 1…\(limit)") }
        case "Cast":
            guard let to = node.int("to"), [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13].contains(to) else {
                throw invalid("Cast to ONNX type \(node.int("to").map(String.init) ?? "(missing)") is not supported")
            }
        case "Pad":
            guard PadMode(rawValue: node.string("mode", default: "constant")) != nil else {
                throw invalid("pad mode '\(node.string("mode", default: "").prefix(40))' is not supported (constant, reflect, edge)")
            }
        case "Resize":
            guard Operators.resizeMode(node) != nil,
                  ResizeCoordinates(rawValue: node.string("coordinate_transformation_mode", default: "half_pixel")) != nil else {
                throw invalid("mode '\(node.string("mode", default: "nearest").prefix(40))', nearest_mode '\(node.string("nearest_mode", default: "round_prefer_floor").prefix(40))' or coordinate_transformation_mode '\(node.string("coordinate_transformation_mode", default: "half_pixel").prefix(40))' is not supported")
            }
        case "Concat":
            guard node.int("axis") != nil else { throw invalid("Concat needs the axis attribute") }
        case "DequantizeLinear", "QuantizeLinear":
            if let b = node.int("block_size"), b != 0 {
                throw invalid("blocked quantization (block_size \(b)) is not supported; per-tensor and per-axis scales are")
            }
        default:
            break
        }
    }

    /// A zero batch of one for each graph input, when every input's shape is known except its first (batch)
    /// dimension; nil otherwise (then only the checks above apply).
    static func zeroFeeds(_ graph: Graph) -> [String: AnyTensor]? {
        var feeds: [String: AnyTensor] = [:]
        for input in graph.inputs {
            guard let dims = input.shape else { return nil }
            var shape: [Int] = []
            for (i, dim) in dims.enumerated() {
                switch dim {
                case .fixed(let n) where n > 0: shape.append(n)
                case _ where i == 0: shape.append(1)
                default: return nil
                }
            }
            guard checkedElementCount(shape) != nil else { return nil }
            feeds[input.name] = input.elementType == 1 || input.elementType == 10 || input.elementType == 11
                ? .float(Tensor(zeros: shape)) : .int64(Tensor(zeros: shape))
        }
        return feeds
    }
}
