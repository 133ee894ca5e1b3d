import Compression
import Compute
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat

/// The packed model file (`.wcm`, specified in docs/PACKED-FORMAT.md): a graph whose compressed weights are stored
/// as they are counted — codebooks at their precision, indices bit-packed at ceil(log2 K) bits or entropy-coded
/// when that is smaller, scales at their precision, pruned matrices as sparse rows — with a checksum per section,
/// read through a memory map and run without expanding more than one layer at a time.
///
/// This type owns the layout: `encode` writes it, `PackedModel.load` reads it back.
public enum PackedModelFile {
    /// "WCPK", then CR LF SUB LF (as PNG: a file damaged by text-mode transfer fails the check).
    public static let magic: [UInt8] = [0x57, 0x43, 0x50, 0x4B, 0x0D, 0x0A, 0x1A, 0x0A]
    public static let version: UInt32 = 1
    public static let fileExtension = "wcm"

    static let headerBytes = 64
    static let tableEntryBytes = 32
    static let sectionAlignment = 64
    static let maxNameBytes = 65_536
    static let maxSections = 1 << 20
    static let maxRank = 8
    /// A zstd blob may expand its stored bytes at most this many times (a guard against decompression bombs).
    static let maxExpansion = 4096
    /// Elements of one weight or tensor, at most (1 GiB of float32; lower when the fuzzing harness lowers the cap).
    static var maxElements: Int { ShapeLimits.maxElements }
    /// A weight's elements per byte of its section, at most (a real 1-bit, 9-value vector codebook is about 72).
    static let maxElementsPerByte = 4096
    /// Float initializers with at least this many values get a tensor section; smaller ones stay in the graph.
    static let tensorSectionThreshold = 256

    enum SectionKind: UInt32 {
        case graph = 1, codebook = 2, weight = 3, tensor = 4
    }

    /// Whether `path` is a regular file that starts with the packed format's magic bytes (never blocks on a FIFO).
    public static func isPacked(_ path: String) -> Bool {
        RegularFile.prefix(path, count: magic.count).map { Array($0) == magic } ?? false
    }

    /// The largest file accepted (the graph section is a protobuf, which cannot exceed 2 GiB; the weights around it
    /// are bounded the same way).
    public static let maxFileBytes = 1 << 32

    /// Writes `graph` (a codebook graph as `compress` returns it, or any graph) packed, atomically.
    @discardableResult
    public static func save(_ graph: Graph, to path: String) throws -> PackingReport {
        let (data, report) = try encode(graph)
        try writeAtomically(data, to: path)
        return report
    }

    /// The packed bytes of `graph`, and what each index stream became.
    public static func encode(_ graph: Graph) throws -> (data: Data, report: PackingReport) {
        let layouts = WeightLayout.recorded(in: graph)
        var weights: [CompressedWeight] = []
        for layout in layouts {
            let w: CompressedWeight
            do { w = try CompressedWeight.read(layout, from: graph) } catch {
                throw PackedFormatError.unwritable(detail: "\(error)")
            }
            let finite = w.codebook.allSatisfy(\.isFinite) && (w.vectorScales?.allSatisfy(\.isFinite) ?? true)
                && (w.codebookSteps?.allSatisfy { $0.isFinite && $0 > 0 } ?? true) && (w.vectorScaleStep.map { $0.isFinite && $0 > 0 } ?? true)
            guard finite else {
                throw PackedFormatError.unwritable(detail: "weight '\(layout.weight)' has a codebook entry, scale or step that is not finite (or a step ≤ 0)")
            }
            weights.append(w)
        }
        var structure = graph
        for layout in layouts { CompressedWeight.remove(layout, from: &structure) }

        var sections: [(SectionKind, Data)] = []
        var streams: [PackingReport.IndexStream] = []
        // Large float tensors (biases, dense or pruned matrices, shared columns) get sections of their own.
        for name in structure.initializers.keys.sorted() {
            guard let t = structure.initializers[name]?.floatTensor, t.count >= tensorSectionThreshold else { continue }
            let storage = structure.storageTypes[name]
            guard storage == nil || storage == 10 else { continue }
            sections.append((.tensor, tensorSection(name: name, tensor: t, half: storage == 10)))
            structure.initializers[name] = nil
            structure.storageTypes[name] = nil
        }
        var writtenCodebooks = Set<String>()
        var weightSections: [Data] = []
        for w in weights {
            if writtenCodebooks.insert(w.layout.codebook).inserted {
                sections.append((.codebook, codebookSection(w)))
            }
            let (data, stream) = weightSection(w)
            weightSections.append(data)
            streams.append(stream)
        }
        sections += weightSections.map { (.weight, $0) }
        let graphBytes: Data
        do { graphBytes = try ONNXModelFile.encode(structure) } catch {
            throw PackedFormatError.unwritable(detail: "the graph structure cannot be encoded: \(error)")
        }
        var graphSection = ByteWriter()
        let compressed = graphBytes.withUnsafeBytes { Zstd.compress($0) }
        if compressed.count < graphBytes.count {
            graphSection.blob(compressed, codec: .zstd, rawLength: graphBytes.count)
        } else {
            graphSection.blob(graphBytes, codec: .raw, rawLength: graphBytes.count)
        }
        sections.insert((.graph, graphSection.data), at: 0)
        let data = assemble(sections)
        return (data, PackingReport(fileBytes: data.count, streams: streams))
    }

