import Compute
import Datasets
import Execution
import ModelGraph

/// How much an error in each weight costs the loss, measured on calibration images.
public enum Sensitivity {
    /// The diagonal of the empirical Fisher information of every weight tensor (float initializers of rank ≥ 2):
    /// Fᵢ = Σₙ (∂ℓₙ/∂wᵢ)² over the images, one image per backward pass (a batch's mean gradient would let the images'
    /// gradients cancel), with the model in inference mode (stored BatchNormalization statistics, no Dropout). To
    /// second order a small change δ of the weights adds ½ Σ Fᵢ δᵢ² to the loss, which is what sensitivity-weighted
    /// k-means minimises (coremltools' SKM, SqueezeLLM). Values in each tensor's own element order.
    public static func fisher(_ graph: Graph, images: ImageDataset, progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> [String: [Float]] {
        guard images.count >= 1 else { throw TrainingError.invalid("sensitivity needs at least 1 calibration image") }
        guard let input = graph.inputs.first?.name else { throw TrainingError.invalid("the model has no input") }
        let engine = try Backpropagation(graph: graph)
        engine.batchNormalization = .frozen
        let weights = engine.parameters.filter { engine.parameter($0).rank >= 2 }
        var sums = Dictionary(uniqueKeysWithValues: weights.map { ($0, [Double](repeating: 0, count: engine.parameter($0).count)) })
        for n in 0..<images.count {
            let tape = try engine.forward([input: .float(images.batch(n..<(n + 1)))], training: false)
            let (loss, gradient, _) = try Backpropagation.crossEntropy(tape.logits, labels: [images.labels[n]])
            guard loss.isFinite else { throw TrainingError.invalid("the loss of calibration image \(n) is \(loss): the model's outputs are not finite") }
            let grads = try engine.backward(tape, logitsGradient: gradient)
            for name in weights {
                guard let g = grads[name] else { continue }
                sums[name]!.withUnsafeMutableBufferPointer { s in
                    g.scalars.withUnsafeBufferPointer { g in for i in 0..<g.count { s[i] += Double(g[i]) * Double(g[i]) } }
                }
            }
            progress?(n + 1, images.count)
        }
        return sums.mapValues { $0.map { Float($0) } }
    }

    /// XᵀX of the vectors `node`'s weight multiplies on `images` (batches of 32), for GPTQ-style error
    /// compensation (`palettizeWeights(…, compensation:)`); nil for a node whose inputs are not one vector per weight
    /// row (grouped or depthwise Conv, a transposed Gemm input).
    public static func inputGram(of node: Node, in graph: Graph, images: ImageDataset) throws -> [Float]? {
        guard let input = graph.inputs.first?.name else { throw TrainingError.invalid("the model has no input") }
        guard let gram = try InputGram(node: node, graph: graph) else { return nil }
        for start in stride(from: 0, to: images.count, by: 32) {
            try gram.add([input: .float(images.batch(start..<min(images.count, start + 32)))])
        }
        return gram.matrix
    }
}
