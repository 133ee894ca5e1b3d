import ArgumentParser
import Compression
import ModelGraph

extension NeuronClusteringConfiguration.Mode: ExpressibleByArgument {}
extension PruningConfiguration.Scope: ExpressibleByArgument {}

/// Pruning and neuron-clustering settings of `compress`.
struct NeuronOptions: ParsableArguments {
    @Option(help: "Cluster the input columns of fully-connected layers: kmeans, spherical (the paper) or spherical-weighted.")
    var neurons: NeuronClusteringConfiguration.Mode?

    @Option(help: "Column reduction ratio R in [0, 1): k = round(in·(1 − R)) shared columns per layer.")
    var columnReduction: Double?

    @Option(help: "Shared columns k per layer (alternative to --column-reduction).")
    var neuronClusters: Int?

    @Option(help: "Fully-connected layers to prune and cluster: node or weight names, globs, comma-separated or repeated (default: all).")
    var layers: [String] = []

    @Option(help: "Magnitude-prune the fully-connected weights to this sparsity in [0, 1) first.")
    var sparsity: Double?

    @Option(help: "Pruning threshold per layer or one global threshold.")
    var pruneScope: PruningConfiguration.Scope = .layer

    var layerPatterns: [String] { layers.flatMap { $0.split(separator: ",").map { String($0).trimmed } } }

    func validate() throws {
        if neurons != nil && (columnReduction == nil) == (neuronClusters == nil) {
            throw ValidationError("--neurons needs exactly one of --column-reduction R and --neuron-clusters k")
        }
        if neurons == nil && (columnReduction != nil || neuronClusters != nil) {
            throw ValidationError("--column-reduction and --neuron-clusters need --neurons kmeans|spherical|spherical-weighted")
        }
    }

    var isEmpty: Bool { neurons == nil && sparsity == nil }

    func pruning() throws -> PruningConfiguration? {
        guard let sparsity else { return nil }
        let config = PruningConfiguration(sparsity: sparsity, scope: pruneScope, layers: layerPatterns)
        try config.validate()
        return config
    }

    func clustering(_ shared: KernelOptions) throws -> NeuronClusteringConfiguration? {
        guard let neurons else { return nil }
        let size: NeuronClusteringConfiguration.Size = neuronClusters.map { .clusters($0) } ?? .reduction(columnReduction!)
        var config = NeuronClusteringConfiguration(size: size, mode: neurons, layers: layerPatterns, seed: shared.seed,
                                                   maxIterations: shared.maxIterations)
        config.initialization = shared.kernelInit
        try config.validate()
        return config
    }
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespaces) }
}

extension CompressionResult {
    /// Human-readable lines on what pruning and neuron clustering did.
    func neuronLines() -> [String] {
        var lines: [String] = []
        if let pruning {
            let zeros = pruning.layers.reduce(0) { $0 + $1.zeros }, total = pruning.layers.reduce(0) { $0 + $1.weights }
            lines.append("pruning: \(zeros) of \(total) weights zero (\(Terminal.percent(Double(zeros) / Double(max(1, total)))), \(pruning.configuration.scope.rawValue) scope) in \(pruning.layers.count) layers: \(Terminal.bytes(pruning.denseBytes)) → \(Terminal.bytes(pruning.storedBytes))")
        }
        if let neurons {
            lines.append("neurons (\(neurons.configuration.mode.rawValue)): \(neurons.layers.count) layers, \(neurons.foldedLayers) folded, \(neurons.scaledLayers) with explicit scales, \(String(format: "%.2f s", neurons.clusteringSeconds))")
            for layer in neurons.layers {
                let factors = switch layer.factors {
                case .none: "no factors"
                case .folded(let into): "norms folded into \(into)"
                case .explicit(let reason): "explicit scale vector (cannot fold exactly: \(reason))"
                }
                lines.append("  \(layer.nodeName): \(layer.inputs) → \(layer.clusters) columns (column reduction \(Terminal.percent(layer.columnReduction))), \(Terminal.bytes(layer.denseBytes)) → \(Terminal.bytes(layer.storedBytes)); \(factors)")
                if layer.liveColumns < layer.inputs && layer.factors != .none {
                    lines.append("    \(layer.inputs - layer.liveColumns) columns are all zero: their neurons drop out (factor 0)")
                }
            }
        }
        return lines
    }
}
