import Compute
import Foundation
import ModelGraph

/// ONNX tensor element types the compressed layouts store (TensorProto.DataType codes), named.
public enum StorageType: Int, Sendable, Codable {
    case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int32 = 6, int64 = 7, float16 = 10
}

/// Precision of codebook (LUT) entries as stored.
public enum EntryPrecision: String, Sendable, Codable, CaseIterable {
    case fp32, fp16
    /// Symmetric 8-bit codes with one float step per codebook (entry = code × step).
    case int8

    public var bits: Int { self == .fp32 ? 32 : self == .fp16 ? 16 : 8 }

    /// `values` as they will be stored, with the int8 step (per codebook of `entries·d` values).
    func quantised(_ values: [Float], codebookSize: Int) -> (values: [Float], steps: [Float]) {
        switch self {
        case .fp32: return (values, [])
        case .fp16: return (values.map { Float(halfBits: $0.halfBits) }, [])
        case .int8:
            var out = values, steps: [Float] = []
            for start in stride(from: 0, to: values.count, by: max(1, codebookSize)) {
                let end = min(values.count, start + codebookSize)
                let maxAbs = values[start..<end].map(abs).max() ?? 0
                let step: Float = maxAbs > 0 ? maxAbs / 127 : 1
                steps.append(step)
                for i in start..<end { out[i] = ((values[i] / step).rounded()).clamped(-127, 127) * step }
            }
            return (out, steps)
        }
    }
}

/// How one compressed weight tensor is laid out in a graph, and the one place that writes and reads that layout.
///
/// The weight is viewed as a matrix of `rows` output units × `columns` inputs (Conv [O, I/g, kh, kw] → O × I/g·kh·kw;
/// Gemm transB = 1 [out, in] as it is; Gemm transB = 0 and MatMul [in, out] transposed). Each row is cut into
/// `columns / dimension` vectors of `dimension` consecutive weights; each vector is one of the `entries` rows of
/// its group's codebook, times an optional per-vector scale, and each row times an optional per-row scale.
/// Rows are grouped `groupSize` at a time, each group with its own codebook; a codebook may be shared by several
/// weights (network scope). In a graph the layout is a handful of initializers and standard ONNX nodes
/// (Cast → Add → Gather → Reshape → Mul → Transpose → Reshape) that rebuild the weight under its old name, so any
/// ONNX runtime runs the file; the layout itself is recorded as JSON in the metadata key `recordKey`.
public struct WeightLayout: Sendable, Codable, Equatable {
    public var weight: String
    public var shape: [Int]
    public var rows: Int
    public var columns: Int
    /// The stored tensor is [columns, rows] (Gemm transB = 0, MatMul), so the rebuild ends with a Transpose.
    public var transposed: Bool
    public var dimension: Int
    public var entries: Int
    public var groupSize: Int
    /// Initializer holding the codebooks, [groups·entries, dimension] (or [groups·entries] when dimension is 1).
    public var codebook: String
    public var precision: EntryPrecision
    public var rowScales: Bool
    /// Bits of the per-vector scales (16: float16; 8: int8 codes with one step), nil without.
    public var vectorScaleBits: Int?
    /// Which pass wrote the weight (nil in files written before it was recorded).
    public var origin: Origin? = nil

    public enum Origin: String, Sendable, Codable {
        /// A scalar LUT or vector codebook per tensor, channel group or network (palettization).
        case palettization
        /// A codebook of 2D kernels (the kernel-clustering seed).
        case kernels
    }

    public init(weight: String, shape: [Int], rows: Int, columns: Int, transposed: Bool, dimension: Int, entries: Int,
                groupSize: Int, codebook: String, precision: EntryPrecision, rowScales: Bool, vectorScaleBits: Int?,
                origin: Origin? = nil) {
        self.weight = weight
        self.shape = shape
        self.rows = rows
        self.columns = columns
        self.transposed = transposed
        self.dimension = dimension
        self.entries = entries
        self.groupSize = groupSize
        self.codebook = codebook
        self.precision = precision
        self.rowScales = rowScales
        self.vectorScaleBits = vectorScaleBits
        self.origin = origin
    }

    public var groups: Int { (rows + groupSize - 1) / groupSize }
    public var vectorsPerRow: Int { columns / dimension }
    public var indexCount: Int { rows * vectorsPerRow }
    public var indexBits: Int { Footprint.indexBits(clusters: entries) }

