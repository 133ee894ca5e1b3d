import ModelGraph

/// Everything one compression run does: each pass optional, run in this order over the model.
public struct CompressionConfiguration: Sendable {
    public enum Format: String, Sendable, Codable, CaseIterable {
        /// The same graph with every compressed weight rebuilt densely (a drop-in model).
        case dense
        /// Codebooks, indices and scales in the graph, with standard nodes that rebuild each weight.
        case codebook
    }

    /// Magnitude pruning of fully-connected layers.
    public var pruning: PruningConfiguration?
    /// Column clustering of fully-connected layers (Sakamoto et al.), norms folded into the layer before.
    public var neurons: NeuronClusteringConfiguration?
    /// Network- or layer-wide codebooks of 2D kernels (Matsui et al.).
    public var kernels: KernelClusteringConfiguration?
    /// Scalar or vector codebooks for every other selected weight.
    public var palettization: PalettizationConfiguration?
    public var format: Format
    /// Sensitivity of each weight (name → one value ≥ 0 per element, e.g. `Sensitivity.fisher` of the Training
    /// module): the k-means weights of kernel clustering and palettization, and what bit allocation minimises.
    public var importance: [String: [Float]]
    /// Palettization bits chosen per weight to meet this many bits per palettized weight (needs `importance`).
    public var bitsPerWeight: Double?
    /// The same, to meet a footprint of the whole model in bytes (instead of `bitsPerWeight`).
    public var targetBytes: Int?
    /// What the allocation minimises per weight and candidate (default: the sensitivity-weighted error).
    public var allocationCost: AllocationCost?
    /// The forms the allocation chooses among (default: scalar LUTs of 1–8 bits).
    public var allocationForms: [AllocationCandidate] = AllocationCandidate.scalar
    /// Curves measured earlier on the same model and palettization (e.g. once for a sweep over targets): the
    /// allocation only solves for the target (`allocationCost` and `allocationForms` are then not used).
    public var allocationCurves: AllocationCurves?
    /// GPTQ-style error compensation of palettization: the Gram matrix XᵀX of a layer's inputs on calibration data
    /// run through the given graph (the model with the layers before it palettized), e.g. `Sensitivity.inputGram` of
    /// the Training module.
    public var compensation: (@Sendable (Graph, Node) throws -> [Float]?)?

    public init(pruning: PruningConfiguration? = nil, neurons: NeuronClusteringConfiguration? = nil,
                kernels: KernelClusteringConfiguration? = nil, palettization: PalettizationConfiguration? = nil,
                format: Format = .dense, importance: [String: [Float]] = [:], bitsPerWeight: Double? = nil) {
        self.pruning = pruning
        self.neurons = neurons
        self.kernels = kernels
        self.palettization = palettization
        self.format = format
        self.importance = importance
        self.bitsPerWeight = bitsPerWeight
    }

    public var isEmpty: Bool { pruning == nil && neurons == nil && kernels == nil && palettization == nil }
}

/// Compresses `graph`: prunes, clusters neurons, clusters kernels and palettizes the remaining weights, as
/// configured, and returns the model in the requested format with a report of what every pass did.
///
///     let graph = try ONNXModelFile.load("model.onnx")
///     let result = try compress(graph, configuration: .init(palettization: .init(global: .init(bits: 4))))
///     try ONNXModelFile.save(result.graph, to: "model-4bit.onnx")
public func compress(_ graph: Graph, configuration config: CompressionConfiguration) throws -> CompressionResult {
    guard !config.isEmpty else {
        throw CompressionError.nothingToCompress("nothing to do: configure pruning, neuron clustering, kernel clustering or palettization")
    }
    let codebook = config.format == .codebook
    var g = graph
    var pruning: PruningResult?, neurons: NeuronClusteringResult?, kernels: KernelClusteringResult?, palettes: PalettizationResult?
    if let c = config.pruning {
        pruning = try pruneWeights(in: g, configuration: c)
        g = pruning!.graph
    }
    if let c = config.neurons {
        neurons = try clusterNeurons(in: g, configuration: c, importance: config.importance)
        g = codebook ? neurons!.graph : neurons!.denseGraph
    }
    if let c = config.kernels {
        kernels = try clusterKernels(in: g, configuration: c, importance: config.importance)
        g = codebook ? kernels!.codebookGraph() : kernels!.graph
    }
    var allocation: BitAllocation?
    if (config.bitsPerWeight != nil || config.targetBytes != nil) && config.palettization == nil {
        throw ConfigurationError(level: "allocation", field: config.targetBytes != nil ? "target_size" : "bits_per_weight",
                                 message: "needs palettization to allocate bits to")
    }
    if var c = config.palettization {
        // Weights another pass already compressed keep that form.
        let owned = Set((neurons?.layers.map(\.weightName) ?? []) + (kernels?.layers.map(\.weightName) ?? []))
        let pruned = Set(pruning?.layers.map(\.weightName) ?? [])
        if config.bitsPerWeight != nil || config.targetBytes != nil {
            let (p, n, k) = (pruning, neurons, kernels)
            let modelBytes = config.targetBytes.map { bytes in
                (target: bytes, otherBytes: { (r: PalettizationResult) in
                    ModelFootprint(original: graph, pruning: p, neurons: n, kernels: k, palettization: r).totalBytes - r.storedBytes })
            }
            if let curves = config.allocationCurves {
                allocation = try config.targetBytes.map { try curves.allocate(modelBytes: $0) } ?? curves.allocate(bitsPerWeight: config.bitsPerWeight!)
            } else {
                allocation = try allocateBits(in: g, configuration: c, bitsPerWeight: config.bitsPerWeight ?? 0, modelBytes: modelBytes,
                                              forms: config.allocationForms, importance: config.importance,
                                              cost: config.allocationCost, compensation: config.compensation,
                                              skipping: owned, reserveZero: pruned)
            }
            c = allocation!.configuration
        }
        palettes = try palettizeWeights(in: g, configuration: c, skipping: owned, reserveZero: pruned, importance: config.importance,
                                        compensation: config.compensation)
        g = codebook ? palettes!.graph : palettes!.denseGraph
    }
    let footprint = ModelFootprint(original: graph, pruning: pruning, neurons: neurons, kernels: kernels, palettization: palettes)
    var result = CompressionResult(graph: g, format: config.format, footprint: footprint, pruning: pruning, neurons: neurons,
                                   kernels: kernels, palettization: palettes)
    result.allocation = allocation
    result.clusteringSeconds += allocation?.seconds ?? 0
    return result
}
