import CZlib
import Foundation

/// The IDX format of MNIST-style datasets, raw or gzip-compressed (zlib reads both transparently).
public enum IDXFile {
    public struct Contents: Sendable {
        public var shape: [Int]
        public var bytes: [UInt8]
    }

    /// Reads an unsigned-byte IDX file (type 0x08), the format of MNIST and Fashion-MNIST.
    public static func read(_ path: String) throws -> Contents {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError.notFound(path: path, hint: "check the path")
        }
        let data = try decompressed(path)
        guard data.count >= 4, data[0] == 0, data[1] == 0 else {
            throw DatasetError.malformed(path: path, reason: "no IDX magic number")
        }
        guard data[2] == 0x08 else {
            throw DatasetError.malformed(path: path, reason: "element type 0x\(String(data[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let rank = Int(data[3])
        guard rank >= 1, data.count >= 4 + 4 * rank else { throw DatasetError.malformed(path: path, reason: "truncated header") }
        var shape: [Int] = []
        for i in 0..<rank {
            let o = 4 + 4 * i
            shape.append(Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]))
        }
        let count = shape.reduce(1, *)
        let offset = 4 + 4 * rank
        guard data.count >= offset + count else {
            throw DatasetError.malformed(path: path, reason: "shape \(shape) needs \(count) bytes, file has \(data.count - offset): truncated")
        }
        return Contents(shape: shape, bytes: Array(data[offset..<offset + count]))
    }

    static func decompressed(_ path: String) throws -> [UInt8] {
        guard let file = gzopen(path, "rb") else {
            throw DatasetError.unreadable(path: path, reason: "cannot open")
        }
        defer { gzclose(file) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if n < 0 { throw DatasetError.malformed(path: path, reason: "gzip stream is corrupt") }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<Int(n)])
        }
        return result
    }
}