    public static let recordKey = "weightcluster.layouts"

    /// Names of the initializers this layout owns (besides the codebook, which may be shared).
    var indexName: String { "\(weight)/wc_index" }
    var offsetName: String { "\(weight)/wc_group_offset" }
    var rowScaleName: String { "\(weight)/wc_row_scale" }
    var vectorScaleName: String { "\(weight)/wc_vector_scale" }
    var stepName: String { "\(codebook)/wc_step" }

    /// Bytes the footprint counts for this weight without its codebook: bit-packed indices and scales.
    public var indexAndScaleBytes: Int {
        (indexCount * indexBits + 7) / 8 + (rowScales ? rows * 2 : 0)
            + (vectorScaleBits.map { (indexCount * $0 + 7) / 8 + ($0 == 8 ? 4 : 0) } ?? 0)
    }

    /// Bytes of the codebook tensor as stored (with the int8 steps).
    public var codebookBytes: Int {
        groups * entries * dimension * precision.bits / 8 + (precision == .int8 ? 4 * groups : 0)
    }

    /// Every layout recorded in `graph`.
    public static func recorded(in graph: Graph) -> [WeightLayout] {
        guard let text = graph.metadata[recordKey], let data = text.data(using: .utf8) else { return [] }
        return (try? JSONDecoder().decode([WeightLayout].self, from: data)) ?? []
    }

    static func record(_ layouts: [WeightLayout], in graph: inout Graph) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        graph.metadata[recordKey] = layouts.isEmpty ? nil : String(decoding: (try? encoder.encode(layouts)) ?? Data(), as: UTF8.self)
    }
}

/// A weight in compressed form: its layout and the values behind it.
public struct CompressedWeight: Sendable {
    public var layout: WeightLayout
    /// Codebook entry (within the row's group) of every vector, row-major [rows, vectorsPerRow].
    public var indices: [Int32]
    /// [groups·entries·dimension], as stored (already at `precision`).
    public var codebook: [Float]
    public var rowScales: [Float]?
    public var vectorScales: [Float]?
    /// The int8 codebooks' steps as stored (one per codebook), when known: `write` then stores exactly these instead
    /// of deriving them again from the values, so reading and writing a layout changes no bit.
    public var codebookSteps: [Float]? = nil
    /// The step of 8-bit vector scales as stored, when known (as `codebookSteps`).
    public var vectorScaleStep: Float? = nil

    public init(layout: WeightLayout, indices: [Int32], codebook: [Float], rowScales: [Float]?, vectorScales: [Float]?,
                codebookSteps: [Float]? = nil, vectorScaleStep: Float? = nil) {
        self.layout = layout
        self.indices = indices
        self.codebook = codebook
        self.rowScales = rowScales
        self.vectorScales = vectorScales
        self.codebookSteps = codebookSteps
        self.vectorScaleStep = vectorScaleStep
    }

    /// The dense weight in its stored shape and order.
    public func reconstructed() -> Tensor<Float> {
        let l = layout, d = l.dimension, v = l.vectorsPerRow
        var canonical = [Float](repeating: 0, count: l.rows * l.columns)
        for r in 0..<l.rows {
            let base = (r / l.groupSize) * l.entries
            let s = rowScales?[r] ?? 1
            for j in 0..<v {
                let entry = (base + Int(indices[r * v + j])) * d
                let t = (vectorScales?[r * v + j] ?? 1) * s
                for e in 0..<d { canonical[r * l.columns + j * d + e] = codebook[entry + e] * t }
            }
        }
        guard l.transposed else { return Tensor(shape: l.shape, scalars: canonical) }
        var stored = [Float](repeating: 0, count: canonical.count)
        for r in 0..<l.rows { for c in 0..<l.columns { stored[c * l.rows + r] = canonical[r * l.columns + c] } }
        return Tensor(shape: l.shape, scalars: stored)
    }

