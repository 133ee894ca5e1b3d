import Compute
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import Training
import _TestSupport

/// Weights behind constant DequantizeLinear / Cast / Transpose chains become initializers (Scripts/make_fixtures.py,
/// `make_quantize_ops`), and the quantization operators they use.
@Suite struct WeightChainTests {
    /// The fixture's graph as loaded, the same graph with its weight chains folded, and both outputs beside onnxruntime's.
    func loadFolded(_ name: String) throws -> (original: Graph, folded: Graph) {
        let base = Fixtures.path("ops/\(name)")
        let original = try ONNXModelFile.load(base + ".onnx")
        let folded = original.foldingWeightChains()
        let input = try TestSupport.readFloat(base + ".input.npy")
        let expected = try TestSupport.readFloat(base + ".output.npy")
        let before = try Executor(graph: original)(input), after = try Executor(graph: folded)(input)
        #expect(after == before, "\(name): folding at load changes no output")
        #expect(TestSupport.maxAbsDifference(after.scalars, expected.scalars) <= 1e-4 * max(1, expected.scalars.map(abs).max() ?? 1),
                "\(name): onnxruntime")
        return (original, folded)
    }

    @Test func dequantizedTransposedWeightBecomesAnInitializer() throws {
        let (original, folded) = try loadFolded("weight_chain_dequantize_transpose_matmul")
        #expect(folded.nodes.map(\.opType) == ["MatMul"])
        let q = try #require(original.initializers["w_q"]?.int64Tensor), zero = try #require(original.initializers["w_zero"]?.int64Tensor)
        let scale = try #require(original.initializers["w_scale"]?.floatTensor)
        #expect(original.storageTypes["w_q"] == 3, "stored as int8")
        // w[i, o] = (q[o, i] − zero[o]) · scale[o]: one scale per output channel, then transposed for MatMul.
        let (outputs, inputs) = (q.shape[0], q.shape[1])
        var expected = [Float](repeating: 0, count: q.count)
        for o in 0..<outputs {
            for i in 0..<inputs { expected[i * outputs + o] = Float(q.scalars[o * inputs + i] - zero.scalars[o]) * scale.scalars[o] }
        }
        #expect(folded.initializers["w"]?.floatTensor == Tensor(shape: [inputs, outputs], scalars: expected))
        #expect(Set(folded.initializers.keys) == ["w"] && folded.storageTypes.isEmpty, "what only the chain read is dropped")
        #expect(try Backpropagation(graph: folded).parameters == ["w"], "training sees the weight")
    }

    @Test func float16WeightCastToFloatBecomesAnInitializer() throws {
        let (original, folded) = try loadFolded("weight_chain_cast_conv")
        #expect(folded.nodes.map(\.opType) == ["Conv"])
        #expect(original.storageTypes["w16"] == 10)
        #expect(folded.initializers["w"] == original.initializers["w16"] && folded.initializers["w16"] == nil)
        #expect(folded.storageTypes == ["w": 10], "still written as float16")
        #expect(try Backpropagation(graph: folded).parameters == ["b", "w"])
    }

    /// The dequantized weight is also read by a ReduceSum: folding it would leave that reader without its input or
    /// compute the weight twice, so the chain stays for the executor.
    @Test func chainReadElsewhereIsLeftAlone() throws {
        let (original, folded) = try loadFolded("weight_chain_ambiguous")
        #expect(folded.nodes == original.nodes && folded.initializers == original.initializers)
    }

    /// A chain ending in a graph output, and a MatMul whose two inputs are both constant, are left alone too.
    @Test func chainsThatAreNotWeightsAreLeftAlone() throws {
        let w = AnyTensor.float(Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        let transpose = Node(name: "t", opType: "Transpose", inputs: ["w0"], outputs: ["w"], attributes: ["perm": .ints([1, 0])])
        var graph = Graph(nodes: [transpose, Node(name: "fc", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
                          initializers: ["w0": w], inputs: [ValueInfo(name: "x", shape: nil)],
                          outputs: [ValueInfo(name: "y", shape: nil), ValueInfo(name: "w", shape: nil)])
        #expect(graph.foldingWeightChains().nodes == graph.nodes)
        graph.outputs.removeLast()
        #expect(graph.foldingWeightChains().nodes.map(\.opType) == ["MatMul"], "without the graph output it folds")
        graph = Graph(nodes: [transpose, Node(name: "fc", opType: "MatMul", inputs: ["c", "w"], outputs: ["y"])],
                      initializers: ["w0": w, "c": w], outputs: [ValueInfo(name: "y", shape: nil)])
        #expect(graph.foldingWeightChains().nodes == graph.nodes, "both MatMul inputs constant: not a weight")
    }

    @Test func inspectAndCompressSeeTheWeights() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, layer, op) in [("weight_chain_dequantize_transpose_matmul", "fc", "MatMul"), ("weight_chain_cast_conv", "conv", "Conv")] {
            let model = Fixtures.path("ops/\(name).onnx"), out = dir.appendingPathComponent("\(name).onnx").path
            let inspect = try CLI.run(["inspect", model])
            #expect(inspect.status == 0 && inspect.stdout.contains(layer) && !inspect.stdout.contains("DequantizeLinear"), "\(inspect.stdout)")
            let result = try CLI.run(["compress", model, "-o", out, "--bits", "4", "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let layers = try #require(object["layers"] as? [[String: Any]])
            #expect(layers.count == 1 && layers.first?["layer"] as? String == layer && layers.first?["op_type"] as? String == op
                    && layers.first?["weight"] as? String == "w" && layers.first?["bits"] as? Int == 4, "\(layers)")
            #expect(try ONNXModelFile.load(out).nodes.map(\.opType) == [op])
        }
    }
}
