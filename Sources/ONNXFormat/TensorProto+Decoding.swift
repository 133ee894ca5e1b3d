import Compute
import Foundation
import ONNXProto

/// TensorProto -> AnyTensor. Floating types become Float; integer and bool types become Int64.
extension Onnx_TensorProto {
    func decoded(baseDirectory: URL?) throws -> AnyTensor {
        let shape = dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw ONNXError.invalidTensor(tensor: name, reason: "negative dimension in \(shape)")
        }
        guard let count = checkedElementCount(shape) else {
            throw ONNXError.invalidTensor(tensor: name, reason: "shape \(shape) has more than \(ShapeLimits.maxElements) elements")
        }
        guard let size = ONNXDataType.byteSize(Int(dataType)) else {
            throw ONNXError.unsupportedTensorType(tensor: name, dataType: Int(dataType))
        }
        let raw = try rawBytes(byteCount: count * size, baseDirectory: baseDirectory)
        switch Int(dataType) {
        case ONNXDataType.float:
            let values: [Float] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? floatData
            return .float(try make(shape, values))
        case ONNXDataType.double:
            let values: [Double] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? doubleData
            return .float(try make(shape, values.map { Float($0) }))
        case ONNXDataType.float16:
            let bits: [UInt16] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data.map { UInt16(truncatingIfNeeded: $0) }
            return .float(try make(shape, bits.map { Float(halfBits: $0) }))
        case ONNXDataType.int64:
            let values: [Int64] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int64Data
            return .int64(try make(shape, values))
        case ONNXDataType.int32:
            let values: [Int32] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.int16:
            let values: [Int16] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data.map { Int16(truncatingIfNeeded: $0) }
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.int8:
            let values: [Int8] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data.map { Int8(truncatingIfNeeded: $0) }
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.uint8, ONNXDataType.bool:
            let values: [UInt8] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data.map { UInt8(truncatingIfNeeded: $0) }
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.uint16:
            let values: [UInt16] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? int32Data.map { UInt16(truncatingIfNeeded: $0) }
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.uint32:
            let values: [UInt32] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? uint64Data.map { UInt32(truncatingIfNeeded: $0) }
            return .int64(try make(shape, values.map { Int64($0) }))
        case ONNXDataType.uint64:
            let values: [UInt64] = try raw.map { try Self.unpack($0, count: count, tensor: name) } ?? uint64Data
            return .int64(try make(shape, values.map { Int64(truncatingIfNeeded: $0) }))
        default:
            throw ONNXError.unsupportedTensorType(tensor: name, dataType: Int(dataType))
        }
    }

    private func make<T>(_ shape: [Int], _ values: [T]) throws -> Tensor<T> {
        let count = checkedElementCount(shape) ?? -1
        guard values.count == count else {
            throw ONNXError.invalidTensor(tensor: name, reason: "shape \(shape) needs \(count) values, found \(values.count)")
        }
        return Tensor(shape: shape, scalars: values)
    }

    /// The little-endian payload: raw_data, or the external file's bytes; nil when the typed fields hold the data.
    private func rawBytes(byteCount: Int, baseDirectory: URL?) throws -> Data? {
        if dataLocation == .external {
            var entries: [String: String] = [:]
            for entry in externalData { entries[entry.key] = entry.value }
            return try ExternalData.read(tensor: name, entries: entries, byteCount: byteCount, baseDirectory: baseDirectory)
        }
        return hasRawData ? rawData : nil
    }

    private static func unpack<T>(_ data: Data, count: Int, tensor: String) throws -> [T] {
        let size = MemoryLayout<T>.stride
        guard data.count == count * size else {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "raw data has \(data.count) bytes, its shape needs exactly \(count * size)")
        }
        if count == 0 { return [] }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { bytes in
                _ = memcpy(buffer.baseAddress!, bytes.baseAddress!, count * size)
            }
            initialized = count
        } // ONNX raw data is little-endian, as are all platforms Swift runs this on.
    }
}
