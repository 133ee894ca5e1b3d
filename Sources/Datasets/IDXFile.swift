import CZlib
import Compute
import FileOutput
import Foundation

/// The IDX format of MNIST-style datasets, raw or gzip-compressed (zlib reads both transparently).
public enum IDXFile {
    public struct Contents: Sendable {
        public var shape: [Int]
        public var bytes: [UInt8]
    }

    /// Reads an unsigned-byte IDX file (type 0x08), the format of MNIST and Fashion-MNIST. The header is read
    /// first and the body only up to the size it declares (at most `ShapeLimits.maxElements` bytes), so a
    /// gzip stream that would expand without end is never expanded past that.
    public static func read(_ path: String) throws -> Contents {
        let fd: Int32
        do {
            fd = try RegularFile.open(path).fd
        } catch .notFound {
            throw DatasetError.notFound(path: path, hint: "check the path")
        } catch {
            throw DatasetError.unreadable(path: path, reason: error.description)
        }
        guard let file = gzdopen(fd, "rb") else {
            close(fd)
            throw DatasetError.unreadable(path: path, reason: "cannot open")
        }
        defer { gzclose(file) }
        var failed = false
        return try parse(path: path) { count in
            // In chunks of 1 MiB, so memory follows the bytes that are really there, not the declared size.
            var result: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: min(count, 1 << 20))
            while result.count < count {
                let want = min(count - result.count, chunk.count)
                let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress!, UInt32(want)) }
                if n < 0 { failed = true; break }
                if n == 0 { break }
                result.append(contentsOf: chunk[0..<Int(n)])
            }
            if failed { throw DatasetError.malformed(path: path, reason: "gzip stream is corrupt") }
            return result
        }
    }

    /// Parses IDX bytes already in memory (uncompressed).
    public static func decode(_ data: Data, path: String = "<memory>") throws -> Contents {
        var offset = data.startIndex
        return try parse(path: path) { count in
            let end = min(data.endIndex, offset + count)
            defer { offset = end }
            return [UInt8](data[offset..<end])
        }
    }

    /// `next(n)` returns up to `n` further bytes (fewer only at the end of the data).
    static func parse(path: String, next: (Int) throws -> [UInt8]) throws -> Contents {
        func malformed(_ reason: String) -> DatasetError { .malformed(path: path, reason: reason) }
        let magic = try next(4)
        guard magic.count == 4, magic[0] == 0, magic[1] == 0 else { throw malformed("no IDX magic number") }
        guard magic[2] == 0x08 else {
            throw malformed("element type 0x\(String(magic[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let rank = Int(magic[3])
        guard rank >= 1 else { throw malformed("rank 0") }
        let dims = try next(4 * rank)
        guard dims.count == 4 * rank else { throw malformed("truncated header") }
        var shape: [Int] = []
        for i in 0..<rank {
            var d = 0
            for byte in dims[4 * i..<4 * i + 4] { d = d << 8 | Int(byte) }  // big-endian, unsigned 32-bit
            shape.append(d)
        }
        guard let count = checkedElementCount(shape) else {
            throw malformed("shape \(shape) has more than \(ShapeLimits.maxElements) elements")
        }
        let bytes = try next(count)
        guard bytes.count == count else {
            throw malformed("shape \(shape) needs \(count) bytes, file has \(bytes.count): truncated")
        }
        guard try next(1).isEmpty else { throw malformed("data continues past the \(count) bytes its shape \(shape) declares") }
        return Contents(shape: shape, bytes: bytes)
    }
}
