/// What can go wrong reading or writing an ONNX file, with the context a user needs to act.
public enum ONNXError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case notONNX(path: String, reason: String)
    case unsupportedTensorType(tensor: String, dataType: Int)
    case invalidTensor(tensor: String, reason: String)
    case missingExternalData(tensor: String, file: String)
    case externalDataRefused(tensor: String, location: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            "model file not found: \(path)"
        case .unreadable(let path, let reason):
            "cannot read \(path): \(reason)"
        case .notONNX(let path, let reason):
            "\(path) is not a valid ONNX model (\(reason))"
        case .unsupportedTensorType(let tensor, let dataType):
            "tensor '\(tensor)' has ONNX data type \(dataType) (\(ONNXDataType.name(dataType))), which WeightCluster does not read; supported: float, float16, double, int8/16/32/64, uint8/16/32/64, bool"
        case .invalidTensor(let tensor, let reason):
            "tensor '\(tensor)' is invalid: \(reason)"
        case .missingExternalData(let tensor, let file):
            "tensor '\(tensor)' keeps its data in external file \(file), which is missing or too short"
        case .externalDataRefused(let tensor, let location):
            "tensor '\(tensor)' has external data location '\(location.prefix(200))', which is refused: a location must be a relative path to a regular file inside the model's folder"
        }
    }
}

/// ONNX TensorProto.DataType codes.
public enum ONNXDataType {
    public static let float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8,
        bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13

    /// Bytes per element in raw data, for the types WeightCluster reads.
    public static func byteSize(_ code: Int) -> Int? {
        switch code {
        case float, int32, uint32: 4
        case uint8, int8, bool: 1
        case uint16, int16, float16: 2
        case int64, double, uint64: 8
        default: nil
        }
    }

    public static func name(_ code: Int) -> String {
        let names = [1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
                     9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 14: "complex64",
                     15: "complex128", 16: "bfloat16"]
        return names[code] ?? "unknown"
    }
}
