import Clustering
import ModelGraph

/// The resolved palettization of one weight tensor: K = 2^bits codebook entries of `clusterDimension` consecutive
/// weights (along the input axis), one codebook per tensor, per output channel, per group of output channels, or
/// shared by the whole network.
public struct PalettizationSettings: Sendable, Codable, Equatable, Hashable {
    public enum Granularity: String, Sendable, Codable, CaseIterable {
        case perTensor = "per-tensor"
        case perChannel = "per-channel"
        case perGroupedChannel = "per-grouped-channel"
        /// One codebook for every weight of the network with the same settings (the kernel-clustering seed's scope).
        case network
    }

    public var bits: Int
    public var granularity: Granularity
    /// Output channels per codebook with `perGroupedChannel` (the last group may be smaller).
    public var groupSize: Int
    public var clusterDimension: Int
    public var precision: EntryPrecision
    /// Each output channel normalised by its largest magnitude before clustering, the factor kept in float16.
    public var perChannelScale: Bool
    /// Codebook entries when not a power of two (the kernel seed's K = N·(1 − reduction)); nil: 2^bits.
    public var clusters: Int?
    /// Unit shapes with scales (vectors only): each vector = its own scale × a unit-length codebook entry, the entries
    /// found by spherical k-means weighted by the vectors' squared norms, the scale (the vector's projection on its
    /// entry) stored at 16 bits (float16) or 8 (int8 codes, one step per weight). nil: the entry is the vector.
    public var vectorScaleBits: Int?

    enum CodingKeys: String, CodingKey {
        case bits, granularity, clusters, precision
        case groupSize = "group_size", clusterDimension = "cluster_dim", perChannelScale = "per_channel_scale",
             vectorScaleBits = "vector_scale_bits"
    }

    public init(bits: Int = 4, granularity: Granularity = .perTensor, groupSize: Int = 16, clusterDimension: Int = 1,
                precision: EntryPrecision = .fp16, perChannelScale: Bool = false, clusters: Int? = nil, vectorScaleBits: Int? = nil) {
        self.bits = bits
        self.granularity = granularity
        self.groupSize = groupSize
        self.clusterDimension = clusterDimension
        self.precision = precision
        self.perChannelScale = perChannelScale
        self.clusters = clusters
        self.vectorScaleBits = vectorScaleBits
    }

    /// Largest index width: 8 bits for scalar LUTs (as coremltools), 20 for vector codebooks (a million entries).
    public static func maximumBits(clusterDimension d: Int) -> Int { d == 1 ? 8 : 20 }

    /// Codebook entries K: `clusters`, else 2^bits.
    public var entries: Int { clusters ?? 1 << bits }

    /// Bits of one index: `bits`, or enough for `clusters`.
    public var indexBits: Int { clusters.map { Footprint.indexBits(clusters: $0) } ?? bits }

    func validate(at level: String) throws {
        guard clusterDimension >= 1 && clusterDimension <= 64 else {
            throw ConfigurationError(level: level, field: "cluster_dim", message: "must be between 1 and 64, got \(clusterDimension)")
        }
        let maxBits = Self.maximumBits(clusterDimension: clusterDimension)
        guard bits >= 1 && bits <= maxBits else {
            throw ConfigurationError(level: level, field: "bits",
                                     message: "must be between 1 and \(maxBits)\(clusterDimension == 1 ? " for scalar LUTs" : " for vectors of \(clusterDimension)"), got \(bits)")
        }
        guard groupSize >= 1 else {
            throw ConfigurationError(level: level, field: "group_size", message: "must be at least 1 output channel, got \(groupSize)")
        }
        if let clusters, clusters < 1 || clusters > 1 << 24 {
            throw ConfigurationError(level: level, field: "clusters", message: "must be between 1 and \(1 << 24), got \(clusters)")
        }
        if let bits = vectorScaleBits, bits != 8 && bits != 16 {
            throw ConfigurationError(level: level, field: "vector_scale_bits", message: "must be 8 or 16, got \(bits)")
        }
    }
}

