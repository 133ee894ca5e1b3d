import Compute
import ModelGraph

extension KernelClusteringResult {
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