    /// Header, section table, then each section at a 64-byte boundary.
    static func assemble(_ sections: [(SectionKind, Data)]) -> Data {
        let tableEnd = headerBytes + sections.count * tableEntryBytes
        var offsets: [Int] = []
        var at = tableEnd
        for (_, data) in sections {
            at = (at + sectionAlignment - 1) / sectionAlignment * sectionAlignment
            offsets.append(at)
            at += data.count
        }
        let fileLength = at
        var table = ByteWriter()
        for ((kind, data), offset) in zip(sections, offsets) {
            table.u32(kind.rawValue)
            table.u32(0)
            table.u64(offset)
            table.u64(data.count)
            table.u64(checksum(data))
        }
        var header = ByteWriter()
        header.data.append(contentsOf: magic)
        header.u32(version)
        header.u32(sections.count)
        header.u64(fileLength)
        header.u64(checksum(table.data))
        header.data.append(contentsOf: [UInt8](repeating: 0, count: 56 - header.data.count))
        header.u64(checksum(header.data))
        var out = header.data
        out.reserveCapacity(fileLength)
        out.append(table.data)
        for ((_, data), offset) in zip(sections, offsets) {
            out.append(contentsOf: [UInt8](repeating: 0, count: offset - out.count))
            out.append(data)
        }
        return out
    }

    static func shape(_ s: [Int], into w: inout ByteWriter) {
        w.u32(s.count)
        for d in s { w.u64(d) }
    }

    static func floats(_ values: [Float]) -> Data {
        values.map(\.bitPattern.littleEndian).withUnsafeBytes { Data($0) }
    }

    static func halves(_ values: [Float]) -> Data {
        values.map(\.halfBits.littleEndian).withUnsafeBytes { Data($0) }
    }

