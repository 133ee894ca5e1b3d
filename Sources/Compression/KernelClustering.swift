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
    /// Each clustered Conv weight in the layout every form shares (kernels are vectors of kh·kw weights, the
    /// codebook shared by its layers in network scope, per-kernel scales in scaled mode).
    public var compressedWeights: [CompressedWeight]
}

/// Replaces the 2D kernels W[o,i,:,:] of the model's convolutions by K shared representatives: a preset of the
/// palettization engine (`palettizeWeights`) with one vector of kh·kw weights per kernel.
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

    // The seed's form as a preset of the palettization engine: each kernel a vector of kh·kw weights, one codebook of
    // K kernels per kernel shape (network scope) or per layer, plain or unit shapes with a scale per kernel.
    var plan = PalettizationConfiguration(global: WeightFormOverride(form: .dense), seed: config.seed)
    plan.vectorMaxIterations = config.maxIterations
    plan.initialization = config.initialization
    plan.origin = .kernels
    for (g, group) in groups.enumerated() {
        for member in group.members {
            let shape = layers[member].tensor.shape
            plan.layers.append(.init(name: layers[member].weight, override: WeightFormOverride(
                form: .palettize, granularity: config.scope == .network ? .network : .perTensor, clusterDim: shape[2] * shape[3],
                lut: config.codebookPrecision, clusters: clusterCounts[g], vectorScaleBits: config.mode == .scaled ? config.scaleBits : nil)))
        }
    }
    let palettes = try palettizeWeights(in: graph, configuration: plan, importance: importance)
    let byName = Dictionary(uniqueKeysWithValues: palettes.weights.map { ($0.layout.weight, $0) })

    var clustered: [ClusteredLayer] = []
    var codebooks: [Codebook] = []
    var indexBytes = 0, scaleBytes = 0, codebookBytes = 0, clusteredDense = 0
    for (g, group) in groups.enumerated() {
        let first = layers[group.members[0]].tensor.shape
        let d = first[2] * first[3]
        let stored = byName[layers[group.members[0]].weight]!
        codebooks.append(Codebook(kernelShape: [first[2], first[3]], entries: stored.codebook))
        codebookBytes += stored.codebook.count * config.codebookPrecision.bits / 8 + (config.codebookPrecision == .int8 ? 4 : 0)
        indexBytes += (kernelCounts[g] * Footprint.indexBits(clusters: stored.layout.entries) + 7) / 8
        for member in group.members {
            let (node, name, tensor) = layers[member]
            let w = byName[name]!
            let count = tensor.shape[0] * tensor.shape[1]
            if w.vectorScales != nil { scaleBytes += (count * config.scaleBits + 7) / 8 + (config.scaleBits == 8 ? 4 : 0) }
            clustered.append(ClusteredLayer(nodeName: node.displayName, weightName: name, shape: tensor.shape, codebook: g,
                                            indices: w.indices, scales: w.vectorScales))
            clusteredDense += count * d * 4
        }
    }
    let denseBytes = graph.parameterCount * 4
    let footprint = Footprint(denseBytes: denseBytes, clusteredDenseBytes: clusteredDense, codebookBytes: codebookBytes,
                              indexBytes: indexBytes, scaleBytes: scaleBytes, restBytes: denseBytes - clusteredDense,
                              kernels: totalKernels, clusters: clusterCounts.reduce(0, +))
    var result = palettes.denseGraph
    result.metadata["weightcluster.kernel_clustering"] =
        "mode=\(config.mode.rawValue) scope=\(config.scope.rawValue) kernels=\(totalKernels) clusters=\(footprint.clusters) seed=\(config.seed)"
    return KernelClusteringResult(graph: result, layers: clustered, codebooks: codebooks, footprint: footprint,
                                  inertia: palettes.inertia, clusteringSeconds: palettes.seconds, configuration: config,
                                  compressedWeights: palettes.weights)
}

/// Scales as they will be stored: IEEE half precision (16 bits), or symmetric 8-bit codes with one step.
func quantiseScales(_ raw: [Float], bits: Int) -> (stored: [Float], step: Float?) {
    if bits == 16 { return (raw.map { Float(halfBits: $0.halfBits) }, nil) }
    let maxAbs = raw.map(abs).max() ?? 0
    let step = maxAbs > 0 ? maxAbs / 127 : 1
    return (raw.map { (($0 / step).rounded()).clamped(-127, 127) * step }, step)
}
