import ModelGraph

/// Exact storage of a compressed model, in bytes, as the paper counts kernels.
public struct Footprint: Sendable, Codable, Equatable {
    /// All float weights of the original model at 32 bits.
    public var denseBytes: Int
    /// The clustered kernels as they were, at 32 bits.
    public var clusteredDenseBytes: Int
    /// Codebook entries at their stored precision (32 bits unless asked otherwise).
    public var codebookBytes: Int
    /// ceil(log2 K) bits per kernel, bit-packed, per codebook.
    public var indexBytes: Int
    /// Per-kernel scales (scaled mode).
    public var scaleBytes: Int
    /// Everything left unclustered (biases, FC layers, excluded convs) at 32 bits.
    public var restBytes: Int
    public var kernels: Int
    public var clusters: Int

    public var totalBytes: Int { codebookBytes + indexBytes + scaleBytes + restBytes }
    public var compressionRatio: Double { Double(denseBytes) / Double(max(1, totalBytes)) }
    /// 1 − K/N, as the paper reports it.
    public var kernelReduction: Double { 1 - Double(clusters) / Double(max(1, kernels)) }

    public static func indexBits(clusters k: Int) -> Int {
        k <= 1 ? 0 : Int.bitWidth - (k - 1).leadingZeroBitCount
    }
}

/// Storage of a model after any combination of the passes, in bytes: every float weight at 32 bits, except that
/// pruned or neuron-clustered matrices count what they store (shared columns, indices, scales; sparse rows when
/// smaller), clustered kernels count codebook, indices and scales, and palettized weights their codebooks at their
/// stored precision, bit-packed indices (ceil(log2 K) bits each) and scales.
public struct ModelFootprint: Sendable, Equatable {
    public var denseBytes: Int
    public var totalBytes: Int
    public var compressionRatio: Double { Double(denseBytes) / Double(max(1, totalBytes)) }

    public init(original: Graph, pruning: PruningResult? = nil, neurons: NeuronClusteringResult? = nil,
                kernels: KernelClusteringResult? = nil, palettization: PalettizationResult? = nil) {
        denseBytes = original.parameterCount * 4
        var total = denseBytes
        // Neuron clustering and palettization replace the pruned matrices they cover; the rest keep their count.
        let clustered = Set((neurons?.layers.map(\.weightName) ?? []) + (palettization?.layers.map(\.weight) ?? []))
        for layer in pruning?.layers ?? [] where !clustered.contains(layer.weightName) {
            total += layer.storedBytes - layer.weights * 4
        }
        for layer in neurons?.layers ?? [] { total += layer.storedBytes - layer.denseBytes }
        if let f = kernels?.footprint { total += f.codebookBytes + f.indexBytes + f.scaleBytes - f.clusteredDenseBytes }
        if let p = palettization { total += p.storedBytes - p.denseBytes }
        totalBytes = total
    }
}