    /// name, storage (1 float32, 10 float16), encoding (0 dense, 1 sparse rows), shape, then the values.
    static func tensorSection(name: String, tensor t: Tensor<Float>, half: Bool) -> Data {
        var w = ByteWriter()
        w.string(name)
        w.u32(half ? 10 : 1)
        let rows = t.shape.first ?? 1, columns = rows > 0 ? t.count / rows : 0
        // Sparse rows keep every value whose bits are not all zero (−0 included, so the file is exact).
        let nonzero = t.scalars.reduce(0) { $0 + ($1.bitPattern != 0 ? 1 : 0) }
        let columnBits = Footprint.indexBits(clusters: columns)
        let sparseBytes = (nonzero * (32 + columnBits) + 7) / 8 + (rows + 1) * 4
        let sparse = !half && t.rank >= 2 && sparseBytes < t.count * 4
        w.u32(sparse ? 1 : 0)
        shape(t.shape, into: &w)
        if !sparse {
            let values = half ? halves(t.scalars) : floats(t.scalars)
            w.blob(values, codec: .raw, rawLength: values.count)
            return w.data
        }
        var starts: [UInt32] = [0], columnIndices: [Int] = [], values: [Float] = []
        for r in 0..<rows {
            for c in 0..<columns where t.scalars[r * columns + c].bitPattern != 0 {
                columnIndices.append(c)
                values.append(t.scalars[r * columns + c])
            }
            starts.append(UInt32(values.count))
        }
        let startBytes = starts.map(\.littleEndian).withUnsafeBytes { Data($0) }
        w.blob(startBytes, codec: .raw, rawLength: startBytes.count)
        let packed = BitPacking.pack(columnIndices, width: columnBits)
        w.blob(packed, codec: .raw, rawLength: packed.count)
        let valueBytes = floats(values)
        w.blob(valueBytes, codec: .raw, rawLength: valueBytes.count)
        return w.data
    }

    /// name, precision (0 fp32, 1 fp16, 2 int8), groups, entries, dimension, then the values (int8: codes, then
    /// one float32 step per codebook).
    static func codebookSection(_ cw: CompressedWeight) -> Data {
        let l = cw.layout
        var w = ByteWriter()
        w.string(l.codebook)
        w.u32(l.precision == .fp32 ? 0 : l.precision == .fp16 ? 1 : 2)
        w.u64(l.groups)
        w.u64(l.entries)
        w.u32(l.dimension)
        switch l.precision {
        case .fp32:
            let values = floats(cw.codebook)
            w.blob(values, codec: .raw, rawLength: values.count)
        case .fp16:
            let values = halves(cw.codebook)
            w.blob(values, codec: .raw, rawLength: values.count)
        case .int8:
            let perCodebook = l.entries * l.dimension
            let steps = cw.codebookSteps ?? [Float](repeating: 1, count: l.groups)
            let codes = cw.codebook.indices.map { UInt8(bitPattern: Int8((cw.codebook[$0] / steps[$0 / perCodebook]).rounded().clamped127)) }
            w.blob(Data(codes), codec: .raw, rawLength: codes.count)
            let stepBytes = floats(steps)
            w.blob(stepBytes, codec: .raw, rawLength: stepBytes.count)
        }
        return w.data
    }