/// A configuration value that is not accepted: where it was given (`global`, `op_types.Gemm`, `layers[2] 'fc*'`),
/// the field, and what would be accepted. The CLI maps fields of the global level to its flags.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public var level: String
    public var field: String
    public var message: String

    public var description: String { "\(level): \(field) \(message)" }
}

/// One level of the layered palettization configuration: each field left nil inherits from the level above.
public struct WeightFormOverride: Sendable, Codable, Equatable {
    public enum Form: String, Sendable, Codable {
        case palettize
        /// Leave the weight as it is.
        case dense
    }

    public var form: Form?
    public var bits: Int?
    public var granularity: PalettizationSettings.Granularity?
    public var groupSize: Int?
    public var clusterDim: Int?
    public var lut: EntryPrecision?
    public var perChannelScale: Bool?
    public var clusters: Int?
    public var vectorScaleBits: Int?

    enum CodingKeys: String, CodingKey {
        case form, bits, granularity, lut, clusters
        case groupSize = "group_size", clusterDim = "cluster_dim", perChannelScale = "per_channel_scale", vectorScaleBits = "vector_scale_bits"
    }

    public init(form: Form? = nil, bits: Int? = nil, granularity: PalettizationSettings.Granularity? = nil, groupSize: Int? = nil,
                clusterDim: Int? = nil, lut: EntryPrecision? = nil, perChannelScale: Bool? = nil, clusters: Int? = nil,
                vectorScaleBits: Int? = nil) {
        self.form = form
        self.bits = bits
        self.granularity = granularity
        self.groupSize = groupSize
        self.clusterDim = clusterDim
        self.lut = lut
        self.perChannelScale = perChannelScale
        self.clusters = clusters
        self.vectorScaleBits = vectorScaleBits
    }

    /// Any field set here replaces the inherited one.
    func applied(to base: (form: Form, settings: PalettizationSettings)) -> (form: Form, settings: PalettizationSettings) {
        var s = base.settings
        if let bits { s.bits = bits }
        if let granularity { s.granularity = granularity }
        if let groupSize { s.groupSize = groupSize }
        if let clusterDim { s.clusterDimension = clusterDim }
        if let lut { s.precision = lut }
        if let perChannelScale { s.perChannelScale = perChannelScale }
        // A level that sets bits asks for 2^bits entries (an inherited K does not override it).
        if bits != nil { s.clusters = nil }
        if let clusters { s.clusters = clusters }
        if let vectorScaleBits { s.vectorScaleBits = vectorScaleBits }
        // Setting any palettization field on a level implies palettizing, unless the level says dense.
        let touched = bits != nil || granularity != nil || groupSize != nil || clusterDim != nil || lut != nil || perChannelScale != nil
            || clusters != nil || vectorScaleBits != nil
        return (form ?? (touched ? .palettize : base.form), s)
    }
}

/// Palettization of every selected weight, layered like coremltools' `OptimizationConfig`: the global level,
/// then per op type (`Conv`, `Gemm`, `MatMul`, `Gather`), then per layer (node or weight name, `*`/`?` globs; the
/// last matching entry wins). Each level may set the form (`palettize` or `dense`) and any setting.
///
/// As JSON (`--config plan.json`):
///
///     { "global":   { "bits": 4, "granularity": "per-grouped-channel", "group_size": 16 },
///       "op_types": { "Gemm": { "bits": 3 } },
///       "layers":   [ { "name": "features.0", "form": "dense" }, { "name": "classifier.*", "cluster_dim": 2 } ] }
public struct PalettizationConfiguration: Sendable, Codable, Equatable {
    public struct LayerOverride: Sendable, Codable, Equatable {
        /// Node or weight name, or a glob over them.
        public var name: String
        public var override: WeightFormOverride

        public init(name: String, override: WeightFormOverride) {
            self.name = name
            self.override = override
        }

        enum CodingKeys: String, CodingKey { case name }

