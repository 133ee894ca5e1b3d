import Clustering
import Compute
import Dispatch
import ModelGraph

/// Settings of the neuron-clustering pass (columns of fully-connected weights).
public struct NeuronClusteringConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Plain k-means on the raw columns; each column becomes its cluster's mean column.
        case kmeans
        /// Sakamoto et al.: unit columns, spherical k-means, each column's norm folded into the layer before.
        case spherical
        /// Beyond the paper: the direction weighted by rᵢ² and the per-column factor the projection rᵢ·cos θᵢ,
        /// which minimise the real reconstruction error ‖W[:,i] − fᵢ·c‖².
        case sphericalWeighted = "spherical-weighted"
    }

    public enum Size: Sendable, Equatable {
        /// k shared columns per layer.
        case clusters(Int)
        /// Column reduction ratio R: k = round(in·(1 − R)) per layer.
        case reduction(Double)
    }

    public var size: Size
    public var mode: Mode
    /// Node or weight name globs; empty means every fully-connected layer.
    public var layers: [String]
    public var seed: UInt64
    public var maxIterations: Int
    public var initialization: KMeansConfiguration.Initialization = .automatic

    public init(size: Size, mode: Mode = .spherical, layers: [String] = [], seed: UInt64 = 0, maxIterations: Int = 30) {
        self.size = size
        self.mode = mode
        self.layers = layers
        self.seed = seed
        self.maxIterations = maxIterations
    }

    public func validate() throws {
        switch size {
        case .clusters(let k) where k < 1:
            throw CompressionError.invalidSetting("--neuron-clusters must be at least 1, got \(k)")
        case .reduction(let r) where !(r >= 0 && r < 1):
            throw CompressionError.invalidSetting("--column-reduction must be in [0, 1), got \(r)")
        default: break
        }
        guard maxIterations >= 1 else { throw CompressionError.invalidSetting("--max-iterations must be at least 1") }
    }
}

/// One clustered fully-connected layer.
public struct NeuronLayer: Sendable {
    public enum Factors: Sendable, Equatable {
        /// kmeans mode: columns are replaced as they are, no factor.
        case none
        /// Folded into the producing layer (described from producer to this layer).
        case folded(into: String)
        /// Kept as an explicit per-column scale vector before the layer (reason given).
        case explicit(reason: String)
    }

    public var nodeName: String
    public var weightName: String
    public var inputs: Int
    public var outputs: Int
    public var clusters: Int
    /// Columns of nonzero norm (the others are dropped: factor 0, their neuron could be removed).
    public var liveColumns: Int
    public var factors: Factors
    /// 32-bit dense bytes of the original weight matrix.
    public var denseBytes: Int
    /// Shared columns (dense or sparse, whichever is smaller) + bit-packed indices + explicit scales.
    public var storedBytes: Int
    public var inertia: Double
    public var columnReduction: Double { 1 - Double(clusters) / Double(max(1, inputs)) }
}

public struct NeuronClusteringResult: Sendable {
    /// The compressed form: shared columns, a column index and a Gather per layer (runs compressed in our executor,
    /// unchanged in onnxruntime), explicit scales as a Mul on the layer input.
    public var graph: Graph
    /// The same model with every weight rebuilt densely (explicit scales multiplied into the columns).
    public var denseGraph: Graph
    public var layers: [NeuronLayer]
    public var configuration: NeuronClusteringConfiguration
    public var clusteringSeconds: Double
    public var denseBytes: Int { layers.reduce(0) { $0 + $1.denseBytes } }
    public var storedBytes: Int { layers.reduce(0) { $0 + $1.storedBytes } }
    public var foldedLayers: Int { layers.filter { if case .folded = $0.factors { true } else { false } }.count }
    public var scaledLayers: Int { layers.filter { if case .explicit = $0.factors { true } else { false } }.count }
}

