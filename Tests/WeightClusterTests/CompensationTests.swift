import Clustering
@testable import Compression
import Compute
import Execution
import ModelGraph
import Testing
import _TestSupport

@Suite struct CompensationTests {
    /// UᵀU = H⁻¹ with U upper triangular, for a symmetric positive-definite H.
    @Test func inverseCholeskyFactorInvertsH() {
        let h: [Float] = [4, 2, 0.6, 2, 2, 0.5, 0.6, 0.5, 3]
        var u = h
        #expect(inverseCholeskyFactor(&u, n: 3))
        for i in 0..<3 { for j in 0..<i { #expect(u[i * 3 + j] == 0) } }
        // (UᵀU)·H = I.
        for i in 0..<3 {
            for j in 0..<3 {
                var s: Float = 0
                for k in 0..<3 { for m in 0..<3 { s += u[m * 3 + i] * u[m * 3 + k] * h[k * 3 + j] } }
                #expect(abs(s - (i == j ? 1 : 0)) < 1e-4, "(\(i), \(j)): \(s)")
            }
        }
        var singular: [Float] = [1, 1, 1, 1]
        #expect(!inverseCholeskyFactor(&singular, n: 2))
    }
}

extension CompensationTests {
    /// A Gemm (x [N, 12] · Wᵀ, W [6, 12]) and a 3×3 Conv (pad 1) over a 3-channel input, with random weights.
    static func layers() -> Graph {
        Graph(nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "k"], outputs: ["c"], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
                      Node(name: "flat", opType: "Flatten", inputs: ["c"], outputs: ["f"]),
                      Node(name: "fc", opType: "Gemm", inputs: ["f", "w"], outputs: ["y"], attributes: ["transB": .int(1)])],
              initializers: ["k": .float(GradientCheck.random([2, 3, 3, 3], seed: 1)), "w": .float(GradientCheck.random([6, 32], seed: 2))],
              inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
    }

    /// The Gram matrix of a Conv's receptive fields (zero padding included) and of a Gemm's input rows equal XᵀX
    /// computed naively.
    @Test func inputGramIsXTransposeX() throws {
        let graph = Self.layers()
        let x = GradientCheck.random([3, 3, 4, 4], seed: 3)
        let conv = try #require(try InputGram(node: graph.nodes[0], graph: graph))
        try conv.add(["x": .float(x)])
        #expect(conv.columns == 27 && conv.count == 3 * 16)
        var naive = [Float](repeating: 0, count: 27 * 27)
        for n in 0..<3 {
            for oy in 0..<4 {
                for ox in 0..<4 {
                    var field = [Float](repeating: 0, count: 27)
                    for c in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1)
                        if iy >= 0 && iy < 4 && ix >= 0 && ix < 4 { field[(c * 3 + ky) * 3 + kx] = x.scalars[((n * 3 + c) * 4 + iy) * 4 + ix] }
                    } } }
                    for i in 0..<27 { for j in 0..<27 { naive[i * 27 + j] += field[i] * field[j] } }
                }
            }
        }
        #expect(zip(conv.matrix, naive).allSatisfy { abs($0 - $1) < 1e-4 * max(1, abs($1)) })
        let fc = try #require(try InputGram(node: graph.nodes[2], graph: graph))
        try fc.add(["x": .float(x)])
        let f = try Executor(graph: Graph(nodes: Array(graph.nodes[0..<2]), initializers: graph.initializers, inputs: graph.inputs,
                                          outputs: [ValueInfo(name: "f", shape: nil)])).run(["x": .float(x)])["f"]!.floatTensor!
        #expect(fc.columns == 32 && fc.count == 3)
        for i in 0..<32 {
            for j in 0..<32 {
                let s = (0..<3).reduce(Float(0)) { $0 + f.scalars[$1 * 32 + i] * f.scalars[$1 * 32 + j] }
                #expect(abs(fc.matrix[i * 32 + j] - s) < 1e-4 * max(1, abs(s)))
            }
        }
        // A grouped convolution has no single Gram matrix: nil, and palettization keeps nearest assignment.
        var grouped = graph.nodes[0]
        grouped.attributes["group"] = .int(3)
        #expect(try InputGram(node: grouped, graph: Graph(nodes: [grouped], initializers: ["k": .float(GradientCheck.random([3, 1, 3, 3], seed: 4))],
                                                          inputs: graph.inputs, outputs: [ValueInfo(name: "c", shape: nil)])) == nil)
    }

    /// With the inputs' Gram matrix, palettization's indices cost the layer's output less than nearest assignment
    /// (same LUTs: at most 4 distinct values per group of channels), and the report says which layers it compensated.
    @Test func compensationLowersTheOutputError() throws {
        let graph = Self.layers()
        // Correlated inputs (one level per image and channel, plus noise): with independent ones XᵀX is nearly
        // diagonal and compensation has nothing to trade.
        let noise = GradientCheck.random([16, 3, 4, 4], seed: 5, scale: 0.3), level = GradientCheck.random([16, 3], seed: 6)
        let x = Tensor(shape: noise.shape, scalars: noise.scalars.indices.map { noise.scalars[$0] + level.scalars[$0 / 16] })
        for config in [PalettizationConfiguration(global: .init(bits: 2, granularity: .perGroupedChannel, groupSize: 2)),
                       PalettizationConfiguration(global: .init(bits: 3, granularity: .perTensor, clusterDim: 3))] {
        var grams: [String: [Float]] = [:]
        for node in [graph.nodes[0], graph.nodes[2]] {
            let gram = try #require(try InputGram(node: node, graph: graph))
            try gram.add(["x": .float(x)])
            grams[node.name] = gram.matrix
        }
        let d = config.global.clusterDim ?? 1, values = d == 1 ? 4 : 8
        let plain = try palettizeWeights(in: graph, configuration: config)
        let compensated = try palettizeWeights(in: graph, configuration: config, compensation: { grams[$1.name] })
        #expect(compensated.layers.allSatisfy { $0.compensated == true } && plain.layers.allSatisfy { $0.compensated == nil })
        for (name, node) in [("k", "conv"), ("w", "fc")] {
            let original = graph.initializers[name]!.floatTensor!.scalars
            func outputError(_ r: PalettizationResult) -> Float {
                let rebuilt = r.denseGraph.initializers[name]!.floatTensor!.scalars
                let rows = name == "k" ? 2 : 6, columns = original.count / rows
                let d = zip(original, rebuilt).map { $0 - $1 }
                // Σ_rows Δᵣ G Δᵣᵀ = ‖ΔW Xᵀ‖².
                let g = grams[node]!
                var total: Float = 0
                for r in 0..<rows { for i in 0..<columns { for j in 0..<columns { total += d[r * columns + i] * g[i * columns + j] * d[r * columns + j] } } }
                return total
            }
            // Never worse; strictly better where an assignment can move (18 vectors of 3 between 8 entries may not).
            #expect(outputError(compensated) <= outputError(plain) * 1.0001, "\(name), d = \(d): \(outputError(compensated)) vs \(outputError(plain))")
            if name == "w" || d == 1 { #expect(outputError(compensated) < outputError(plain), "\(name), d = \(d)") }
            // Still the codebooks' values: at most 4 per group of 2 channels (scalar), 8 vectors of 3 per tensor.
            let rebuilt = compensated.denseGraph.initializers[name]!.floatTensor!.scalars
            let perGroup = d == 1 ? rebuilt.count / (name == "k" ? 1 : 3) : rebuilt.count
            for g in stride(from: 0, to: rebuilt.count, by: perGroup) {
                let vectors = stride(from: g, to: g + perGroup, by: d).map { Array(rebuilt[$0..<$0 + d]) }
                #expect(Set(vectors).count <= values)
            }
        }
        }
    }
}
