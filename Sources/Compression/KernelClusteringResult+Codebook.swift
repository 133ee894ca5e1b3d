import Compute
import ModelGraph

extension KernelClusteringResult {
    /// The compact form of the model: each codebook once, per-layer index tensors in the smallest unsigned type
    /// that holds K (uint8, uint16, or uint16 + uint8 for K > 65,536), per-kernel scales as float16 or int8, and
    /// Cast / Gather / Mul / Reshape nodes that rebuild every Conv weight under its original name — so any ONNX
    /// runtime runs the file unchanged (this executor folds the rebuild once, at load).
    public func codebookGraph() -> Graph {
        var g = graph
        var rebuild: [Node] = []
        for (index, codebook) in codebooks.enumerated() {
            let d = codebook.kernelShape.reduce(1, *)
            g.initializers["wc_codebook_\(index)"] = .float(Tensor(shape: [codebook.count, d], scalars: codebook.entries))
        }
        for layer in layers {
            let w = layer.weightName
            let k = codebooks[layer.codebook].count
            let count = layer.indices.count
            var nodes: [Node] = []
            func node(_ op: String, _ inputs: [String], _ output: String, _ attributes: [String: Attribute] = [:]) {
                nodes.append(Node(name: "\(w)/wc_\(output.split(separator: "/").last ?? "")", opType: op, inputs: inputs,
                                  outputs: [output], attributes: attributes))
            }
            // Indices → int64.
            let indexName = "\(w)/wc_index"
            if k <= 65_536 {
                g.initializers[indexName] = .int64(Tensor(shape: [count], scalars: layer.indices.map { Int64($0) }))
                g.storageTypes[indexName] = k <= 256 ? 2 : 4
                node("Cast", [indexName], "\(w)/wc_index64", ["to": .int(7)])
            } else {
                // 24 bits: low 16 in uint16, high 8 in uint8; index = low + 65536·high.
                g.initializers[indexName + "_low"] = .int64(Tensor(shape: [count], scalars: layer.indices.map { Int64($0 & 0xFFFF) }))
                g.initializers[indexName + "_high"] = .int64(Tensor(shape: [count], scalars: layer.indices.map { Int64($0 >> 16) }))
                g.storageTypes[indexName + "_low"] = 4
                g.storageTypes[indexName + "_high"] = 2
                g.initializers["\(w)/wc_65536"] = .int64(Tensor(shape: [], scalars: [65_536]))
                node("Cast", [indexName + "_low"], "\(w)/wc_low64", ["to": .int(7)])
                node("Cast", [indexName + "_high"], "\(w)/wc_high64", ["to": .int(7)])
                node("Mul", ["\(w)/wc_high64", "\(w)/wc_65536"], "\(w)/wc_high_shifted")
                node("Add", ["\(w)/wc_low64", "\(w)/wc_high_shifted"], "\(w)/wc_index64")
            }
            node("Gather", ["wc_codebook_\(layer.codebook)", "\(w)/wc_index64"], "\(w)/wc_kernels", ["axis": .int(0)])
            var kernels = "\(w)/wc_kernels"
            if let scales = layer.scales {
                let scaleName = "\(w)/wc_scale"
                if let step = layer.scaleStep {
                    g.initializers[scaleName] = .int64(Tensor(shape: [count, 1], scalars: scales.map { Int64(($0 / step).rounded()) }))
                    g.storageTypes[scaleName] = 3
                    g.initializers["\(w)/wc_scale_step"] = .float(Tensor(shape: [], scalars: [step]))
                    node("Cast", [scaleName], "\(w)/wc_scale_float", ["to": .int(1)])
                    node("Mul", ["\(w)/wc_scale_float", "\(w)/wc_scale_step"], "\(w)/wc_scale_value")
                } else {
                    g.initializers[scaleName] = .float(Tensor(shape: [count, 1], scalars: scales))
                    g.storageTypes[scaleName] = 10
                    node("Cast", [scaleName], "\(w)/wc_scale_value", ["to": .int(1)])
                }
                node("Mul", [kernels, "\(w)/wc_scale_value"], "\(w)/wc_scaled")
                kernels = "\(w)/wc_scaled"
            }
            g.initializers["\(w)/wc_shape"] = .int64(Tensor(shape: [4], scalars: layer.shape.map { Int64($0) }))
            node("Reshape", [kernels, "\(w)/wc_shape"], w)
            g.initializers[w] = nil
            rebuild.append(contentsOf: nodes)
        }
        g.nodes = rebuild + g.nodes
        g.metadata["weightcluster.format"] = "codebook"
        return g
    }
}