        public init(from decoder: Decoder) throws {
            name = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .name)
            override = try WeightFormOverride(from: decoder)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try override.encode(to: encoder)
        }
    }

    public static let opTypes = ["Conv", "Gemm", "MatMul", "Gather"]

    public var global: WeightFormOverride
    public var opTypes: [String: WeightFormOverride]
    public var layers: [LayerOverride]
    public var seed: UInt64
    /// Lloyd iterations of scalar LUTs (on sorted values, cheap).
    public var maxIterations: Int
    /// Lloyd iterations of vector codebooks, and their seeding.
    public var vectorMaxIterations: Int = 30
    public var initialization: KMeansConfiguration.Initialization = .automatic
    /// Which form the layouts are recorded as (the kernel preset records `kernels`; not part of the schema).
    var origin: WeightLayout.Origin = .palettization

    enum CodingKeys: String, CodingKey {
        case global, layers, seed, initialization
        case opTypes = "op_types", maxIterations = "max_iterations", vectorMaxIterations = "vector_max_iterations"
    }

    public init(global: WeightFormOverride = WeightFormOverride(), opTypes: [String: WeightFormOverride] = [:],
                layers: [LayerOverride] = [], seed: UInt64 = 0, maxIterations: Int = 100) {
        self.global = global
        self.opTypes = opTypes
        self.layers = layers
        self.seed = seed
        self.maxIterations = maxIterations
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        global = try c.decodeIfPresent(WeightFormOverride.self, forKey: .global) ?? WeightFormOverride()
        opTypes = try c.decodeIfPresent([String: WeightFormOverride].self, forKey: .opTypes) ?? [:]
        layers = try c.decodeIfPresent([LayerOverride].self, forKey: .layers) ?? []
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        maxIterations = try c.decodeIfPresent(Int.self, forKey: .maxIterations) ?? 100
        vectorMaxIterations = try c.decodeIfPresent(Int.self, forKey: .vectorMaxIterations) ?? 30
        initialization = try c.decodeIfPresent(KMeansConfiguration.Initialization.self, forKey: .initialization) ?? .automatic
    }

    /// Whether any level asks for palettization at all.
    public var palettizesAnything: Bool {
        global.form == .palettize || global.bits != nil || opTypes.values.contains { $0.applied(to: (.dense, .init())).form == .palettize }
            || layers.contains { $0.override.applied(to: (.dense, .init())).form == .palettize }
    }

    /// The settings for one weight (nil: left dense), validated where they were set.
    public func settings(opType: String, names: [String]) throws -> PalettizationSettings? {
        var resolved = global.applied(to: (.dense, PalettizationSettings()))
        try check(resolved, level: "global")
        if let byOp = opTypes[opType] {
            resolved = byOp.applied(to: resolved)
            try check(resolved, level: "op_types.\(opType)")
        }
        for (i, layer) in layers.enumerated() where names.contains(where: { globMatches(layer.name, $0) }) {
            resolved = layer.override.applied(to: resolved)
            try check(resolved, level: "layers[\(i)] '\(layer.name)'")
        }
        return resolved.form == .palettize ? resolved.settings : nil
    }

    private func check(_ resolved: (form: WeightFormOverride.Form, settings: PalettizationSettings), level: String) throws {
        if resolved.form == .palettize { try resolved.settings.validate(at: level) }
    }

    /// Checks what can be checked without a model: op types are known, iteration count positive.
    public func validate() throws {
        for op in opTypes.keys where !Self.opTypes.contains(op) {
            throw ConfigurationError(level: "op_types", field: op, message: "is not an op type with weights to palettize (\(Self.opTypes.joined(separator: ", ")))")
        }
        guard maxIterations >= 1 else { throw ConfigurationError(level: "global", field: "max_iterations", message: "must be at least 1, got \(maxIterations)") }
        guard vectorMaxIterations >= 1 else {
            throw ConfigurationError(level: "global", field: "vector_max_iterations", message: "must be at least 1, got \(vectorMaxIterations)")
        }
        try check(global.applied(to: (.dense, PalettizationSettings())), level: "global")
    }
}
