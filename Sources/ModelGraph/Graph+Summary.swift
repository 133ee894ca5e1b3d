import Compute

/// Facts about a model that `inspect` prints and compression passes plan with.
public struct GraphSummary: Sendable {
    public struct Layer: Sendable {
        public var name: String
        public var opType: String
        /// Shape of the layer's weight (first constant input), if it has one.
        public var weightShape: [Int]?
        public var parameters: Int
    }

    public var layers: [Layer]
    public var opCounts: [String: Int]
    public var parameterCount: Int
    /// Number of 2D kernels W[o,i,:,:] in Conv weights, keyed by "KHxKW".
    public var kernelCounts: [String: Int]
    /// Bytes of all float weights at 32 bits.
    public var denseWeightBytes: Int
}

extension Graph {
    public func summary() -> GraphSummary {
        var layers: [GraphSummary.Layer] = []
        var opCounts: [String: Int] = [:]
        var kernelCounts: [String: Int] = [:]
        for node in nodes {
            opCounts[node.opType, default: 0] += 1
            let constants = node.inputs.compactMap { initializers[$0]?.floatTensor }
            guard !constants.isEmpty else { continue }
            let parameters = constants.reduce(0) { $0 + $1.count }
            let weightShape = node.inputs.count > 1 ? initializers[node.inputs[1]]?.floatTensor?.shape : constants.first?.shape
            layers.append(.init(name: node.displayName, opType: node.opType, weightShape: weightShape, parameters: parameters))
            if node.opType == "Conv", let shape = weightShape, shape.count == 4 {
                kernelCounts["\(shape[2])x\(shape[3])", default: 0] += shape[0] * shape[1]
            }
        }
        let floatScalars = parameterCount
        return GraphSummary(layers: layers, opCounts: opCounts, parameterCount: floatScalars,
                            kernelCounts: kernelCounts, denseWeightBytes: floatScalars * 4)
    }
}
