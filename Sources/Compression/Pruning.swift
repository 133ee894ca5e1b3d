import Compute
import ModelGraph

/// Magnitude pruning of fully-connected weights.
public struct PruningConfiguration: Sendable, Equatable {
    public enum Scope: String, Sendable, CaseIterable {
        /// Each layer loses the same fraction of its weights.
        case layer
        /// One magnitude threshold for all selected layers together.
        case global
    }

    /// Fraction of weights set to zero, in [0, 1).
    public var sparsity: Double
    public var scope: Scope
    /// Node or weight name globs; empty means every fully-connected layer.
    public var layers: [String]

    public init(sparsity: Double, scope: Scope = .layer, layers: [String] = []) {
        self.sparsity = sparsity
        self.scope = scope
        self.layers = layers
    }

    public func validate() throws {
        guard sparsity >= 0 && sparsity < 1 else {
            throw CompressionError.invalidSetting("--sparsity must be in [0, 1), got \(sparsity)")
        }
    }
}

public struct PrunedLayer: Sendable, Equatable {
    public var nodeName: String
    public var weightName: String
    public var weights: Int
    public var zeros: Int
    /// Bytes of the pruned matrix: dense, or sparse rows when smaller (`storedMatrixBytes`).
    public var storedBytes: Int
    public var sparsity: Double { Double(zeros) / Double(max(1, weights)) }
}

public struct PruningResult: Sendable {
    public var graph: Graph
    public var layers: [PrunedLayer]
    public var configuration: PruningConfiguration
    /// Dense bytes (32-bit) of the pruned layers' weights before pruning.
    public var denseBytes: Int { layers.reduce(0) { $0 + $1.weights * 4 } }
    public var storedBytes: Int { layers.reduce(0) { $0 + $1.storedBytes } }
}

/// Sets the smallest-magnitude weights of the selected fully-connected layers to zero: exactly
/// round(S·n) of them per layer (layer scope) or over all layers (global scope); ties go to the lower index.
public func pruneWeights(in graph: Graph, configuration config: PruningConfiguration) throws -> PruningResult {
    try config.validate()
    let layers = try selectFullyConnected(graph, patterns: config.layers)
    var result = graph
    var tensors = layers.map { graph.initializers[$0.weightName]!.floatTensor! }
    for (layer, t) in zip(layers, tensors) where !t.scalars.allSatisfy(\.isFinite) {
        throw CompressionError.nonFinite(tensor: layer.weightName)
    }
    switch config.scope {
    case .layer:
        for i in tensors.indices { zeroSmallest(&tensors[i].scalars, count: Int((config.sparsity * Double(tensors[i].count)).rounded())) }
    case .global:
        var all = tensors.flatMap(\.scalars)
        zeroSmallest(&all, count: Int((config.sparsity * Double(all.count)).rounded()))
        var offset = 0
        for i in tensors.indices {
            tensors[i].scalars = Array(all[offset..<offset + tensors[i].count])
            offset += tensors[i].count
        }
    }
    var pruned: [PrunedLayer] = []
    for (layer, t) in zip(layers, tensors) {
        result.initializers[layer.weightName] = .float(t)
        let zeros = t.scalars.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
        pruned.append(PrunedLayer(nodeName: layer.node.displayName, weightName: layer.weightName, weights: t.count, zeros: zeros,
                                  storedBytes: storedMatrixBytes(t.scalars, rows: t.shape[0], columns: t.shape[1])))
    }
    result.metadata["weightcluster.pruning"] = "sparsity=\(config.sparsity) scope=\(config.scope.rawValue) layers=\(layers.map(\.weightName).joined(separator: ","))"
    return PruningResult(graph: result, layers: pruned, configuration: config)
}

/// Zeroes the `count` entries of smallest magnitude (ties: lower index first).
func zeroSmallest(_ values: inout [Float], count: Int) {
    guard count > 0 else { return }
    if count >= values.count { for i in values.indices { values[i] = 0 }; return }
    var magnitudes = values.map(abs)
    // The count-th smallest magnitude by partial selection (quickselect on a copy).
    let threshold = kthSmallest(&magnitudes, count - 1)
    var below = 0
    for v in values where abs(v) < threshold { below += 1 }
    var tiesLeft = count - below
    for i in values.indices {
        let m = abs(values[i])
        if m < threshold { values[i] = 0 } else if m == threshold && tiesLeft > 0 { values[i] = 0; tiesLeft -= 1 }
    }
}

/// The k-th smallest value (0-based); reorders `values`. Hoare quickselect with a median-of-three pivot.
func kthSmallest(_ values: inout [Float], _ k: Int) -> Float {
    var lo = 0, hi = values.count - 1
    while lo < hi {
        let mid = lo + (hi - lo) / 2
        let pivot = [values[lo], values[mid], values[hi]].sorted()[1]
        var i = lo, j = hi
        while i <= j {
            while values[i] < pivot { i += 1 }
            while values[j] > pivot { j -= 1 }
            if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
        }
        if k <= j { hi = j } else if k >= i { lo = i } else { return values[k] }
    }
    return values[k]
}
