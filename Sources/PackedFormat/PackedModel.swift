import Compression
import Compute
import FileOutput
import Foundation
import ModelGraph
import ONNXFormat

/// A packed model file, loaded: every field checked against the file's length and the format's limits, every
/// section's checksum verified, every index checked against its codebook — so running it cannot read out of
/// bounds. The file is memory-mapped; compressed weights stay in it until a node reads them.
public struct PackedModel: Sendable {
    public let path: String
    /// The graph to run: compressed weights are `deferredWeights`, expanded one layer at a time.
    public let graph: Graph
    public let report: PackingReport
    let weights: [PackedWeight]

    /// The model in codebook form (the ONNX graph `compress --format codebook` writes): for inspection,
    /// fine-tuning and export.
    public func codebookGraph() throws -> Graph {
        var g = graph
        for w in weights {
            g.deferredWeights[w.layout.weight] = nil
            w.compressedWeight().write(into: &g)
        }
        return g
    }

    /// Bytes the compressed weights hold while the model runs (codebooks decoded, index streams in the map).
    public var compressedBytes: Int { graph.deferredWeights.values.reduce(0) { $0 + $1.storedBytes } }

    public static func load(_ path: String) throws -> PackedModel {
        let data: Data
        do {
            data = try RegularFile.mapped(path, limit: PackedModelFile.maxFileBytes)
        } catch {
            throw PackedFormatError.unreadable(path: path, reason: error.description)
        }
        guard !data.isEmpty else { throw PackedFormatError.truncated(path: path, detail: "the file is empty") }
        return try decode(data, path: path)
    }

    /// Reads a packed model from bytes (a memory map or a buffer; `path` names it in messages).
    public static func decode(_ data: Data, path: String = "<memory>") throws -> PackedModel {
        let data = data.startIndex == 0 ? data : Data(data)
        let sections = try sectionTable(data, path: path)
        guard let first = sections.first, first.kind == .graph, sections.dropFirst().allSatisfy({ $0.kind != .graph }) else {
            throw PackedFormatError.corrupt(path: path, detail: "the first section, and only it, must be the graph")
        }
        var graph = try decodeGraph(data, path: path, range: first.range)
        var codebooks: [String: PackedCodebook] = [:]
        var weights: [PackedWeight] = []
        var streams: [PackingReport.IndexStream] = []
        for (number, section) in sections.enumerated().dropFirst() {
            var reader = ByteReader(file: data, path: path, context: "section \(number) (\(section.kind))", range: section.range)
            switch section.kind {
            case .graph: break
            case .tensor:
                let (name, tensor, half) = try decodeTensor(&reader)
                guard graph.initializers[name] == nil else { throw reader.corrupt("tensor '\(name)' is stored twice") }
                graph.initializers[name] = .float(tensor)
                if half { graph.storageTypes[name] = 10 }
            case .codebook:
                let codebook = try PackedCodebook(&reader)
                guard codebooks[codebook.name] == nil else { throw reader.corrupt("codebook '\(codebook.name)' is stored twice") }
                codebooks[codebook.name] = codebook
            case .weight:
                let (weight, stream) = try PackedWeight.decode(&reader, file: data, codebooks: codebooks)
                let name = weight.layout.weight
                guard graph.initializers[name] == nil, graph.deferredWeights[name] == nil else {
                    throw reader.corrupt("weight '\(name)' is also stored elsewhere in the file")
                }
                graph.deferredWeights[name] = weight.deferred
                weights.append(weight)
                streams.append(stream)
            }
        }
        return PackedModel(path: path, graph: graph, report: PackingReport(fileBytes: data.count, streams: streams), weights: weights)
    }

    struct Section {
        var kind: PackedModelFile.SectionKind
        var range: Range<Int>
    }