/// Clusters the input columns of the selected fully-connected layers (all of them by default), in graph order: the
/// column seed's form on the engine every form shares (`fitVectors`), each column one vector of the layer's outputs
/// (spherical modes: unit columns, the norms or projections as factors). `importance` (weight name → sensitivity per
/// element, e.g. the diagonal Fisher information) weights each column in the k-means objective by its sum.
/// Each layer's factors fold into the layer before it when the graph allows it exactly (`foldDecision`),
/// otherwise they are kept as an explicit scale vector. Layers are clustered on their own weights; a later
/// layer's fold then rescales the (already shared) rows of an earlier one, which keeps both exact.
public func clusterNeurons(in graph: Graph, configuration config: NeuronClusteringConfiguration,
                          importance: [String: [Float]] = [:]) throws -> NeuronClusteringResult {
    try config.validate()
    let layers = try selectFullyConnected(graph, patterns: config.layers)
    for layer in layers {
        if case .clusters(let k) = config.size, k > layer.inputs {
            throw CompressionError.invalidSetting(
                "--neuron-clusters \(k) is larger than the \(layer.inputs) input columns of '\(layer.node.displayName)'")
        }
        guard graph.initializers[layer.weightName]!.floatTensor!.scalars.allSatisfy(\.isFinite) else {
            throw CompressionError.nonFinite(tensor: layer.weightName)
        }
    }
    let start = DispatchTime.now().uptimeNanoseconds
    var compressed = graph, dense = graph
    var reports: [NeuronLayer] = []
    for (position, layer) in layers.enumerated() {
        let (n, d) = (layer.inputs, layer.outputs)
        let w = graph.initializers[layer.weightName]!.floatTensor!
        let columns = layer.columns(w)
        let norms = (0..<n).map { i in columns[i * d..<(i + 1) * d].reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }
        let k: Int = switch config.size {
        case .clusters(let k): k
        case .reduction(let r): max(1, min(n, Int((Double(n) * (1 - r)).rounded())))
        }
        let kmeansConfig = KMeansConfiguration(clusters: 1, initialization: config.initialization, maxIterations: config.maxIterations,
                                               seed: config.seed &+ UInt64(position))
        // Sensitivity (e.g. Fisher information) as k-means weights: a column weighs the sum over its weights, plus
        // 10⁻³ of the mean so that none is ignored.
        var columnImportance: [Float]? = nil
        if let f = importance[layer.weightName] {
            guard f.count == w.count, f.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                throw CompressionError.invalidImportance(tensor: layer.weightName, detail: "\(f.count) values for \(w.count) weights, each finite and ≥ 0")
            }
            let byColumn = layer.columns(Tensor(shape: w.shape, scalars: f))
            var sums = (0..<n).map { i in byColumn[i * d..<(i + 1) * d].reduce(Float(0), +) }
            let floor = sums.reduce(0, +) / Float(max(1, n)) * 1e-3
            sums = sums.map { $0 + (floor > 0 ? floor : 1) }
            columnImportance = sums
        }
        var shared: [Float]          // k×d, one shared column per row
        var index = [Int32](repeating: 0, count: n)
        var factors: [Float]? = nil
        var inertia = 0.0
        let live = (0..<n).filter { norms[$0] > 0 }
        if config.mode == .kmeans {
            let fit = try fitVectors(columns, dimension: d, entries: k, weights: columnImportance, spherical: false, configuration: kmeansConfig)
            (shared, index, inertia) = (fit.codebook, fit.assignments!, fit.inertia)
        } else {
            // Unit directions of the live columns; dead (all-zero) columns get factor 0 and drop out.
            var units = [Float](repeating: 0, count: live.count * d)
            for (row, i) in live.enumerated() { for j in 0..<d { units[row * d + j] = columns[i * d + j] / norms[i] } }
            let kLive = max(1, min(k, live.count))
            var weights: [Float]? = config.mode == .sphericalWeighted ? live.map { norms[$0] * norms[$0] } : nil
            if let columnImportance { weights = live.enumerated().map { (weights?[$0.offset] ?? 1) * columnImportance[$0.element] } }
            if live.isEmpty {
                shared = [Float](repeating: 0, count: d)
            } else {
                let fit = try fitVectors(units, dimension: d, entries: kLive, weights: weights, spherical: true, configuration: kmeansConfig)
                shared = fit.codebook
                for (row, i) in live.enumerated() { index[i] = fit.assignments![row] }
            }
            // Pad to k entries so the stored shape says k (unused entries are zero and cost their bytes honestly).
            shared += [Float](repeating: 0, count: (k - max(1, min(k, live.count))) * d)
            var f = [Float](repeating: 0, count: n)
            for i in live {
                if config.mode == .spherical { f[i] = norms[i]; continue }
                let c = Int(index[i]) * d
                var dot: Float = 0
                for j in 0..<d { dot += columns[i * d + j] * shared[c + j] }
                f[i] = dot
            }
            factors = f
        }

        // Fold the factors into the producer when that is exact, else keep them as an explicit scale.
        var how = NeuronLayer.Factors.none
        var explicitScale: [Float]? = nil
        if var f = factors {
            switch foldDecision(for: layer, in: compressed) {
            case .fold(let target):
                // Folding goes through Relu-like ops, exact for non-negative factors only (a negative projection
                // would flip the unit's sign): the best non-negative factor is then 0.
                f = f.map { max(0, $0) }
                applyFold(f, target, in: &compressed)
                applyFold(f, target, in: &dense)
                how = .folded(into: target.description)
            case .explicit(let reason):
                explicitScale = f
                how = .explicit(reason: reason)
            }
            // Reconstruction error ‖W[:,i] − fᵢ·c‖² with the factors as applied (what the weighted mode minimises).
            for i in 0..<n {
                let c = Int(index[i]) * d
                for j in 0..<d { let e = columns[i * d + j] - f[i] * shared[c + j]; inertia += Double(e * e) }
            }
        }

        // Compressed form: shared columns + index + Gather (+ Mul for explicit scales).
        let sharedName = "\(layer.weightName)/wc_shared_columns", indexName = "\(layer.weightName)/wc_column_index"
        compressed.initializers[layer.weightName] = nil
        compressed.initializers[sharedName] = .float(layer.weight(columns: shared, count: k))
        compressed.initializers[indexName] = .int64(Tensor(shape: [n], scalars: index.map { Int64($0) }))
        if k <= 65_536 { compressed.storageTypes[indexName] = k <= 256 ? 2 : 4 } else { compressed.storageTypes[indexName] = 6 }
        let rebuild = [
            Node(name: "\(layer.weightName)/wc_cast", opType: "Cast", inputs: [indexName], outputs: ["\(indexName)64"], attributes: ["to": .int(7)]),
            Node(name: "\(layer.weightName)/wc_gather", opType: "Gather", inputs: [sharedName, "\(indexName)64"], outputs: [layer.weightName],
                 attributes: ["axis": .int(layer.transposed ? 1 : 0)]),
        ]
        compressed.nodes.insert(contentsOf: rebuild, at: 0)
        if let scale = explicitScale {
            let scaleName = "\(layer.weightName)/wc_column_scale", scaledInput = "\(layer.node.inputs[0])/wc_scaled_for_\(layer.weightName)"
            compressed.initializers[scaleName] = .float(Tensor(shape: [n], scalars: scale))
            let at = compressed.nodes.firstIndex { $0 == layer.node }!
            compressed.nodes[at].inputs[0] = scaledInput
            compressed.nodes.insert(Node(name: "\(layer.weightName)/wc_scale", opType: "Mul", inputs: [layer.node.inputs[0], scaleName],
                                         outputs: [scaledInput]), at: at)
        }
        // Dense form: every column rebuilt, explicit scales multiplied in.
        var rebuilt = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            let c = Int(index[i]) * d, s = explicitScale?[i] ?? 1
            for j in 0..<d { rebuilt[i * d + j] = s * shared[c + j] }
        }
        dense.initializers[layer.weightName] = .float(layer.weight(columns: rebuilt, count: n))

        let sharedTensor = compressed.initializers[sharedName]!.floatTensor!
        let stored = storedMatrixBytes(sharedTensor.scalars, rows: sharedTensor.shape[0], columns: sharedTensor.shape[1])
            + (n * Footprint.indexBits(clusters: k) + 7) / 8 + (explicitScale == nil ? 0 : n * 4)
        reports.append(NeuronLayer(nodeName: layer.node.displayName, weightName: layer.weightName, inputs: n, outputs: d,
                                   clusters: k, liveColumns: live.count, factors: how, denseBytes: n * d * 4,
                                   storedBytes: stored, inertia: inertia))
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let record = "mode=\(config.mode.rawValue) layers=\(reports.map { "\($0.weightName):\($0.clusters)" }.joined(separator: ",")) seed=\(config.seed)"
    compressed.metadata["weightcluster.neuron_clustering"] = record
    dense.metadata["weightcluster.neuron_clustering"] = record
    return NeuronClusteringResult(graph: compressed, denseGraph: dense, layers: reports, configuration: config, clusteringSeconds: seconds)
}
