import Clustering
import Compute
import ModelGraph

/// The kernel-clustering structure of a codebook-form graph (what `codebookGraph()` writes), read back from the
/// graph's node and initializer names, and the re-assignment of its kernels to their nearest codebook entries
/// (fine-tuning with `--reassign-every`).
public struct CodebookStructure: Sendable {
    public struct Layer: Sendable {
        /// The rebuilt Conv weight (the Reshape output feeding the Conv).
        public var weight: String
        /// The codebook initializer, [K, kh·kw].
        public var codebook: String
        public var shape: [Int]
    }

    public var layers: [Layer]

    public init(_ graph: Graph) {
        layers = graph.nodes.compactMap { node -> Layer? in
            guard node.opType == "Gather", node.inputs.count == 2, node.inputs[0].hasPrefix("wc_codebook_"),
                  let out = node.outputs.first, out.hasSuffix("/wc_kernels") else { return nil }
            let weight = String(out.dropLast("/wc_kernels".count))
            guard let shape = graph.initializers[weight + "/wc_shape"]?.int64Tensor?.scalars.map(Int.init), shape.count == 4,
                  graph.initializers[weight + "/wc_index"] != nil || graph.initializers[weight + "/wc_index_low"] != nil else { return nil }
            return Layer(weight: weight, codebook: node.inputs[0], shape: shape)
        }
    }

    /// The codebook index of every kernel of `layer`.
    public func indices(of layer: Layer, in graph: Graph) -> [Int32] {
        if let single = graph.initializers[layer.weight + "/wc_index"]?.int64Tensor {
            return single.scalars.map { Int32($0) }
        }
        let low = graph.initializers[layer.weight + "/wc_index_low"]?.int64Tensor?.scalars ?? []
        let high = graph.initializers[layer.weight + "/wc_index_high"]?.int64Tensor?.scalars ?? []
        return zip(low, high).map { Int32($0 + 65_536 * $1) }
    }

    /// `graph` with every kernel re-assigned to the codebook entry nearest its value in `latent` (by value in plain
    /// mode; by direction in scaled mode, where the kernel's scale becomes its least-squares factor on the new entry,
    /// re-quantised for 8-bit codes). Codebooks are left as they are. Returns how many kernels changed entry.
    public func reassigned(_ graph: Graph, to latent: [String: Tensor<Float>]) throws -> (graph: Graph, moved: Int) {
        var g = graph
        var moved = 0
        for codebook in Set(layers.map(\.codebook)).sorted() {
            guard let entries = graph.initializers[codebook]?.floatTensor, entries.rank == 2 else {
                throw CompressionError.invalidSetting("codebook \(codebook) is missing or not a [K, d] float tensor")
            }
            let (k, d) = (entries.shape[0], entries.shape[1])
            // All kernels of the codebook in one search (one tree over its entries), as the clustering did.
            let members = layers.filter { $0.codebook == codebook }
            var rows: [Float] = [], current: [Int32] = []
            for layer in members {
                guard let x = latent[layer.weight], x.count == layer.shape.reduce(1, *), x.count % d == 0 else {
                    throw CompressionError.invalidSetting("no latent weights of \(layer.shape) for \(layer.weight)")
                }
                rows.append(contentsOf: x.scalars)
                current.append(contentsOf: indices(of: layer, in: graph))
            }
            let scaled = graph.initializers[members[0].weight + "/wc_scale"] != nil
            let all = KMeans.nearest(rows, rows: current.count, dimension: d, centroids: entries.scalars, clusters: k,
                                     metric: scaled ? .spherical : .euclidean, current: current)
            moved += zip(current, all).filter { $0 != $1 }.count
            var offset = 0
            for layer in members {
                let n = layer.shape[0] * layer.shape[1]
                let next = all[offset..<offset + n], x = rows[offset * d..<(offset + n) * d]
                offset += n
                if k <= 65_536 {
                    g.initializers[layer.weight + "/wc_index"] = .int64(Tensor(shape: [n], scalars: next.map(Int64.init)))
                } else {
                    g.initializers[layer.weight + "/wc_index_low"] = .int64(Tensor(shape: [n], scalars: next.map { Int64($0 & 0xFFFF) }))
                    g.initializers[layer.weight + "/wc_index_high"] = .int64(Tensor(shape: [n], scalars: next.map { Int64($0 >> 16) }))
                }
                guard scaled else { continue }
                // Least-squares factor of each kernel on its (possibly no longer unit) entry.
                let scaleName = layer.weight + "/wc_scale"
                let factors = zip(next, stride(from: x.startIndex, to: x.endIndex, by: d)).map { entry, start -> Float in
                    let c = Int(entry) * d
                    var dot: Float = 0, norm: Float = 0
                    for j in 0..<d { dot += x[start + j] * entries.scalars[c + j]; norm += entries.scalars[c + j] * entries.scalars[c + j] }
                    return norm > 0 ? dot / norm : 0
                }
                if case .int64 = graph.initializers[scaleName], let step = graph.initializers[layer.weight + "/wc_scale_step"]?.floatTensor?.scalars.first, step > 0 {
                    g.initializers[scaleName] = .int64(Tensor(shape: [n, 1], scalars: factors.map { Int64(($0 / step).rounded().clamped(-127, 127)) }))
                } else {
                    g.initializers[scaleName] = .float(Tensor(shape: [n, 1], scalars: factors))
                }
            }
        }
        return (g, moved)
    }
}
