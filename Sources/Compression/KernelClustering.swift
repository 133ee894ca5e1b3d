import Clustering
import Compute
import Dispatch
import ModelGraph

/// One clustered Conv weight: which codebook its kernels come from, and how.
public struct ClusteredLayer: Sendable {
    public var nodeName: String
    public var weightName: String
    /// [OC, IC, KH, KW].
    public var shape: [Int]
    public var codebook: Int
    /// Codebook entry of each kernel W[o, i], in o-major order.
    public var indices: [Int32]
    /// Scaled mode: the stored (already quantised) scale of each kernel.
    public var scales: [Float]?
    /// 8-bit scales: the step of the integer codes (scale = code × step).
    public var scaleStep: Float?
}

/// K shared kernels of one shape.
public struct Codebook: Sendable {
    public var kernelShape: [Int]
    /// K × (KH·KW), row-major.
    public var entries: [Float]
    public var count: Int { entries.count / max(1, kernelShape.reduce(1, *)) }
}

public struct KernelClusteringResult: Sendable {
    /// The model with every clustered kernel replaced by its reconstruction (a drop-in dense model).
    public var graph: Graph
    public var layers: [ClusteredLayer]
    public var codebooks: [Codebook]
    public var footprint: Footprint
    /// Clustering objective summed over codebooks (spherical mode: on unit shapes, weighted by squared norms).
    public var inertia: Double
    public var clusteringSeconds: Double
    public var configuration: KernelClusteringConfiguration
}

