import Compute
import Execution
import ModelGraph
import Testing
import _TestSupport

/// QuantizeLinear / DequantizeLinear beyond the onnxruntime fixtures: what is refused, and with which message.
@Suite struct QuantizationOperatorTests {
    func quantizeGraph(zeroPoint: AnyTensor?, storage: Int? = nil, attributes: [String: Attribute] = [:], opset: Int = 13) -> Graph {
        var initializers: [String: AnyTensor] = ["s": .float(Tensor(shape: [], scalars: [0.5]))]
        initializers["z"] = zeroPoint
        var graph = Graph(nodes: [Node(name: "q", opType: "QuantizeLinear", inputs: zeroPoint == nil ? ["x", "s"] : ["x", "s", "z"],
                                       outputs: ["y"], attributes: attributes)],
                          initializers: initializers, inputs: [ValueInfo(name: "x", shape: nil)],
                          outputs: [ValueInfo(name: "y", elementType: 3, shape: nil)], opsetVersion: opset)
        if let storage { graph.storageTypes["z"] = storage }
        return graph
    }

    func quantize(_ graph: Graph, _ values: [Float]) throws -> [Int64] {
        let y = try Executor(graph: graph).run(["x": .float(Tensor(shape: [values.count], scalars: values))])["y"]
        return try #require(y?.int64Tensor).scalars
    }

    @Test func roundsHalfToEvenAndSaturatesToTheZeroPointType() throws {
        let values: [Float] = [0.25, 0.75, 1.25, -0.25, -0.75, 100, -100, .nan, .infinity]
        let zero = AnyTensor.int64(Tensor(shape: [], scalars: [0]))
        #expect(try quantize(quantizeGraph(zeroPoint: zero, storage: 3), values) == [0, 2, 2, 0, -2, 127, -128, 0, 127])
        #expect(try quantize(quantizeGraph(zeroPoint: zero, storage: 2), values) == [0, 2, 2, 0, 0, 200, 0, 0, 255])
        #expect(try quantize(quantizeGraph(zeroPoint: nil), values) == [0, 2, 2, 0, 0, 200, 0, 0, 255], "uint8 without a zero point")
        #expect(try quantize(quantizeGraph(zeroPoint: nil, attributes: ["output_dtype": .int(5)], opset: 21), [40_000]) == [32_767])
    }

    @Test func refusesWhatItCannotComputeWithAClearError() throws {
        let zero = AnyTensor.int64(Tensor(shape: [], scalars: [0]))
        func message(_ graph: Graph) -> String {
            (#expect(throws: ExecutionError.self) { _ = try quantize(graph, [1]) })?.description ?? ""
        }
        #expect(message(quantizeGraph(zeroPoint: zero)).contains("cannot tell whether the zero point 'z' is int8 or uint8"))
        #expect(message(quantizeGraph(zeroPoint: zero, storage: 6)).contains("quantizing to ONNX type 6 is not supported"))
        #expect(message(quantizeGraph(zeroPoint: .float(Tensor(shape: [], scalars: [0])))).contains("zero point must be an integer tensor"))
        #expect(message(quantizeGraph(zeroPoint: nil, attributes: ["block_size": .int(2)], opset: 21)).contains("blocked quantization"))
        let blocked = quantizeGraph(zeroPoint: nil, attributes: ["block_size": .int(2)], opset: 21)
        #expect((#expect(throws: ExecutionError.self) { try ModelValidation.validate(blocked) })?.description.contains("block_size 2") == true)
        // Per-axis scales must match the axis; DequantizeLinear needs integers.
        let perAxis = Graph(nodes: [Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "s"], outputs: ["y"], attributes: ["axis": .int(0)])],
                            initializers: ["s": .float(Tensor(shape: [3], scalars: [1, 2, 3]))],
                            inputs: [ValueInfo(name: "x", elementType: 7, shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
        let executor = try Executor(graph: perAxis)
        let wrongAxis = #expect(throws: ExecutionError.self) { try executor.run(["x": .int64(Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]))]) }
        #expect(wrongAxis?.description.contains("scale has 3 values, axis 0 of [2, 3] has 2") == true)
        #expect(try executor.run(["x": .int64(Tensor(shape: [3, 1], scalars: [1, 2, 3]))])["y"] == .float(Tensor(shape: [3, 1], scalars: [1, 4, 9])))
        let notIntegers = #expect(throws: ExecutionError.self) { try executor.run(["x": .float(Tensor(shape: [3], scalars: [1, 2, 3]))]) }
        #expect(notIntegers?.description.contains("x must be an integer tensor") == true)
    }

    /// The zero point's type rides on the executor's plan as an internal attribute, never in an exported model.
    @Test func foldedGraphCarriesNoInternalAttribute() throws {
        var options = Executor.Options()
        options.fuseActivations = false
        let graph = try ONNXFormatTestLoader.load("ops/quantize_dequantize_int8_per_axis")
        let executor = try Executor(graph: graph, options: options)
        #expect(executor.plan.contains { !$0.attributes.keys.filter { $0.hasPrefix("_") }.isEmpty })
        let folded = executor.foldedGraph()
        #expect(folded.nodes.allSatisfy { $0.attributes.keys.allSatisfy { !$0.hasPrefix("_") } })
        #expect(folded.nodes == graph.nodes)
    }
}