    /// Writes the weight into `graph` in codebook form: removes the dense initializer, adds the indices, scales
    /// and (unless already there) the codebook, the nodes that rebuild the weight, and the layout record.
    public func write(into graph: inout Graph) {
        let l = layout, w = l.weight
        var nodes: [Node] = []
        func node(_ op: String, _ inputs: [String], _ output: String, _ attributes: [String: Attribute] = [:]) {
            nodes.append(Node(name: "\(output)/node", opType: op, inputs: inputs, outputs: [output], attributes: attributes))
        }
        func constant(_ name: String, _ tensor: AnyTensor, _ storage: StorageType) { Self.store(tensor, as: storage, named: name, in: &graph) }
        graph.initializers[w] = nil
        graph.storageTypes[w] = nil
        // The codebook (once, when shared), as a float value.
        let codebookShape = l.dimension == 1 ? [l.groups * l.entries] : [l.groups * l.entries, l.dimension]
        var codebookValue = l.codebook
        if graph.initializers[l.codebook] == nil {
            switch l.precision {
            case .fp32: constant(l.codebook, .float(Tensor(shape: codebookShape, scalars: codebook)), .float)
            case .fp16: constant(l.codebook, .float(Tensor(shape: codebookShape, scalars: codebook)), .float16)
            case .int8:
                let perCodebook = l.entries * l.dimension
                let steps = codebookSteps ?? (0..<l.groups).map { g in
                    let maxAbs = codebook[g * perCodebook..<(g + 1) * perCodebook].map(abs).max() ?? 0
                    return maxAbs > 0 ? maxAbs / 127 : Float(1)
                }
                let codes = codebook.indices.map { i -> Int64 in
                    let code = (codebook[i] / steps[i / perCodebook]).rounded()
                    return code.isFinite ? Int64(code.clamped(-127, 127)) : 0
                }
                constant(l.codebook, .int64(Tensor(shape: codebookShape, scalars: codes)), .int8)
                constant(l.stepName, .float(Tensor(shape: l.dimension == 1 ? [l.groups, 1] : [l.groups, 1, 1], scalars: steps)), .float)
            }
        }
        let prefix = "\(w)/wc"
        if l.precision != .fp32 {
            node("Cast", [l.codebook], "\(prefix)_codebook_float", ["to": .int(1)])
            codebookValue = "\(prefix)_codebook_float"
            if l.precision == .int8 {
                // [groups·K(, d)] → [groups, K(, d)] × step[groups, 1(, 1)] → back.
                let grouped = l.dimension == 1 ? [l.groups, l.entries] : [l.groups, l.entries, l.dimension]
                constant("\(prefix)_grouped_shape", .int64(Tensor(shape: [grouped.count], scalars: grouped.map(Int64.init))), .int64)
                constant("\(prefix)_codebook_shape", .int64(Tensor(shape: [codebookShape.count], scalars: codebookShape.map(Int64.init))), .int64)
                node("Reshape", [codebookValue, "\(prefix)_grouped_shape"], "\(prefix)_codebook_grouped")
                node("Mul", ["\(prefix)_codebook_grouped", l.stepName], "\(prefix)_codebook_scaled")
                node("Reshape", ["\(prefix)_codebook_scaled", "\(prefix)_codebook_shape"], "\(prefix)_codebook_value")
                codebookValue = "\(prefix)_codebook_value"
            }
        }
        // Indices, in the narrowest unsigned type that holds them (K > 65,536: low 16 bits + high 8 bits).
        var index = "\(prefix)_index64"
        storeIndicesAndScales(in: &graph)
        if l.entries <= 65_536 {
            node("Cast", [l.indexName], index, ["to": .int(7)])
        } else {
            constant("\(prefix)_65536", .int64(Tensor(shape: [], scalars: [65_536])), .int64)
            node("Cast", [l.indexName + "_low"], "\(prefix)_low64", ["to": .int(7)])
            node("Cast", [l.indexName + "_high"], "\(prefix)_high64", ["to": .int(7)])
            node("Mul", ["\(prefix)_high64", "\(prefix)_65536"], "\(prefix)_high_shifted")
            node("Add", ["\(prefix)_low64", "\(prefix)_high_shifted"], index)
        }
        if l.groups > 1 {
            let offsets = (0..<l.rows).map { Int64(($0 / l.groupSize) * l.entries) }
            constant(l.offsetName, .int64(Tensor(shape: [l.rows, 1], scalars: offsets)), l.groups * l.entries <= 65_536 ? .uint16 : .int32)
            node("Cast", [l.offsetName], "\(prefix)_offset64", ["to": .int(7)])
            node("Add", [index, "\(prefix)_offset64"], "\(prefix)_entry")
            index = "\(prefix)_entry"
        }
        node("Gather", [codebookValue, index], "\(prefix)_gathered", ["axis": .int(0)])
        var value = "\(prefix)_gathered"
        if vectorScales != nil, let bits = l.vectorScaleBits {
            if bits == 8 {
                node("Cast", [l.vectorScaleName], "\(prefix)_vector_scale_codes", ["to": .int(1)])
                node("Mul", ["\(prefix)_vector_scale_codes", l.vectorScaleName + "_step"], "\(prefix)_vector_scale_value")
            } else {
                node("Cast", [l.vectorScaleName], "\(prefix)_vector_scale_value", ["to": .int(1)])
            }
            node("Mul", [value, "\(prefix)_vector_scale_value"], "\(prefix)_vector_scaled")
            value = "\(prefix)_vector_scaled"
        }
        if l.dimension > 1 {
            constant("\(prefix)_rows_shape", .int64(Tensor(shape: [2], scalars: [Int64(l.rows), Int64(l.columns)])), .int64)
            node("Reshape", [value, "\(prefix)_rows_shape"], "\(prefix)_rows")
            value = "\(prefix)_rows"
        }
        if let scales = rowScales {
            constant(l.rowScaleName, .float(Tensor(shape: [l.rows, 1], scalars: scales)), .float16)
            node("Cast", [l.rowScaleName], "\(prefix)_row_scale_value", ["to": .int(1)])
            node("Mul", [value, "\(prefix)_row_scale_value"], "\(prefix)_row_scaled")
            value = "\(prefix)_row_scaled"
        }
        if l.transposed {
            node("Transpose", [value], "\(prefix)_transposed", ["perm": .ints([1, 0])])
            value = "\(prefix)_transposed"
        }
        constant("\(prefix)_shape", .int64(Tensor(shape: [l.shape.count], scalars: l.shape.map(Int64.init))), .int64)
        node("Reshape", [value, "\(prefix)_shape"], w)
        graph.nodes.insert(contentsOf: nodes, at: 0)
        var layouts = WeightLayout.recorded(in: graph).filter { $0.weight != w }
        layouts.append(l)
        WeightLayout.record(layouts, in: &graph)
        graph.metadata["weightcluster.format"] = "codebook"
    }

