import Compute
import FileOutput
import Foundation
import ModelGraph
import ONNXProto
import SwiftProtobuf

/// Reads and writes ONNX model files.
public enum ONNXModelFile {
    /// Loads the model at `path` into a graph. External tensor data is read relative to the file.
    ///
    /// Peak memory is about one copy of the weights beyond the graph's own: the file's bytes are released once parsed,
    /// and each initializer's bytes once decoded (AlexNet's 143 MB peaked at three copies, 434 MiB, before).
    public static func load(_ path: String) throws -> Graph {
        let model: Onnx_ModelProto
        do {
            let data: Data
            do {
                data = try RegularFile.read(path, limit: maxFileBytes)
            } catch .notFound {
                throw ONNXError.fileNotFound(path: path)
            } catch {
                throw ONNXError.unreadable(path: path, reason: error.description)
            }
            model = try parse(data, path: path)
        }
        let url = URL(fileURLWithPath: path)
        return try graph(from: model, baseDirectory: url.deletingLastPathComponent())
    }

    /// Protocol buffers cannot encode more: 2 GiB.
    public static let maxFileBytes = Int(Int32.max)

    public static func decode(_ data: Data, path: String = "<memory>", baseDirectory: URL? = nil) throws -> Graph {
        try graph(from: parse(data, path: path), baseDirectory: baseDirectory)
    }

