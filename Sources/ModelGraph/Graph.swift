import Compute

/// An in-memory model: nodes in topological order, named constant weights, and typed inputs/outputs.
/// Imported from ONNX by `ONNXFormat`, rewritten by compression passes, run by `Execution`.
public struct Graph: Sendable {
    public var name: String
    public var nodes: [Node]
    /// Constant tensors (weights, biases, shape constants) by value name.
    public var initializers: [String: AnyTensor]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Opset version of the default ("ai.onnx") domain.
    public var opsetVersion: Int
    /// ONNX IR version the model was read with (kept on export so older runtimes still load it).
    public var irVersion: Int
    public var producer: String
    /// Free-form key/value metadata (the ONNX file's metadata_props).
    public var metadata: [String: String]
    /// File element type of initializers stored narrower than they compute (ONNX data type codes:
    /// 2 uint8, 3 int8, 4 uint16, 5 int16, 6 int32, 9 bool, 10 float16, 11 double); float and int64 need no entry.
    public var storageTypes: [String: Int] = [:]
    /// Float weights kept compressed until a node reads them (a packed model file loaded to run); the executor
    /// expands each one just before its reader runs. Empty for graphs read from ONNX.
    public var deferredWeights: [String: DeferredWeight] = [:]

    public init(name: String = "graph", nodes: [Node] = [], initializers: [String: AnyTensor] = [:],
                inputs: [ValueInfo] = [], outputs: [ValueInfo] = [], opsetVersion: Int = 13, irVersion: Int = 8,
                producer: String = "", metadata: [String: String] = [:]) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
        self.opsetVersion = opsetVersion
        self.irVersion = irVersion
        self.producer = producer
        self.metadata = metadata
    }

    /// The node that writes `value`, if any.
    public func producer(of value: String) -> Node? {
        nodes.first { $0.outputs.contains(value) }
    }

    /// The nodes that read `value`.
    public func consumers(of value: String) -> [Node] {
        nodes.filter { $0.inputs.contains(value) }
    }

    /// Number of scalars held in float initializers.
    public var parameterCount: Int {
        initializers.values.reduce(0) { $0 + ($1.floatTensor?.count ?? 0) }
    }
}

/// One operator application.
///
/// Its fields live in one shared box, copied on first write: the executor hands a node to every operator call, and a
/// copy then retains one reference instead of each string and array (a chain of 100 tiny convolutions at batch 1
/// spent half its time in reference counting).
public struct Node: Sendable, Equatable {
    private final class Fields: @unchecked Sendable {
        var name: String
        var opType: String
        var domain: String
        var inputs: [String]
        var outputs: [String]
        var attributes: [String: Attribute]

        init(name: String, opType: String, domain: String, inputs: [String], outputs: [String],
             attributes: [String: Attribute]) {
            self.name = name
            self.opType = opType
            self.domain = domain
            self.inputs = inputs
            self.outputs = outputs
            self.attributes = attributes
        }

        func copy() -> Fields {
            Fields(name: name, opType: opType, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
        }
    }

    private var fields: Fields

    /// The fields, copied first when another node shares them.
    private var unique: Fields {
        mutating get {
            if !isKnownUniquelyReferenced(&fields) { fields = fields.copy() }
            return fields
        }
    }

    public var name: String {
        get { fields.name }
        set { unique.name = newValue }
    }
    public var opType: String {
        get { fields.opType }
        set { unique.opType = newValue }
    }
    public var domain: String {
        get { fields.domain }
        set { unique.domain = newValue }
    }
    /// Value names; an empty string marks an omitted optional input.
    public var inputs: [String] {
        get { fields.inputs }
        _modify { yield &unique.inputs }
    }
    public var outputs: [String] {
        get { fields.outputs }
        _modify { yield &unique.outputs }
    }
    public var attributes: [String: Attribute] {
        get { fields.attributes }
        _modify { yield &unique.attributes }
    }

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        fields = Fields(name: name, opType: opType, domain: domain, inputs: inputs, outputs: outputs,
                        attributes: attributes)
    }

    public static func == (a: Node, b: Node) -> Bool {
        a.fields === b.fields
            || a.name == b.name && a.opType == b.opType && a.domain == b.domain && a.inputs == b.inputs
            && a.outputs == b.outputs && a.attributes == b.attributes
    }

    /// A name for messages: the node's own name, or its op type and first output.
    public var displayName: String {
        name.isEmpty ? "\(opType) -> \(outputs.first ?? "?")" : name
    }
}

/// An operator attribute value.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(AnyTensor)
    /// A kind the runtime does not interpret (graphs, sparse tensors, type protos); the payload names it.
    case unsupported(String)
}

/// Element type and shape of a graph input or output.
public struct ValueInfo: Sendable, Equatable {
    public enum Dimension: Sendable, Equatable, CustomStringConvertible {
        case fixed(Int)
        case symbolic(String)

        public var description: String {
            switch self {
            case .fixed(let n): String(n)
            case .symbolic(let s): s.isEmpty ? "?" : s
            }
        }
    }

    public var name: String
    /// ONNX TensorProto.DataType code (1 = float, 7 = int64).
    public var elementType: Int
    /// nil when the shape is unknown.
    public var shape: [Dimension]?

    public init(name: String, elementType: Int = 1, shape: [Dimension]?) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
    }
}