    /// Replaces the indices and per-vector scales of a weight already written by `write(into:)` (re-assignment):
    /// same initializers, same storage types, same nodes.
    public func replacingIndicesAndScales(in graph: inout Graph) {
        storeIndicesAndScales(in: &graph)
    }

    private func storeIndicesAndScales(in graph: inout Graph) {
        let l = layout, v = l.vectorsPerRow
        func constant(_ name: String, _ tensor: AnyTensor, _ storage: StorageType) { Self.store(tensor, as: storage, named: name, in: &graph) }
        if l.entries <= 65_536 {
            constant(l.indexName, .int64(Tensor(shape: [l.rows, v], scalars: indices.map(Int64.init))), l.entries <= 256 ? .uint8 : .uint16)
        } else {
            constant(l.indexName + "_low", .int64(Tensor(shape: [l.rows, v], scalars: indices.map { Int64($0 & 0xFFFF) })), .uint16)
            constant(l.indexName + "_high", .int64(Tensor(shape: [l.rows, v], scalars: indices.map { Int64($0 >> 16) })), .uint8)
        }
        guard let scales = vectorScales, let bits = l.vectorScaleBits else { return }
        let shape = l.dimension == 1 ? [l.rows, v] : [l.rows, v, 1]
        if bits == 8 {
            let maxAbs = scales.map(abs).max() ?? 0
            let step: Float = vectorScaleStep ?? (maxAbs > 0 ? maxAbs / 127 : 1)
            constant(l.vectorScaleName, .int64(Tensor(shape: shape, scalars: scales.map {
                let code = ($0 / step).rounded()
                return code.isFinite ? Int64(code.clamped(-127, 127)) : 0
            })), .int8)
            constant(l.vectorScaleName + "_step", .float(Tensor(shape: [], scalars: [step])), .float)
        } else {
            constant(l.vectorScaleName, .float(Tensor(shape: shape, scalars: scales)), .float16)
        }
    }

    /// An initializer and the narrower type it is stored as (float and int64 need no entry).
    private static func store(_ tensor: AnyTensor, as storage: StorageType, named name: String, in graph: inout Graph) {
        graph.initializers[name] = tensor
        graph.storageTypes[name] = storage == .float || storage == .int64 ? nil : storage.rawValue
    }

