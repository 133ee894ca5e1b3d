import Clustering
import Compute
import ModelGraph

/// The compressed weights of a codebook-form graph, read back from the layouts it records (`WeightLayout`), and the
/// re-assignment of every vector to its nearest codebook entry (fine-tuning with `--reassign-every`): kernel
/// codebooks, scalar LUTs and vector codebooks alike.
public struct CodebookStructure: Sendable {
    public var layouts: [WeightLayout]

    public init(_ graph: Graph) { layouts = WeightLayout.recorded(in: graph) }

    public var isEmpty: Bool { layouts.isEmpty }

    /// The codebook index of every vector of `layout` (row-major, within its group's codebook).
    public func indices(of layout: WeightLayout, in graph: Graph) throws -> [Int32] {
        try CompressedWeight.read(layout, from: graph).indices
    }

    /// `graph` with every vector re-assigned to the entry of its group's codebook nearest its value in `latent` (after
    /// its row's scale is divided out). With per-vector scales (kernels in scaled mode) the nearest entry is found
    /// by direction and the scale becomes the least-squares factor on it, re-quantised as stored. Codebooks are left
    /// as they are. Returns how many vectors changed entry.
    public func reassigned(_ graph: Graph, to latent: [String: Tensor<Float>]) throws -> (graph: Graph, moved: Int) {
        var g = graph
        var moved = 0
        for layout in layouts {
            let current = try CompressedWeight.read(layout, from: graph)
            guard let x = latent[layout.weight], x.shape == layout.shape else {
                throw CompressionError.invalidSetting("no latent weights of \(layout.shape) for \(layout.weight)")
            }
            var next = current
            let (d, k, v, columns) = (layout.dimension, layout.entries, layout.vectorsPerRow, layout.columns)
            // The latent weight as canonical rows, row scales divided out.
            var rows = x.scalars
            if layout.transposed {
                for c in 0..<columns { for r in 0..<layout.rows { rows[r * columns + c] = x.scalars[c * layout.rows + r] } }
            }
            if let s = current.rowScales {
                for r in 0..<layout.rows where s[r] != 0 { for j in 0..<columns { rows[r * columns + j] /= s[r] } }
            }
            let scaled = current.vectorScales != nil
            for start in stride(from: 0, to: layout.rows, by: layout.groupSize) {
                let end = min(layout.rows, start + layout.groupSize), group = start / layout.groupSize
                let entries = Array(current.codebook[group * k * d..<(group + 1) * k * d])
                let vectors = Array(rows[start * columns..<end * columns])
                let assigned = KMeans.nearest(vectors, rows: (end - start) * v, dimension: d, centroids: entries, clusters: k,
                                              metric: scaled ? .spherical : .euclidean,
                                              current: Array(current.indices[start * v..<end * v]))
                for (i, entry) in assigned.enumerated() {
                    let slot = start * v + i
                    if entry != current.indices[slot] { moved += 1 }
                    next.indices[slot] = entry
                    guard scaled else { continue }
                    // Least-squares factor of the vector on its (possibly no longer unit) entry.
                    var dot: Float = 0, norm: Float = 0
                    for e in 0..<d {
                        let c = entries[Int(entry) * d + e]
                        dot += vectors[i * d + e] * c
                        norm += c * c
                    }
                    next.vectorScales![slot] = norm > 0 ? dot / norm : 0
                }
            }
            next.replacingIndicesAndScales(in: &g)
        }
        return (g, moved)
    }
}