    static func parse(_ data: Data, path: String) throws -> Onnx_ModelProto {
        guard !data.isEmpty else { throw ONNXError.notONNX(path: path, reason: "the file is empty") }
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 200
            model = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXError.notONNX(path: path, reason: "protobuf decoding failed: \(error); the file is truncated, corrupt or not ONNX")
        }
        guard model.hasGraph, model.irVersion > 0 else {
            throw ONNXError.notONNX(path: path, reason: "no ir_version or graph: the file is not an ONNX ModelProto")
        }
        return model
    }

    static func graph(from model: consuming Onnx_ModelProto, baseDirectory: URL?) throws -> Graph {
        // The initializers are taken out of the model and each one's bytes dropped once decoded.
        var tensors = model.graph.initializer
        model.graph.initializer = []
        let proto = model.graph
        var initializers: [String: AnyTensor] = [:]
        var storageTypes: [String: Int] = [:]
        for i in tensors.indices {
            let tensor = tensors[i]
            tensors[i] = Onnx_TensorProto()
            initializers[tensor.name] = try tensor.decoded(baseDirectory: baseDirectory)
            let type = Int(tensor.dataType)
            if type != ONNXDataType.float && type != ONNXDataType.int64 { storageTypes[tensor.name] = type }
        }
        let opset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) } ?? 1
        // A Constant node whose value only weight slots read (Paddle exports keep every weight in one) becomes an
        // initializer, so that inspect, compress and training see it as a weight; other constants stay nodes.
        var onlyWeightSlots: [String: Bool] = [:]
        for node in proto.node where node.domain.isEmpty || node.domain == "ai.onnx" {
            for (slot, name) in node.input.enumerated() { onlyWeightSlots[name] = (onlyWeightSlots[name] ?? true) && isWeightSlot(node.opType, slot) }
        }
        for output in proto.output { onlyWeightSlots[output.name] = false }
        var nodes: [Node] = []
        nodes.reserveCapacity(proto.node.count)
        for node in proto.node {
            if node.opType == "Constant", node.domain.isEmpty || node.domain == "ai.onnx", node.output.count == 1,
               onlyWeightSlots[node.output[0]] == true, initializers[node.output[0]] == nil,
               node.attribute.count == 1, let value = node.attribute.first, value.name == "value", value.type == .tensor,
               [ONNXDataType.float, ONNXDataType.float16].contains(Int(value.t.dataType)) {
                initializers[node.output[0]] = try value.t.decoded(baseDirectory: baseDirectory)
                if value.t.dataType != ONNXDataType.float { storageTypes[node.output[0]] = Int(value.t.dataType) }
                continue
            }
            var attributes: [String: Attribute] = [:]
            for attribute in node.attribute {
                attributes[attribute.name] = try Attribute(attribute, baseDirectory: baseDirectory)
            }
            nodes.append(Node(name: node.name, opType: node.opType, domain: node.domain == "ai.onnx" ? "" : node.domain,
                              inputs: node.input, outputs: node.output, attributes: attributes))
        }
        // Before IR 4, initializers were also listed as graph inputs.
        let inputs = proto.input.filter { initializers[$0.name] == nil }.map(ValueInfo.init)
        var metadata: [String: String] = [:]
        for entry in model.metadataProps { metadata[entry.key] = entry.value }
        var graph = Graph(name: proto.name, nodes: nodes, initializers: initializers, inputs: inputs,
                          outputs: proto.output.map(ValueInfo.init), opsetVersion: opset, irVersion: Int(model.irVersion),
                          producer: [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " "),
                          metadata: metadata)
        graph.storageTypes = storageTypes
        return graph
    }

    /// Inputs that hold weights: Conv/ConvTranspose weight and bias, Gemm B and C, MatMul B, a Gather table,
    /// BatchNormalization's scale, bias, mean and variance, PRelu's slope.
    static func isWeightSlot(_ op: String, _ slot: Int) -> Bool {
        switch op {
        case "Conv", "ConvTranspose", "Gemm": slot == 1 || slot == 2
        case "MatMul", "PRelu": slot == 1
        case "Gather": slot == 0
        case "BatchNormalization": (1...4).contains(slot)
        default: false
        }
    }

    /// Writes `graph` as an ONNX model, atomically.
    public static func save(_ graph: Graph, to path: String) throws {
        try writeAtomically(try encode(graph), to: path)
    }

    public static func encode(_ graph: Graph) throws -> Data {
        var model = Onnx_ModelProto()
        model.irVersion = Int64(graph.irVersion)
        model.producerName = "weightcluster"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(graph.opsetVersion)
        model.opsetImport = [opset]
        model.metadataProps = graph.metadata.sorted { $0.key < $1.key }.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        var proto = Onnx_GraphProto()
        proto.name = graph.name
        proto.node = graph.nodes.map { node in
            var n = Onnx_NodeProto()
            n.name = node.name
            n.opType = node.opType
            if !node.domain.isEmpty { n.domain = node.domain }
            n.input = node.inputs
            n.output = node.outputs
            n.attribute = node.attributes.sorted { $0.key < $1.key }.compactMap { $0.value.proto(named: $0.key) }
            return n
        }
        // Sorted by name so the same graph always gives byte-identical files.
        proto.initializer = graph.initializers.sorted { $0.key < $1.key }.map {
            $0.value.proto(named: $0.key, storage: graph.storageTypes[$0.key])
        }
        proto.input = graph.inputs.map(\.proto)
        proto.output = graph.outputs.map(\.proto)
        model.graph = proto
        return try model.serializedBytes()
    }
}

extension ValueInfo {
    init(_ proto: Onnx_ValueInfoProto) {
        let type = proto.type.tensorType
        let shape: [Dimension]? = type.hasShape ? type.shape.dim.map { dim in
            switch dim.value {
            case .dimValue(let v)?: .fixed(Int(v))
            case .dimParam(let s)?: .symbolic(s)
            case nil: .symbolic("")
            }
        } : nil
        self.init(name: proto.name, elementType: Int(type.elemType), shape: shape)
    }

    var proto: Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(elementType)
        if let shape {
            var shapeProto = Onnx_TensorShapeProto()
            shapeProto.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case .fixed(let n): dim.dimValue = Int64(n)
                case .symbolic(let s): dim.dimParam = s
                }
                return dim
            }
            tensorType.shape = shapeProto
        }
        info.type.tensorType = tensorType
        return info
    }
}

