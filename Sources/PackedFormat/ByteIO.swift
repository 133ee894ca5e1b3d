import CXXHash
import Foundation

/// XXH3-64 of `bytes` (the packed format's checksum).
func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    XXH3_64bits(bytes.baseAddress, bytes.count)
}

func checksum(_ data: Data) -> UInt64 {
    data.withUnsafeBytes { checksum($0) }
}

/// Appends little-endian fields to a growing buffer.
struct ByteWriter {
    var data = Data()

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u32(_ v: Int) { u32(UInt32(v)) }
    mutating func u64(_ v: Int) { u64(UInt64(v)) }
    mutating func string(_ s: String) {
        let bytes = Array(s.utf8)
        u32(bytes.count)
        data.append(contentsOf: bytes)
    }
    mutating func pad(to alignment: Int) {
        let extra = (alignment - data.count % alignment) % alignment
        data.append(contentsOf: [UInt8](repeating: 0, count: extra))
    }
    /// A blob: aligned to 8, then codec, zero, raw length, stored length, the stored bytes, aligned to 8 again.
    mutating func blob(_ stored: Data, codec: BlobCodec, rawLength: Int) {
        pad(to: 8)
        u32(codec.rawValue)
        u32(0)
        u64(rawLength)
        u64(stored.count)
        data.append(stored)
        pad(to: 8)
    }
}

/// How a blob's bytes are stored.
enum BlobCodec: UInt32 {
    /// The bytes as they are.
    case raw = 0
    /// One zstd frame of the bytes.
    case zstd = 1
    /// One zstd frame of the index bytes split into planes (byte 0 of every index, then byte 1, …): index streams only.
    case zstdPlanes = 2
}

/// A blob as found in a section: where its stored bytes are and how to turn them into `rawLength` bytes.
struct Blob {
    var codec: BlobCodec
    var rawLength: Int
    /// Absolute byte range of the stored bytes in the file.
    var stored: Range<Int>
}

/// Reads little-endian fields from one section of a file, never past the section's end.
struct ByteReader {
    let file: Data
    let path: String
    /// What is being read, for messages ("weight section 3").
    let context: String
    private(set) var position: Int
    let end: Int
    /// The length of the range being read.
    let length: Int

    init(file: Data, path: String, context: String, range: Range<Int>) {
        self.file = file
        self.path = path
        self.context = context
        self.position = range.lowerBound
        self.end = range.upperBound
        self.length = range.count
    }

    func corrupt(_ detail: String) -> PackedFormatError { .corrupt(path: path, detail: "\(context): \(detail)") }

    private mutating func take(_ count: Int) throws -> Int {
        guard count >= 0, count <= end - position else {
            throw PackedFormatError.truncated(path: path, detail: "\(context) ends before its \(count)-byte field at byte \(position)")
        }
        defer { position += count }
        return position
    }

    mutating func u32() throws -> UInt32 {
        let at = try take(4)
        return file.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    }

    mutating func u64() throws -> UInt64 {
        let at = try take(8)
        return file.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    }

    /// A count or size field, which must lie in `limit`.
    mutating func int(_ what: String, _ limit: ClosedRange<Int>, wide: Bool = false) throws -> Int {
        let raw = wide ? try u64() : UInt64(try u32())
        guard raw <= UInt64(Int.max), limit.contains(Int(raw)) else {
            throw corrupt("\(what) is \(raw), expected \(limit.lowerBound)…\(limit.upperBound)")
        }
        return Int(raw)
    }

    mutating func string(_ what: String) throws -> String {
        let count = try int("length of the \(what)", 0...PackedModelFile.maxNameBytes)
        let at = try take(count)
        guard let s = String(validating: file[at..<at + count], as: UTF8.self) else { throw corrupt("the \(what) is not UTF-8") }
        return s
    }

    mutating func align(_ alignment: Int) throws {
        let extra = (alignment - position % alignment) % alignment
        _ = try take(extra)
    }

    /// The next blob; `rawLength` is the length its descriptor implies, which the stored header must repeat.
    mutating func blob(_ what: String, rawLength expected: Int, codecs: Set<BlobCodec> = [.raw, .zstd]) throws -> Blob {
        try blob(what, codecs: codecs) { _ in expected...expected }
    }

    /// The next blob, whose raw length must lie in `expected(codec)` (what the fields read so far imply for it).
    mutating func blob(_ what: String, codecs: Set<BlobCodec>, rawLength expected: (BlobCodec) -> ClosedRange<Int>) throws -> Blob {
        try align(8)
        let codecValue = try u32()
        guard let codec = BlobCodec(rawValue: codecValue), codecs.contains(codec) else { throw corrupt("the \(what) has unknown codec \(codecValue)") }
        _ = try u32()
        let raw = try int("raw length of the \(what)", expected(codec), wide: true)
        let storedCount = try int("stored length of the \(what)", 0...Int(Int32.max), wide: true)
        if codec == .raw && storedCount != raw { throw corrupt("the \(what) is stored raw in \(storedCount) bytes but holds \(raw)") }
        if codec != .raw && raw > PackedModelFile.maxExpansion * storedCount + 4096 {
            throw corrupt("the \(what) would expand \(storedCount) bytes to \(raw)")
        }
        let at = try take(storedCount)
        try align(8)
        return Blob(codec: codec, rawLength: raw, stored: at..<at + storedCount)
    }
}
