import Compute
import FileOutput
import Foundation

/// NumPy's .npy format (version 1–3, C order): float32/float64 read as Float, integer and bool types as Int64.
public enum NPYFile {
    public enum Array: Sendable {
        case float(Tensor<Float>)
        case int64(Tensor<Int64>)
        /// uint8 kept as bytes (images).
        case uint8(Tensor<UInt8>)

        public var shape: [Int] {
            switch self {
            case .float(let t): t.shape
            case .int64(let t): t.shape
            case .uint8(let t): t.shape
            }
        }
    }

    public static func read(_ path: String) throws -> Array {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError.notFound(path: path, hint: "check the path")
        }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw DatasetError.unreadable(path: path, reason: "cannot open")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<memory>") throws -> Array {
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
            throw DatasetError.malformed(path: path, reason: "not a .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else {
            guard bytes.count >= 12 else { throw DatasetError.malformed(path: path, reason: "truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        }
        guard data.count >= headerStart + headerLength else { throw DatasetError.malformed(path: path, reason: "truncated header") }
        let header = String(decoding: data[data.startIndex + headerStart..<data.startIndex + headerStart + headerLength], as: UTF8.self)
        guard let descr = field("descr", in: header)?.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) else {
            throw DatasetError.malformed(path: path, reason: "header has no descr")
        }
        if field("fortran_order", in: header)?.contains("True") == true {
            throw DatasetError.malformed(path: path, reason: "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        guard let shapeText = header.range(of: "'shape':").map({ header[$0.upperBound...] }),
              let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
            throw DatasetError.malformed(path: path, reason: "header has no shape")
        }
        let shape = shapeText[shapeText.index(after: open)..<close].split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let payload = data[(data.startIndex + headerStart + headerLength)...]
        func load<T>(_ type: T.Type) throws -> [T] {
            let size = MemoryLayout<T>.stride
            guard payload.count >= count * size else {
                throw DatasetError.malformed(path: path, reason: "shape \(shape) of \(descr) needs \(count * size) bytes, found \(payload.count): truncated")
            }
            if count == 0 { return [] }
            return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                payload.withUnsafeBytes { raw in _ = memcpy(buffer.baseAddress!, raw.baseAddress!, count * size) }
                initialized = count
            }
        }
        switch descr {
        case "<f4": return .float(Tensor(shape: shape, scalars: try load(Float.self)))
        case "<f8": return .float(Tensor(shape: shape, scalars: try load(Double.self).map { Float($0) }))
        case "|u1", "<u1": return .uint8(Tensor(shape: shape, scalars: try load(UInt8.self)))
        case "|b1": return .int64(Tensor(shape: shape, scalars: try load(UInt8.self).map { Int64($0) }))
        case "|i1": return .int64(Tensor(shape: shape, scalars: try load(Int8.self).map { Int64($0) }))
        case "<i2": return .int64(Tensor(shape: shape, scalars: try load(Int16.self).map { Int64($0) }))
        case "<i4": return .int64(Tensor(shape: shape, scalars: try load(Int32.self).map { Int64($0) }))
        case "<i8": return .int64(Tensor(shape: shape, scalars: try load(Int64.self)))
        case "<u2": return .int64(Tensor(shape: shape, scalars: try load(UInt16.self).map { Int64($0) }))
        case "<u4": return .int64(Tensor(shape: shape, scalars: try load(UInt32.self).map { Int64($0) }))
        default:
            throw DatasetError.malformed(path: path, reason: "dtype \(descr) is not supported (float32/64, int8–64, uint8–32, bool)")
        }
    }

    private static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...]
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        return String(rest[..<end])
    }

    /// Serialises a float32, int64 or uint8 array as .npy version 1.0.
    public static func encode(_ array: Array) -> Data {
        let (descr, body): (String, Data) = switch array {
        case .float(let t): ("<f4", t.scalars.withUnsafeBytes { Data($0) })
        case .int64(let t): ("<i8", t.scalars.withUnsafeBytes { Data($0) })
        case .uint8(let t): ("|u1", Data(t.scalars))
        }
        let shape = array.shape
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the data starts on a 64-byte boundary, header ending in a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Swift.Array("NUMPY".utf8) + [1, 0])
        let length = header.utf8.count
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: header.utf8)
        data.append(body)
        return data
    }

    /// Writes atomically (temporary name, then rename).
    public static func write(_ array: Array, to path: String) throws {
        try writeAtomically(encode(array), to: path)
    }
}