extension AnyTensor {
    /// Encodes as `storage` (an ONNX data type code) when given, else as float or int64.
    func proto(named name: String, storage: Int? = nil) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = shape.map { Int64($0) }
        func raw<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }
        switch (self, storage) {
        case (.float(let tensor), ONNXDataType.float16?):
            t.rawData = raw(tensor.scalars.map(\.halfBits))
        case (.float(let tensor), ONNXDataType.double?):
            t.rawData = raw(tensor.scalars.map { Double($0) })
        case (.float(let tensor), _):
            t.dataType = Int32(ONNXDataType.float)
            t.rawData = raw(tensor.scalars)
            return t
        case (.int64(let tensor), ONNXDataType.uint8?), (.int64(let tensor), ONNXDataType.bool?):
            t.rawData = Data(tensor.scalars.map { UInt8(truncatingIfNeeded: $0) })
        case (.int64(let tensor), ONNXDataType.int8?):
            t.rawData = raw(tensor.scalars.map { Int8(truncatingIfNeeded: $0) })
        case (.int64(let tensor), ONNXDataType.uint16?):
            t.rawData = raw(tensor.scalars.map { UInt16(truncatingIfNeeded: $0) })
        case (.int64(let tensor), ONNXDataType.int16?):
            t.rawData = raw(tensor.scalars.map { Int16(truncatingIfNeeded: $0) })
        case (.int64(let tensor), ONNXDataType.int32?):
            t.rawData = raw(tensor.scalars.map { Int32(truncatingIfNeeded: $0) })
        case (.int64(let tensor), ONNXDataType.uint32?):
            t.rawData = raw(tensor.scalars.map { UInt32(truncatingIfNeeded: $0) })
        case (.int64(let tensor), _):
            t.dataType = Int32(ONNXDataType.int64)
            t.rawData = raw(tensor.scalars)
            return t
        }
        t.dataType = Int32(storage!)
        return t
    }
}

extension Attribute {
    init(_ proto: Onnx_AttributeProto, baseDirectory: URL?) throws {
        switch proto.type {
        case .float: self = .float(proto.f)
        case .int: self = .int(Int(proto.i))
        case .string: self = .string(String(decoding: proto.s, as: UTF8.self))
        case .floats: self = .floats(proto.floats)
        case .ints: self = .ints(proto.ints.map { Int($0) })
        case .strings: self = .strings(proto.strings.map { String(decoding: $0, as: UTF8.self) })
        case .tensor: self = .tensor(try proto.t.decoded(baseDirectory: baseDirectory))
        default:
            // Old exporters leave `type` unset; infer it from the field that is filled.
            if proto.hasF { self = .float(proto.f) }
            else if proto.hasI { self = .int(Int(proto.i)) }
            else if proto.hasS { self = .string(String(decoding: proto.s, as: UTF8.self)) }
            else if proto.hasT { self = .tensor(try proto.t.decoded(baseDirectory: baseDirectory)) }
            else if !proto.ints.isEmpty { self = .ints(proto.ints.map { Int($0) }) }
            else if !proto.floats.isEmpty { self = .floats(proto.floats) }
            else { self = .unsupported("\(proto.type)") }
        }
    }

    func proto(named name: String) -> Onnx_AttributeProto? {
        var a = Onnx_AttributeProto()
        a.name = name
        switch self {
        case .int(let v): a.type = .int; a.i = Int64(v)
        case .float(let v): a.type = .float; a.f = v
        case .string(let v): a.type = .string; a.s = Data(v.utf8)
        case .ints(let v): a.type = .ints; a.ints = v.map { Int64($0) }
        case .floats(let v): a.type = .floats; a.floats = v
        case .strings(let v): a.type = .strings; a.strings = v.map { Data($0.utf8) }
        case .tensor(let t): a.type = .tensor; a.t = t.proto(named: "")
        case .unsupported: return nil
        }
        return a
    }
}