    /// Header and section table, with every offset, length and checksum verified.
    static func sectionTable(_ data: Data, path: String) throws -> [Section] {
        let n = data.count
        guard n >= PackedModelFile.magic.count, Array(data[0..<PackedModelFile.magic.count]) == PackedModelFile.magic else {
            if n < PackedModelFile.magic.count && Array(data) == Array(PackedModelFile.magic.prefix(n)) {
                throw PackedFormatError.truncated(path: path, detail: "\(n) bytes, shorter than the header")
            }
            throw PackedFormatError.notPacked(path: path)
        }
        guard n >= PackedModelFile.headerBytes else {
            throw PackedFormatError.truncated(path: path, detail: "\(n) bytes, shorter than the \(PackedModelFile.headerBytes)-byte header")
        }
        var header = ByteReader(file: data, path: path, context: "header", range: 8..<PackedModelFile.headerBytes)
        let version = try header.u32()
        let count = try header.u32()
        let fileLength = try header.u64()
        let tableChecksum = try header.u64()
        let headerSum = data.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[0..<56])) }
        let stored = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 56, as: UInt64.self)) }
        guard headerSum == stored else { throw PackedFormatError.corrupt(path: path, detail: "the header checksum does not match") }
        guard version == PackedModelFile.version else { throw PackedFormatError.unsupportedVersion(path: path, version: version) }
        guard fileLength == UInt64(n) else {
            if fileLength > UInt64(n) {
                throw PackedFormatError.truncated(path: path, detail: "the header says \(fileLength) bytes, the file has \(n)")
            }
            throw PackedFormatError.corrupt(path: path, detail: "the header says \(fileLength) bytes, the file has \(n) (data after the end)")
        }
        guard count >= 1, Int(count) <= PackedModelFile.maxSections,
              PackedModelFile.headerBytes + Int(count) * PackedModelFile.tableEntryBytes <= n else {
            throw PackedFormatError.corrupt(path: path, detail: "\(count) sections do not fit a \(n)-byte file")
        }
        let tableRange = PackedModelFile.headerBytes..<PackedModelFile.headerBytes + Int(count) * PackedModelFile.tableEntryBytes
        guard checksum(data[tableRange]) == tableChecksum else {
            throw PackedFormatError.corrupt(path: path, detail: "the section table's checksum does not match")
        }
        var table = ByteReader(file: data, path: path, context: "section table", range: tableRange)
        var sections: [Section] = []
        var end = tableRange.upperBound
        for i in 0..<Int(count) {
            let kindValue = try table.u32()
            _ = try table.u32()
            let offset = try table.u64(), length = try table.u64(), sum = try table.u64()
            guard let kind = PackedModelFile.SectionKind(rawValue: kindValue) else {
                throw PackedFormatError.corrupt(path: path, detail: "section \(i) has unknown kind \(kindValue)")
            }
            guard offset % UInt64(PackedModelFile.sectionAlignment) == 0, offset >= UInt64(end), length <= UInt64(n),
                  offset <= UInt64(n) - length else {
                throw PackedFormatError.corrupt(path: path, detail: "section \(i) (bytes \(offset)+\(length)) is misplaced in a \(n)-byte file")
            }
            let range = Int(offset)..<Int(offset + length)
            guard checksum(data[range]) == sum else {
                throw PackedFormatError.corrupt(path: path, detail: "section \(i) (\(kind)) fails its checksum")
            }
            sections.append(Section(kind: kind, range: range))
            end = range.upperBound
        }
        return sections
    }

    static func decodeGraph(_ data: Data, path: String, range: Range<Int>) throws -> Graph {
        var reader = ByteReader(file: data, path: path, context: "graph section", range: range)
        let blob = try reader.blob("graph", codecs: [.raw, .zstd]) { _ in 1...ONNXModelFile.maxFileBytes }
        let bytes = try blobBytes(blob, in: data, path: path, what: "graph")
        do {
            return try ONNXModelFile.decode(bytes, path: path)
        } catch {
            throw PackedFormatError.corrupt(path: path, detail: "graph section: \(error)")
        }
    }

    /// The raw bytes of a blob (decompressed when coded).
    static func blobBytes(_ blob: Blob, in data: Data, path: String, what: String) throws -> Data {
        if blob.codec == .raw { return data[blob.stored] }
        var out = Data(count: blob.rawLength)
        let ok = out.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { src in Zstd.decompress(UnsafeRawBufferPointer(rebasing: src[blob.stored]), into: dst) }
        }
        guard ok else { throw PackedFormatError.corrupt(path: path, detail: "the \(what) does not decompress to its \(blob.rawLength) bytes") }
        return out
    }

    static func decodeShape(_ reader: inout ByteReader) throws -> [Int] {
        let rank = try reader.int("rank", 0...PackedModelFile.maxRank)
        var shape: [Int] = []
        var count = 1
        for _ in 0..<rank {
            let d = try reader.int("dimension", 0...PackedModelFile.maxElements, wide: true)
            count = d == 0 ? 0 : count.multipliedReportingOverflow(by: d).overflow ? Int.max : count * d
            guard count <= PackedModelFile.maxElements else { throw reader.corrupt("shape holds more than \(PackedModelFile.maxElements) elements") }
            shape.append(d)
        }
        return shape
    }

    static func decodeTensor(_ reader: inout ByteReader) throws -> (String, Tensor<Float>, Bool) {
        let name = try reader.string("tensor name")
        let storage = try reader.u32()
        let encoding = try reader.u32()
        guard storage == 1 || storage == 10, encoding <= 1, !(storage == 10 && encoding == 1) else {
            throw reader.corrupt("tensor '\(name)': storage \(storage) with encoding \(encoding) is not defined")
        }
        let shape = try decodeShape(&reader)
        let count = shape.reduce(1, *)
        if encoding == 0 {
            let width = storage == 10 ? 2 : 4
            let blob = try reader.blob("values of '\(name)'", rawLength: count * width, codecs: [.raw])
            let tensor = Tensor<Float>(shape: shape) { out in
                reader.file.withUnsafeBytes { src in
                    for i in 0..<count {
                        let at = blob.stored.lowerBound + i * width
                        out[i] = width == 4 ? Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                            : Float(halfBits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                    }
                }
            }
            return (name, tensor, storage == 10)
        }
        guard shape.count >= 2 else { throw reader.corrupt("tensor '\(name)': sparse rows need rank ≥ 2") }
        let rows = shape[0], columns = rows == 0 ? 0 : count / rows
        let startsBlob = try reader.blob("row starts of '\(name)'", rawLength: (rows + 1) * 4, codecs: [.raw])
        let starts: [Int] = reader.file.withUnsafeBytes { src in
            (0...rows).map { Int(UInt32(littleEndian: src.loadUnaligned(fromByteOffset: startsBlob.stored.lowerBound + 4 * $0, as: UInt32.self))) }
        }
        guard starts[0] == 0, zip(starts, starts.dropFirst()).allSatisfy({ $0 <= $1 && $1 - $0 <= columns }) else {
            throw reader.corrupt("tensor '\(name)': row starts are not increasing within \(columns) columns")
        }
        let nonzero = starts[rows], bits = Footprint.indexBits(clusters: columns)
        let columnBlob = try reader.blob("column indices of '\(name)'", rawLength: BitPacking.byteCount(values: nonzero, width: bits), codecs: [.raw])
        let valueBlob = try reader.blob("values of '\(name)'", rawLength: nonzero * 4, codecs: [.raw])
        var scalars = [Float](repeating: 0, count: count)
        try reader.file.withUnsafeBytes { src in
            var columnsReader = BitReader(UnsafeRawBufferPointer(rebasing: src[columnBlob.stored]), width: bits)
            for r in 0..<rows {
                for k in starts[r]..<starts[r + 1] {
                    let c = columnsReader.next()
                    guard c < columns else { throw reader.corrupt("tensor '\(name)': column \(c) of row \(r) is out of range") }
                    scalars[r * columns + c] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: valueBlob.stored.lowerBound + 4 * k, as: UInt32.self)))
                }
            }
        }
        return (name, Tensor(shape: shape, scalars: scalars), false)
    }
}

