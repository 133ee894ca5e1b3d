import Compression
import Compute
import Foundation
import ModelGraph

/// A weight section, decoded: the layout, its codebook, and its index stream and vector scales left in the file
/// (a memory map) and read each time the weight is expanded.
struct PackedWeight: Sendable {
    var layout: WeightLayout
    var codebook: [Float]
    var codebookSteps: [Float]?
    var rowScales: [Float]?
    /// The indices, bit-packed at ceil(log2 K) bits (a slice of the mapped file when stored so).
    var indices: Data
    /// Per-vector scales as stored (fp16, or int8 codes times `vectorScaleStep`): a slice of the mapped file.
    var vectorScales: Data?
    var vectorScaleStep: Float?

    static func decode(_ reader: inout ByteReader, file: Data, codebooks: [String: PackedCodebook]) throws -> (PackedWeight, PackingReport.IndexStream) {
        let name = try reader.string("weight name")
        let codebookName = try reader.string("codebook name")
        guard let codebook = codebooks[codebookName] else {
            throw reader.corrupt("weight '\(name)' names codebook '\(codebookName)', which no earlier section holds")
        }
        let shape = try PackedModel.decodeShape(&reader)
        let limit = 1...PackedModelFile.maxElements
        let rows = try reader.int("rows of '\(name)'", limit, wide: true)
        let columns = try reader.int("columns of '\(name)'", limit, wide: true)
        let dimension = try reader.int("dimension of '\(name)'", limit)
        _ = try reader.u32()
        let groupSize = try reader.int("group size of '\(name)'", limit, wide: true)
        let flags = try reader.u32()
        let origin = try reader.u32()
        let vectorScaleBits = try reader.u32()
        _ = try reader.u32()
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard count <= PackedModelFile.maxElementsPerByte * reader.length else {
            throw reader.corrupt("weight '\(name)' claims \(count) values from a \(reader.length)-byte section")
        }
        guard !overflow, count == shape.reduce(1, *), flags <= 7, origin <= 2,
              dimension == codebook.dimension, columns % dimension == 0,
              (rows + groupSize - 1) / groupSize == codebook.groups,
              (flags & 4 == 0) == (vectorScaleBits == 0), [0, 8, 16].contains(vectorScaleBits) else {
            throw reader.corrupt("weight '\(name)': its layout (shape \(shape), \(rows)×\(columns), d=\(dimension), groups of \(groupSize)) does not fit codebook '\(codebookName)' (\(codebook.groups) × \(codebook.entries) × d=\(codebook.dimension))")
        }
        let layout = WeightLayout(weight: name, shape: shape, rows: rows, columns: columns, transposed: flags & 1 != 0,
                                  dimension: dimension, entries: codebook.entries, groupSize: groupSize, codebook: codebookName,
                                  precision: codebook.precision, rowScales: flags & 2 != 0,
                                  vectorScaleBits: vectorScaleBits == 0 ? nil : Int(vectorScaleBits),
                                  origin: origin == 1 ? .palettization : origin == 2 ? .kernels : nil)
        let n = layout.indexCount, bits = layout.indexBits
        // What each codec's stream must expand to; the stored header must say the same.
        let packedLength = BitPacking.byteCount(values: n, width: bits)
        let planesLength = n * BitPacking.planeCount(width: bits)
        let indices = try reader.blob("indices of '\(name)'", codecs: bits == 0 ? [.raw] : [.raw, .zstd, .zstdPlanes]) { codec in
            let length = codec == .zstdPlanes ? planesLength : packedLength
            return length...length
        }
        var rowScales: [Float]? = nil
        if layout.rowScales {
            let blob = try reader.blob("row scales of '\(name)'", rawLength: rows * 2, codecs: [.raw])
            rowScales = file.withUnsafeBytes { src in
                (0..<rows).map { Float(halfBits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: blob.stored.lowerBound + 2 * $0, as: UInt16.self))) }
            }
        }
        var vectorScales: Blob? = nil, vectorScaleStep: Float? = nil
        if vectorScaleBits != 0 {
            vectorScales = try reader.blob("vector scales of '\(name)'", rawLength: n * Int(vectorScaleBits) / 8, codecs: [.raw])
            if vectorScaleBits == 8 {
                let blob = try reader.blob("vector scale step of '\(name)'", rawLength: 4, codecs: [.raw])
                vectorScaleStep = file.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: blob.stored.lowerBound, as: UInt32.self))) }
                guard let step = vectorScaleStep, step.isFinite, step > 0 else { throw reader.corrupt("the vector-scale step of '\(name)' is not a finite positive number") }
            }
        }
        let packed = try packedIndices(indices, file: file, count: n, width: bits, reader: reader, name: name)
        let weight = PackedWeight(layout: layout, codebook: codebook.values, codebookSteps: codebook.steps, rowScales: rowScales,
                                  indices: packed, vectorScales: vectorScales.map { file[$0.stored] }, vectorScaleStep: vectorScaleStep)
        // Every index must name an entry of its codebook (checked once here, so expansion never reads out of range).
        var counts = [Int](repeating: 0, count: layout.entries)
        let inRange: Bool = packed.withUnsafeBytes { bytes in
            var cursor = BitReader(bytes, width: bits)
            for _ in 0..<n {
                let i = cursor.next()
                guard i < counts.count else { return false }
                counts[i] += 1
            }
            return true
        }
        guard inRange else { throw reader.corrupt("an index of '\(name)' is ≥ its codebook's \(layout.entries) entries") }
        let stream = PackingReport.IndexStream(weight: name, codebook: codebookName, entries: layout.entries, indices: n, indexBits: bits,
                                               storedBytes: indices.stored.count, entropy: entropy(counts), codec: indices.codec.name)
        return (weight, stream)
    }

    /// The index stream bit-packed: the mapped bytes themselves when stored so, else decoded once at load (no larger
    /// than ceil(log2 K) bits per index).
    static func packedIndices(_ blob: Blob, file: Data, count n: Int, width: Int, reader: ByteReader, name: String) throws -> Data {
        if blob.codec == .raw { return file[blob.stored] }
        let raw = try PackedModel.blobBytes(blob, in: file, path: reader.path, what: "index stream of '\(name)'")
        if blob.codec == .zstd { return raw }
        let planes = BitPacking.planeCount(width: width)
        return raw.withUnsafeBytes { bytes in
            BitPacking.pack((0..<n).lazy.map { i in
                var v = 0
                for p in 0..<planes { v |= Int(bytes[p * n + i]) << (8 * p) }
                return v
            }, width: width)
        }
    }

    /// The weight as the executor sees it: shape, bytes held, and the expansion.
    var deferred: DeferredWeight {
        let held = codebook.count * 4 + (rowScales?.count ?? 0) * 4 + indices.count + (vectorScales?.count ?? 0)
        return DeferredWeight(shape: layout.shape, storedBytes: held) { [self] range, out in expand(range, into: out) }
    }

    /// Writes the slices `range` of the first axis of the dense weight into `out`, in the same order of operations as
    /// the ONNX codebook graph (entry × vector scale × row scale), so both give bit-identical weights.
    func expand(_ range: Range<Int>, into out: UnsafeMutableBufferPointer<Float>) {
        let l = layout, d = l.dimension, v = l.vectorsPerRow, bits = l.indexBits
        let hasVectorScales = vectorScales != nil
        codebook.withUnsafeBufferPointer { cb in
            indices.withUnsafeBytes { packed in
            (vectorScales ?? Data()).withUnsafeBytes { scaleBytes in
                func vectorScale(_ k: Int) -> Float? { hasVectorScales ? self.vectorScale(k, in: scaleBytes) : nil }
                if !l.transposed {
                    // Rows of the canonical matrix are slices of the first axis.
                    var cursor = BitReader(packed, width: bits, startingAt: range.lowerBound * v)
                    var o = 0
                    for r in range {
                        let base = (r / l.groupSize) * l.entries
                        let rowScale = rowScales?[r]
                        if d == 1 && !hasVectorScales {
                            let row = out.baseAddress! + o
                            BitPacking.lookUp(packed, width: bits, first: r * v, count: v, table: cb.baseAddress! + base, into: row)
                            if let rowScale { for j in 0..<v { row[j] *= rowScale } }
                            o += v
                            continue
                        }
                        for j in 0..<v {
                            let entry = (base + cursor.next()) * d
                            let vs = vectorScale(r * v + j)
                            for e in 0..<d {
                                var x = cb[entry + e]
                                if let vs { x *= vs }
                                if let rowScale { x *= rowScale }
                                out[o] = x
                                o += 1
                            }
                        }
                    }
                    return
                }
                // Stored [columns, rows]: the slices are canonical columns; every row contributes its vectors there.
                let first = range.lowerBound / d, last = (range.upperBound - 1) / d
                for r in 0..<l.rows {
                    let base = (r / l.groupSize) * l.entries
                    let rowScale = rowScales?[r]
                    var cursor = BitReader(packed, width: bits, startingAt: r * v + first)
                    for j in first...last {
                        let entry = (base + cursor.next()) * d
                        let vs = vectorScale(r * v + j)
                        for e in 0..<d where range.contains(j * d + e) {
                            var x = cb[entry + e]
                            if let vs { x *= vs }
                            if let rowScale { x *= rowScale }
                            out[(j * d + e - range.lowerBound) * l.rows + r] = x
                        }
                    }
                }
            }
            }
        }
    }

    /// Vector scale `k` as the graph computes it: fp16, or an int8 code times the step.
    @inline(__always)
    func vectorScale(_ k: Int, in bytes: UnsafeRawBufferPointer) -> Float {
        layout.vectorScaleBits == 8 ? Float(Int8(bitPattern: bytes[k])) * (vectorScaleStep ?? 1)
            : Float(halfBits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self)))
    }

    /// The weight in the library's compressed form (to write it into a codebook graph).
    func compressedWeight() -> CompressedWeight {
        let l = layout
        let values: [Int32] = indices.withUnsafeBytes { packed in
            var cursor = BitReader(packed, width: l.indexBits)
            return (0..<l.indexCount).map { _ in Int32(cursor.next()) }
        }
        let scales: [Float]? = vectorScales.map { data in data.withUnsafeBytes { b in (0..<l.indexCount).map { vectorScale($0, in: b) } } }
        return CompressedWeight(layout: l, indices: values, codebook: codebook, rowScales: rowScales, vectorScales: scales,
                                codebookSteps: codebookSteps, vectorScaleStep: vectorScaleStep)
    }
}
