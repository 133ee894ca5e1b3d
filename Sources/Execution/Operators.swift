import Compute
import ModelGraph

/// Operator dispatch: one entry per ONNX op type (default domain).
enum Operators {
    typealias Kernel = @Sendable (_ node: Node, _ inputs: Arguments) throws -> [AnyTensor]

    static let table: [String: Kernel] = {
        var t: [String: Kernel] = [:]
        registerNeuralOperators(&t)
        registerMathOperators(&t)
        registerShapeOperators(&t)
        registerLogicOperators(&t)
        registerResizeOperators(&t)
        registerReduceOperators(&t)
        registerQuantizeOperators(&t)
        t[Executor.sharedColumnsOp] = sharedColumns
        return t
    }()

    /// Ops never folded at load even when every input is constant (their result is not a function of the inputs
    /// alone: Dropout draws a mask when training).
    static let notFoldable: Set<String> = ["Dropout"]

    static func supports(_ node: Node) -> Bool {
        (node.domain.isEmpty || node.domain == "ai.onnx") && table[node.opType] != nil
    }

    static func isFoldable(_ node: Node) -> Bool { !notFoldable.contains(node.opType) }

    /// Attribute the executor sets on a Conv that computes its following Relu too (never exported).
    static let fusedActivationKey = "_fused_activation"
    /// The [low, high] bounds of a fused Clip.
    static let fusedClipKey = "_fused_clip"
    /// Set on a Conv whose fourth input is the other operand of a fused Add.
    static let fusedResidualKey = "_fused_residual"

    static func evaluate(_ node: Node, inputs: [AnyTensor?], opset: Int, prepared: Winograd.PreparedWeights? = nil,
                         packed: PackedWeights? = nil, shared: SharedColumnProduct? = nil) throws -> [AnyTensor] {
        try evaluate(node, kernel: table[node.opType], arguments: Arguments(node: node, values: inputs, opset: opset, prepared: prepared,
                                                                           packed: packed, shared: shared))
    }

    /// Runs `kernel` (the node's entry in `table`, looked up by the caller: the executor once per node at load).
    static func evaluate(_ node: Node, kernel: Kernel?, arguments: Arguments) throws -> [AnyTensor] {
        guard let kernel else {
            throw ExecutionError.unsupportedOperator(op: node.opType, domain: node.domain, node: node.displayName, opset: arguments.opset)
        }
        return try namingTheNode(node) { try kernel(node, arguments) }
    }

    /// `body`, with a Compute error turned into the node's shape mismatch.
    static func namingTheNode<T>(_ node: Node, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ComputeError {
            throw ExecutionError.shapeMismatch(node: node.displayName, op: node.opType, detail: error.description)
        }
    }
}

/// A node's input values with typed, checked accessors.
struct Arguments: Sendable {
    let node: Node
    let values: [AnyTensor?]
    let opset: Int
    var prepared: Winograd.PreparedWeights? = nil
    var packed: PackedWeights? = nil
    var shared: SharedColumnProduct? = nil
    /// A Conv's or pooling node's attributes as read at load (nil: read them from `node`).
    var layer: LayerAttributes? = nil

    var count: Int { values.count }

    func has(_ i: Int) -> Bool { i < values.count && values[i] != nil }

    func float(_ i: Int) throws -> Tensor<Float> {
        guard i < values.count, let value = values[i] else { throw invalid("missing input \(i)") }
        switch value {
        case .float(let t): return t
        case .int64(let t): return Tensor(shape: t.shape, scalars: t.scalars.map { Float($0) })
        }
    }

    func any(_ i: Int) throws -> AnyTensor {
        guard i < values.count, let value = values[i] else { throw invalid("missing input \(i)") }
        return value
    }

    /// Integer values of input `i` (shapes, axes, pads, indices); floats must be finite and in Int64's range.
    func ints(_ i: Int) throws -> [Int] {
        guard let values = try any(i).checkedInt64Values else {
            throw invalid("input \(i) holds NaN, an infinity or a value outside the 64-bit integer range where integers are needed")
        }
        return values.map { Int($0) }
    }

    /// Checks that `shape` can be allocated (no negative dimension, at most `ShapeLimits.maxElements` elements).
    func checkShape(_ shape: [Int], _ what: String = "output") throws {
        guard checkedElementCount(shape) != nil else {
            if shape.contains(where: { $0 < 0 }) { throw mismatch("\(what) shape \(shape) has a negative dimension") }
            throw mismatch("\(what) shape \(shape) is larger than the \(ShapeLimits.maxElements)-element limit")
        }
    }

    func invalid(_ detail: String) -> ExecutionError {
        .invalidNode(node: node.displayName, op: node.opType, detail: detail)
    }

    func mismatch(_ detail: String) -> ExecutionError {
        .shapeMismatch(node: node.displayName, op: node.opType, detail: detail)
    }

    /// Normalises a possibly negative axis for a tensor of `rank`.
    func axis(_ a: Int, rank: Int) throws -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else { throw invalid("axis \(a) is out of range for rank \(rank)") }
        return r
    }
}

extension Executor {
    /// Runs one node's operator on the given inputs, as `run` does for each node of a `plan` (for other engines over
    /// the same graphs, such as training): fused Conv nodes included; `prepared` Winograd weights are used where the
    /// call gains from them (`Winograd.pays`).
    public static func evaluate(_ node: Node, inputs: [AnyTensor?], opset: Int, prepared: Winograd.PreparedWeights? = nil) throws -> [AnyTensor] {
        try Operators.evaluate(node, inputs: inputs, opset: opset, prepared: prepared)
    }

    /// The 2-D window (kernel, strides, dilations, pads with auto_pad resolved) of a Conv or pooling node.
    public static func window(of node: Node, input: [Int], kernel: [Int], opset: Int) throws -> Window2D {
        try Operators.window2D(node, args: Arguments(node: node, values: [], opset: opset), input: input, kernel: kernel)
    }
}