/// A codebook section, decoded: its entries as the graph computes them (int8: code × step).
struct PackedCodebook: Sendable {
    var name: String
    var precision: EntryPrecision
    var groups: Int
    var entries: Int
    var dimension: Int
    /// [groups·entries·dimension] floats.
    var values: [Float]
    var steps: [Float]?

    init(_ reader: inout ByteReader) throws {
        name = try reader.string("codebook name")
        let p = try reader.u32()
        guard p <= 2 else { throw reader.corrupt("codebook '\(name)' has unknown precision \(p)") }
        precision = p == 0 ? .fp32 : p == 1 ? .fp16 : .int8
        groups = try reader.int("codebook groups", 1...PackedModelFile.maxElements, wide: true)
        entries = try reader.int("codebook entries", 1...PackedModelFile.maxElements, wide: true)
        dimension = try reader.int("codebook dimension", 1...PackedModelFile.maxElements)
        let (c1, o1) = groups.multipliedReportingOverflow(by: entries)
        let (count, o2) = c1.multipliedReportingOverflow(by: dimension)
        guard !o1, !o2, count <= PackedModelFile.maxElements else { throw reader.corrupt("codebook '\(name)' is too large") }
        let width = precision.bits / 8
        let blob = try reader.blob("entries of codebook '\(name)'", rawLength: count * width, codecs: [.raw])
        var steps: [Float]? = nil
        if precision == .int8 {
            let stepBlob = try reader.blob("steps of codebook '\(name)'", rawLength: groups * 4, codecs: [.raw])
            let groupCount = groups
            steps = reader.file.withUnsafeBytes { src in
                (0..<groupCount).map { Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: stepBlob.stored.lowerBound + 4 * $0, as: UInt32.self))) }
            }
        }
        let perCodebook = entries * dimension, precision = self.precision, stepValues = steps ?? []
        let values: [Float] = reader.file.withUnsafeBytes { src in
            (0..<count).map { i in
                let at = blob.stored.lowerBound + i * width
                switch precision {
                case .fp32: return Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                case .fp16: return Float(halfBits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                case .int8: return Float(Int8(bitPattern: src[at])) * stepValues[i / perCodebook]
                }
            }
        }
        guard values.allSatisfy(\.isFinite), stepValues.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw reader.corrupt("codebook '\(name)' holds a value or step that is not finite (or a step ≤ 0)")
        }
        self.values = values
        self.steps = steps
    }
}