    /// name, codebook name, shape, rows, columns, dimension, group size, flags (1 transposed, 2 row scales,
    /// 4 vector scales), origin, vector-scale bits, then the index stream, row scales (fp16) and vector scales
    /// (fp16, or int8 codes and a float32 step).
    static func weightSection(_ cw: CompressedWeight) -> (Data, PackingReport.IndexStream) {
        let l = cw.layout
        var w = ByteWriter()
        w.string(l.weight)
        w.string(l.codebook)
        shape(l.shape, into: &w)
        w.u64(l.rows)
        w.u64(l.columns)
        w.u32(l.dimension)
        w.u32(0)
        w.u64(l.groupSize)
        w.u32((l.transposed ? 1 : 0) | (cw.rowScales != nil ? 2 : 0) | (cw.vectorScales != nil ? 4 : 0))
        w.u32(l.origin == .palettization ? 1 : l.origin == .kernels ? 2 : 0)
        w.u32(cw.vectorScales != nil ? (l.vectorScaleBits ?? 16) : 0)
        w.u32(0)
        // The index stream: bit-packed, or zstd of it, or zstd of its byte planes, whichever is smallest.
        let bits = l.indexBits
        let packed = BitPacking.pack(cw.indices, width: bits)
        var best = (packed, BlobCodec.raw, packed.count)
        if bits > 0 {
            let z = packed.withUnsafeBytes { Zstd.compress($0) }
            if z.count < best.0.count && packed.count <= maxExpansion * z.count { best = (z, .zstd, packed.count) }
            let planes = BitPacking.planes(cw.indices, planes: BitPacking.planeCount(width: bits))
            let zp = planes.withUnsafeBytes { Zstd.compress($0) }
            if zp.count < best.0.count && planes.count <= maxExpansion * zp.count { best = (zp, .zstdPlanes, planes.count) }
        }
        w.blob(best.0, codec: best.1, rawLength: best.2)
        if let rs = cw.rowScales {
            let bytes = halves(rs)
            w.blob(bytes, codec: .raw, rawLength: bytes.count)
        }
        if let vs = cw.vectorScales {
            if l.vectorScaleBits == 8 {
                let maxAbs = vs.map(abs).max() ?? 0
                let step = cw.vectorScaleStep ?? (maxAbs > 0 ? maxAbs / 127 : 1)
                let codes = vs.map { UInt8(bitPattern: Int8(($0 / step).rounded().clamped127)) }
                w.blob(Data(codes), codec: .raw, rawLength: codes.count)
                let stepBytes = floats([step])
                w.blob(stepBytes, codec: .raw, rawLength: stepBytes.count)
            } else {
                let bytes = halves(vs)
                w.blob(bytes, codec: .raw, rawLength: bytes.count)
            }
        }
        var counts = [Int](repeating: 0, count: l.entries)
        for i in cw.indices { counts[Int(i)] += 1 }
        let stream = PackingReport.IndexStream(weight: l.weight, codebook: l.codebook, entries: l.entries, indices: cw.indices.count,
                                               indexBits: bits, storedBytes: best.0.count, entropy: entropy(counts),
                                               codec: best.1.name)
        return (w.data, stream)
    }
}

extension Float {
    /// Rounded to the int8 range [−127, 127].
    var clamped127: Float { Swift.min(Swift.max(self, -127), 127) }
}

extension BlobCodec {
    var name: String {
        switch self {
        case .raw: "bit-packed"
        case .zstd: "zstd"
        case .zstdPlanes: "zstd byte planes"
        }
    }
}

extension PackedModelFile {
    /// Not API (tests and fuzzing): the file with each section passed through `transform` (its kind, its bytes)
    /// and every checksum recomputed, so that a changed field reaches the parser behind the checksums.
    public static func _rewritingSections(_ data: Data, _ transform: (UInt32, Data) throws -> Data) throws -> Data {
        let sections = try PackedModel.sectionTable(data.startIndex == 0 ? data : Data(data), path: "<memory>")
        return assemble(try sections.map { ($0.kind, try transform($0.kind.rawValue, Data(data[$0.range]))) })
    }
}

extension PackedModelFile {
    /// Not API (fuzzing): `data` with every checksum recomputed wherever the header and table can be followed, so that
    /// mutated bytes reach the section parsers instead of stopping at a checksum.
    public static func _resealed(_ data: Data) -> Data {
        var bytes = [UInt8](data)
        guard bytes.count >= headerBytes else { return data }
        func u64(_ at: Int) -> UInt64 { bytes[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func put(_ v: UInt64, at: Int) { for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        let count = Int(UInt32(bytes[12]) | UInt32(bytes[13]) << 8 | UInt32(bytes[14]) << 16 | UInt32(bytes[15]) << 24)
        let tableEnd = headerBytes + min(count, maxSections) * tableEntryBytes
        if tableEnd <= bytes.count {
            for i in 0..<min(count, maxSections) {
                let entry = headerBytes + i * tableEntryBytes
                let offset = u64(entry + 8), length = u64(entry + 16)
                guard offset <= UInt64(bytes.count), length <= UInt64(bytes.count) - offset else { continue }
                let sum = bytes[Int(offset)..<Int(offset + length)].withUnsafeBytes { checksum($0) }
                put(sum, at: entry + 24)
            }
            put(bytes[headerBytes..<tableEnd].withUnsafeBytes { checksum($0) }, at: 24)
        }
        put(bytes[0..<56].withUnsafeBytes { checksum($0) }, at: 56)
        return Data(bytes)
    }
}