    /// The weight `layout` describes, read back from a graph written by `write(into:)`.
    public static func read(_ layout: WeightLayout, from graph: Graph) throws -> CompressedWeight {
        let l = layout
        func int64s(_ name: String) throws -> [Int64] {
            guard let t = graph.initializers[name]?.int64Tensor else { throw CompressionError.layout(weight: l.weight, detail: "no integer tensor '\(name)'") }
            return t.scalars
        }
        func floats(_ name: String) throws -> [Float] {
            guard let t = graph.initializers[name] else { throw CompressionError.layout(weight: l.weight, detail: "no tensor '\(name)'") }
            return t.floatValues
        }
        var indices: [Int32]
        if l.entries <= 65_536 {
            indices = try int64s(l.indexName).map { Int32(truncatingIfNeeded: $0) }
        } else {
            indices = zip(try int64s(l.indexName + "_low"), try int64s(l.indexName + "_high")).map { Int32(truncatingIfNeeded: $0 + 65_536 * $1) }
        }
        var codebook = try floats(l.codebook)
        var codebookSteps: [Float]? = nil
        if l.precision == .int8 {
            let steps = try floats(l.stepName), perCodebook = l.entries * l.dimension
            guard steps.count == l.groups else { throw CompressionError.layout(weight: l.weight, detail: "\(steps.count) codebook steps for \(l.groups) codebooks") }
            codebook = codebook.indices.map { codebook[$0] * steps[$0 / perCodebook] }
            codebookSteps = steps
        }
        guard indices.count == l.indexCount, codebook.count == l.groups * l.entries * l.dimension,
              indices.allSatisfy({ $0 >= 0 && Int($0) < l.entries }) else {
            throw CompressionError.layout(weight: l.weight, detail: "indices or codebook do not match the recorded layout")
        }
        var vectorScales: [Float]? = nil, vectorScaleStep: Float? = nil
        if let bits = l.vectorScaleBits {
            let raw = try floats(l.vectorScaleName)
            guard raw.count == l.indexCount else { throw CompressionError.layout(weight: l.weight, detail: "\(raw.count) vector scales for \(l.indexCount) vectors") }
            if bits == 8 {
                guard let step = try floats(l.vectorScaleName + "_step").first else {
                    throw CompressionError.layout(weight: l.weight, detail: "no step for the 8-bit vector scales")
                }
                vectorScales = raw.map { $0 * step }
                vectorScaleStep = step
            } else {
                vectorScales = raw
            }
        }
        let rowScales = l.rowScales ? try floats(l.rowScaleName) : nil
        if let rowScales, rowScales.count != l.rows {
            throw CompressionError.layout(weight: l.weight, detail: "\(rowScales.count) row scales for \(l.rows) rows")
        }
        return CompressedWeight(layout: l, indices: indices, codebook: codebook, rowScales: rowScales, vectorScales: vectorScales,
                                codebookSteps: codebookSteps, vectorScaleStep: vectorScaleStep)
    }

    /// Removes from `graph` what `write(into:)` added for `layout` — its nodes, its initializers and its record —
    /// and the codebook too when no layout still recorded uses it. The weight's name is then read but produced by
    /// nothing: `read`, `remove`, then `write` gives the same graph back.
    public static func remove(_ layout: WeightLayout, from graph: inout Graph) {
        let w = layout.weight, prefix = "\(w)/wc_"
        graph.nodes.removeAll { node in
            guard node.outputs.count == 1, let out = node.outputs.first, node.name == "\(out)/node" else { return false }
            return out == w || out.hasPrefix(prefix)
        }
        for name in graph.initializers.keys where name.hasPrefix(prefix) {
            graph.initializers[name] = nil
            graph.storageTypes[name] = nil
        }
        let layouts = WeightLayout.recorded(in: graph).filter { $0.weight != w }
        WeightLayout.record(layouts, in: &graph)
        if !layouts.contains(where: { $0.codebook == layout.codebook }) {
            for name in [layout.codebook, layout.stepName] {
                graph.initializers[name] = nil
                graph.storageTypes[name] = nil
            }
        }
    }
}

extension Float {
    func clamped(_ lo: Float, _ hi: Float) -> Float { Swift.min(Swift.max(self, lo), hi) }
}
