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

    /// The longest header accepted: 64 KiB (NumPy itself refuses headers over 10,000 bytes by default).
    public static let maxHeaderBytes = 1 << 16

    public static func read(_ path: String) throws -> Array {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: 8 * ShapeLimits.maxElements + maxHeaderBytes + 12)
        } catch .notFound {
            throw DatasetError.notFound(path: path, hint: "check the path")
        } catch {
            throw DatasetError.unreadable(path: path, reason: error.description)
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<memory>") throws -> Array {
        func malformed(_ reason: String) -> DatasetError { .malformed(path: path, reason: reason) }
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
            throw malformed("not a .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw malformed("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw malformed("format version \(major) is not 1, 2 or 3")
        }
        guard headerLength <= maxHeaderBytes else {
            throw malformed("header of \(headerLength) bytes is longer than the \(maxHeaderBytes) accepted")
        }
        guard data.count >= headerStart + headerLength else { throw malformed("truncated header") }
        let headerBytes = data[data.startIndex + headerStart..<data.startIndex + headerStart + headerLength]
        guard let header = String(data: headerBytes, encoding: .utf8) else { throw malformed("header is not text") }
        guard let descr = quotedField("descr", in: header) else { throw malformed("header has no descr") }
        switch field("fortran_order", in: header) {
        case "False"?: break
        case "True"?: throw malformed("Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        default: throw malformed("header has no fortran_order True/False")
        }
        let shape = try parseShape(header, malformed: malformed)
        guard let count = checkedElementCount(shape) else {
            throw malformed("shape \(shape) has more than \(ShapeLimits.maxElements) elements")
        }
        let payload = data[(data.startIndex + headerStart + headerLength)...]
        func load<T>(_ type: T.Type) throws -> [T] {
            let size = MemoryLayout<T>.stride
            guard payload.count == count * size else {
                throw malformed("shape \(shape) of \(descr) needs \(count * size) bytes of data, found \(payload.count)")
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
            throw malformed("dtype \(descr.prefix(40)) is not supported (float32/64, int8–64, uint8–32, bool)")
        }
    }

    /// The `'shape': (d0, d1, …)` tuple: non-negative decimal integers separated by commas, one trailing comma allowed.
    private static func parseShape(_ header: String, malformed: (String) -> DatasetError) throws -> [Int] {
        guard let key = header.range(of: "'shape':") else { throw malformed("header has no shape") }
        let rest = header[key.upperBound...].drop { $0 == " " }
        guard rest.first == "(", let close = rest.firstIndex(of: ")") else { throw malformed("shape is not a tuple") }
        var parts = rest[rest.index(after: rest.startIndex)..<close].split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count > 1, parts.last == "" { parts.removeLast() }
        if parts == [""] { return [] }
        guard parts.count <= ShapeLimits.maxRank else { throw malformed("shape has \(parts.count) dimensions") }
        return try parts.map { text in
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(text) else {
                throw malformed("shape entry '\(text.prefix(40))' is not a non-negative integer")
            }
            return n
        }
    }

    private static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...]
        let end = rest.firstIndex(of: ",") ?? rest.firstIndex(of: "}") ?? rest.endIndex
        return rest[..<end].trimmingCharacters(in: .whitespaces)
    }

    private static func quotedField(_ key: String, in header: String) -> String? {
        guard let value = field(key, in: header), value.count >= 2, let q = value.first, q == "'" || q == "\"", value.last == q else {
            return nil
        }
        return String(value.dropFirst().dropLast())
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
