import Compute
import ModelGraph

extension KernelClusteringResult {
    /// Each clustered Conv weight as a compressed weight of the one layout every form shares: kernels are vectors of
    /// kh·kw weights, each codebook shared by its layers (network scope) or owned by one (layer scope), per-kernel
    /// scales at 16 or 8 bits in scaled mode.
    public var compressedWeights: [CompressedWeight] {
        layers.map { layer in
            let codebook = codebooks[layer.codebook]
            let d = codebook.kernelShape.reduce(1, *)
            let (oc, ic) = (layer.shape[0], layer.shape[1])
            let layout = WeightLayout(weight: layer.weightName, shape: layer.shape, rows: oc, columns: ic * d, transposed: false,
                                      dimension: d, entries: codebook.count, groupSize: oc, codebook: "wc_codebook_\(layer.codebook)",
                                      precision: configuration.codebookPrecision, rowScales: false,
                                      vectorScaleBits: layer.scales == nil ? nil : (layer.scaleStep == nil ? 16 : 8), origin: .kernels)
            return CompressedWeight(layout: layout, indices: layer.indices, codebook: codebook.entries, rowScales: nil,
                                    vectorScales: layer.scales)
        }
    }

    /// The compact form of the model: each codebook once, per-layer index tensors in the smallest unsigned type
    /// that holds K (uint8, uint16, or uint16 + uint8 for K > 65,536), per-kernel scales as float16 or int8, and
    /// standard nodes that rebuild every Conv weight under its original name (`CompressedWeight.write(into:)`) —
    /// so any ONNX runtime runs the file unchanged (this executor folds the rebuild once, at load).
    public func codebookGraph() -> Graph {
        var g = graph
        for weight in compressedWeights { weight.write(into: &g) }
        return g
    }
}