/// Replaces the 2D kernels W[o,i,:,:] of the model's convolutions by K shared representatives.
///
/// `importance[weightName]` (optional: one value ≥ 0 per weight, in the tensor's order, e.g. the diagonal Fisher
/// information from calibration images) weights kernel W[o,i] in the k-means objective by the sum over its
/// elements (plus 10⁻³ of the mean, so that none is ignored), so kernels whose errors cost the loss most are
/// reproduced most faithfully.
public func clusterKernels(in graph: Graph, configuration config: KernelClusteringConfiguration,
                           importance: [String: [Float]] = [:]) throws -> KernelClusteringResult {
    try config.validate()
    // The Conv layers to cluster, each weight once.
    var layers: [(node: Node, weight: String, tensor: Tensor<Float>)] = []
    var seen = Set<String>()
    var excludedAny = false
    for node in graph.nodes where node.opType == "Conv" && node.inputs.count > 1 {
        let name = node.inputs[1]
        guard let weight = graph.initializers[name]?.floatTensor, weight.rank == 4, !seen.contains(name) else { continue }
        if config.exclude.contains(where: { globMatches($0, node.name) || globMatches($0, name) }) { excludedAny = true; continue }
        guard weight.scalars.allSatisfy(\.isFinite) else { throw CompressionError.nonFinite(tensor: name) }
        seen.insert(name)
        layers.append((node, name, weight))
    }
    guard !layers.isEmpty else {
        throw CompressionError.noConvolutions(excludedAny ? " (every Conv layer matches --exclude)" : "")
    }

    // Codebook groups: by kernel shape (network scope) or by layer.
    var groups: [(key: String, members: [Int])] = []
    for (index, layer) in layers.enumerated() {
        let key = config.scope == .network ? "\(layer.tensor.shape[2])x\(layer.tensor.shape[3])" : layer.weight
        if let g = groups.firstIndex(where: { $0.key == key }) { groups[g].members.append(index) } else { groups.append((key, [index])) }
    }
    let kernelCounts = groups.map { $0.members.reduce(0) { $0 + layers[$1].tensor.shape[0] * layers[$1].tensor.shape[1] } }
    let totalKernels = kernelCounts.reduce(0, +)
    let clusterCounts: [Int]
    switch config.size {
    case .reduction(let r):
        clusterCounts = kernelCounts.map { max(1, min($0, Int((Double($0) * (1 - r)).rounded()))) }
    case .clusters(let k):
        guard k <= totalKernels else { throw CompressionError.tooManyClusters(k: k, kernels: totalKernels) }
        // Largest remainders, so the counts add up to K exactly, at least one per codebook.
        let exact = kernelCounts.map { Double(k) * Double($0) / Double(totalKernels) }
        var counts = exact.map { max(1, Int($0)) }
        let order = exact.indices.sorted { exact[$0] - exact[$0].rounded(.down) > exact[$1] - exact[$1].rounded(.down) }
        var i = 0
        while counts.reduce(0, +) < k { counts[order[i % order.count]] += 1; i += 1 }
        clusterCounts = zip(counts, kernelCounts).map { min($0, $1) }
    }

    let start = DispatchTime.now().uptimeNanoseconds
    var result = graph
    var clustered: [ClusteredLayer] = []
    var codebooks: [Codebook] = []
    var inertia = 0.0
    var indexBytes = 0, scaleBytes = 0, codebookBytes = 0, clusteredDense = 0
    for (g, group) in groups.enumerated() {
        let first = layers[group.members[0]].tensor.shape
        let d = first[2] * first[3]
        let n = kernelCounts[g]
        var rows = [Float](); rows.reserveCapacity(n * d)
        var weights = [Float](); weights.reserveCapacity(n)
        for member in group.members {
            let (_, name, tensor) = layers[member]
            rows.append(contentsOf: tensor.scalars)
            if let f = importance[name] {
                guard f.count == tensor.count, f.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                    throw CompressionError.invalidImportance(tensor: name, detail: "\(f.count) values for \(tensor.count) weights, each finite and ≥ 0")
                }
                for kernel in 0..<(tensor.count / d) { weights.append(f[kernel * d..<(kernel + 1) * d].reduce(0, +)) }
            } else {
                weights.append(contentsOf: [Float](repeating: 1, count: tensor.count / d))
            }
        }
        if !importance.isEmpty {
            let floor = weights.reduce(0, +) / Float(max(1, weights.count)) * 1e-3
            weights = weights.map { $0 + (floor > 0 ? floor : 1) }
        }
        if config.mode == .scaled {
            for i in 0..<n {
                var s: Float = 0
                for j in 0..<d { s += rows[i * d + j] * rows[i * d + j] }
                weights[i] *= s  // the reconstruction error of a unit shape scales with the squared norm
            }
            if !weights.contains(where: { $0 > 0 }) { weights = [Float](repeating: 1, count: n) }
        }
        let k = clusterCounts[g]
        let kmeans = try KMeans.fit(rows, rows: n, dimension: d, weights: weights,
                                    configuration: KMeansConfiguration(clusters: k, metric: config.mode == .scaled ? .spherical : .euclidean,
                                                                       initialization: config.initialization,
                                                                       maxIterations: config.maxIterations, seed: config.seed &+ UInt64(g)))
        inertia += kmeans.inertia
        let centroids = config.codebookPrecision.quantised(kmeans.centroids, codebookSize: kmeans.centroids.count).values
        codebooks.append(Codebook(kernelShape: [first[2], first[3]], entries: centroids))
        codebookBytes += centroids.count * config.codebookPrecision.bits / 8 + (config.codebookPrecision == .int8 ? 4 : 0)
        indexBytes += (n * Footprint.indexBits(clusters: k) + 7) / 8

        var offset = 0
        for member in group.members {
            let (node, name, tensor) = layers[member]
            let count = tensor.shape[0] * tensor.shape[1]
            let indices = Array(kmeans.assignments[offset..<offset + count])
            var reconstructed = [Float](repeating: 0, count: count * d)
            var scales: [Float]? = nil
            var step: Float? = nil
            if config.mode == .scaled {
                // Least-squares scale of each kernel on its shape, then quantised.
                var raw = [Float](repeating: 0, count: count)
                for i in 0..<count {
                    let c = Int(indices[i]) * d
                    var dot: Float = 0
                    for j in 0..<d { dot += tensor.scalars[i * d + j] * centroids[c + j] }
                    raw[i] = dot
                }
                let (stored, quantStep) = quantiseScales(raw, bits: config.scaleBits)
                scales = stored
                step = quantStep
                scaleBytes += (count * config.scaleBits + 7) / 8 + (config.scaleBits == 8 ? 4 : 0)
                for i in 0..<count {
                    let c = Int(indices[i]) * d
                    for j in 0..<d { reconstructed[i * d + j] = stored[i] * centroids[c + j] }
                }
            } else {
                for i in 0..<count {
                    let c = Int(indices[i]) * d
                    for j in 0..<d { reconstructed[i * d + j] = centroids[c + j] }
                }
            }
            result.initializers[name] = .float(Tensor(shape: tensor.shape, scalars: reconstructed))
            clustered.append(ClusteredLayer(nodeName: node.displayName, weightName: name, shape: tensor.shape, codebook: g,
                                            indices: indices, scales: scales, scaleStep: step))
            clusteredDense += count * d * 4
            offset += count
        }
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let denseBytes = graph.parameterCount * 4
    let footprint = Footprint(denseBytes: denseBytes, clusteredDenseBytes: clusteredDense, codebookBytes: codebookBytes,
                              indexBytes: indexBytes, scaleBytes: scaleBytes, restBytes: denseBytes - clusteredDense,
                              kernels: totalKernels, clusters: clusterCounts.reduce(0, +))
    result.metadata["weightcluster.kernel_clustering"] =
        "mode=\(config.mode.rawValue) scope=\(config.scope.rawValue) kernels=\(totalKernels) clusters=\(footprint.clusters) seed=\(config.seed)"
    return KernelClusteringResult(graph: result, layers: clustered, codebooks: codebooks, footprint: footprint,
                                  inertia: inertia, clusteringSeconds: seconds, configuration: config)
}

/// Scales as they will be stored: IEEE half precision (16 bits), or symmetric 8-bit codes with one step.
func quantiseScales(_ raw: [Float], bits: Int) -> (stored: [Float], step: Float?) {
    if bits == 16 { return (raw.map { Float(halfBits: $0.halfBits) }, nil) }
    let maxAbs = raw.map(abs).max() ?? 0
    let step = maxAbs > 0 ? maxAbs / 127 : 1
    return (raw.map { (($0 / step).rounded()).clamped(-127, 127) * step }, step)
}
