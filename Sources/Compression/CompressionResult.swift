import ModelGraph

/// What `compress(_:configuration:)` produced: the model to write and the report `compress --json` prints.
/// The report's keys are flat and snake_case; the evaluation fields are filled in by whoever measures the model.
public struct CompressionResult: Sendable, Encodable {
    /// The compressed model in the requested format (not part of the report).
    public var graph: Graph
    public var pruning: PruningResult?
    public var neurons: NeuronClusteringResult?
    public var kernels: KernelClusteringResult?
    public var palettization: PalettizationResult?
    /// The per-weight bits chosen for a size target, when one was given.
    public var allocation: BitAllocation?

    public var format: CompressionConfiguration.Format
    public var footprintBytes: Int
    public var denseBytes: Int
    public var compressionRatio: Double
    public var clusteringSeconds: Double

    // Filled in after writing and measuring.
    public var model: String?
    public var output: String?
    public var fileBytes: Int?
    public var top1: Double?
    public var top5: Double?
    public var images: Int?
    public var seed: UInt64?
    public var calibrationImages: Int?

    public init(graph: Graph, format: CompressionConfiguration.Format, footprint: ModelFootprint, pruning: PruningResult?,
                neurons: NeuronClusteringResult?, kernels: KernelClusteringResult?, palettization: PalettizationResult?) {
        self.graph = graph
        self.format = format
        self.pruning = pruning
        self.neurons = neurons
        self.kernels = kernels
        self.palettization = palettization
        footprintBytes = footprint.totalBytes
        denseBytes = footprint.denseBytes
        compressionRatio = footprint.compressionRatio
        clusteringSeconds = (neurons?.clusteringSeconds ?? 0) + (kernels?.clusteringSeconds ?? 0) + (palettization?.seconds ?? 0)
    }

    /// The column reduction over all neuron-clustered layers, 1 − Σk / Σin.
    public var columnReduction: Double? {
        guard let neurons else { return nil }
        let columns = neurons.layers.reduce(0) { $0 + $1.inputs }, shared = neurons.layers.reduce(0) { $0 + $1.clusters }
        return 1 - Double(shared) / Double(max(1, columns))
    }

    /// Bits per palettized weight over all palettized weights (codebooks, indices and scales included).
    public var bitsPerWeight: Double? {
        guard let p = palettization else { return nil }
        return Double(p.storedBytes * 8) / Double(max(1, p.denseBytes / 4))
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        func put<T: Encodable>(_ key: String, _ value: T?) throws { if let value { try c.encode(value, forKey: Key(key)) } }
        try put("format", format.rawValue)
        try put("footprint_bytes", footprintBytes)
        try put("dense_bytes", denseBytes)
        try put("compression_ratio", compressionRatio)
        try put("clustering_seconds", clusteringSeconds)
        try put("model", model)
        try put("output", output)
        try put("file_bytes", fileBytes)
        try put("top1", top1)
        try put("top5", top5)
        try put("images", images)
        try put("seed", seed)
        if let k = kernels {
            let f = k.footprint
            try put("mode", k.configuration.mode.rawValue)
            try put("kernel_mode", k.configuration.mode.rawValue)
            try put("scope", k.configuration.scope.rawValue)
            try put("kernels", f.kernels)
            try put("clusters", f.clusters)
            try put("kernel_reduction", f.kernelReduction)
            try put("kernel_footprint_bytes", f.totalBytes)
            try put("codebook_bytes", f.codebookBytes)
            try put("index_bytes", f.indexBytes)
            try put("scale_bytes", f.scaleBytes)
            try put("rest_bytes", f.restBytes)
            try put("inertia", k.inertia)
            try put("calibration_images", calibrationImages ?? 0)
        }
        if let p = pruning {
            try put("sparsity", p.configuration.sparsity)
            try put("prune_scope", p.configuration.scope.rawValue)
            try put("pruned_layers", p.layers.map { PrunedEntry(layer: $0.nodeName, weights: $0.weights, zeros: $0.zeros, storedBytes: $0.storedBytes) })
        }
        if let n = neurons {
            // With both passes, "mode" names the neuron mode, as before; "kernel_mode" and "neuron_mode" say each.
            try put("mode", n.configuration.mode.rawValue)
            try put("neuron_mode", n.configuration.mode.rawValue)
            if pruning == nil { try put("sparsity", 0.0) }
            try put("column_reduction", columnReduction)
            try put("folded_layers", n.foldedLayers)
            try put("scaled_layers", n.scaledLayers)
            try put("neuron_layers", n.layers.map(NeuronEntry.init))
        }
        if let p = palettization {
            try put("bits_per_weight", bitsPerWeight)
            try put("palettized_weights", p.denseBytes / 4)
            try put("shared_codebook_bytes", p.sharedCodebookBytes)
            try put("palettization_mse", p.meanSquaredError)
            try put("layers", p.layers)
        }
        if let a = allocation {
            try put("target_bits_per_weight", a.targetBitsPerWeight)
            try put("allocation", a)
        }
    }

    struct PrunedEntry: Encodable {
        var layer: String, weights: Int, zeros: Int, storedBytes: Int
        enum CodingKeys: String, CodingKey { case layer, weights, zeros, storedBytes = "stored_bytes" }
    }

    struct NeuronEntry: Encodable {
        var layer: NeuronLayer
        init(_ layer: NeuronLayer) { self.layer = layer }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            let l = layer
            try c.encode(l.nodeName, forKey: Key("layer"))
            try c.encode(l.inputs, forKey: Key("inputs"))
            try c.encode(l.outputs, forKey: Key("outputs"))
            try c.encode(l.clusters, forKey: Key("clusters"))
            try c.encode(l.columnReduction, forKey: Key("column_reduction"))
            try c.encode(l.liveColumns, forKey: Key("live_columns"))
            try c.encode(l.denseBytes, forKey: Key("dense_bytes"))
            try c.encode(l.storedBytes, forKey: Key("stored_bytes"))
            try c.encode(l.inertia, forKey: Key("reconstruction_error"))
            switch l.factors {
            case .none: try c.encode("none", forKey: Key("factors"))
            case .folded(let into):
                try c.encode("folded", forKey: Key("factors"))
                try c.encode(into, forKey: Key("folded_into"))
            case .explicit(let reason):
                try c.encode("explicit", forKey: Key("factors"))
                try c.encode(reason, forKey: Key("reason"))
            }
        }
    }
}
