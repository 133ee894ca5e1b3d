import Compute
import Execution
import ModelGraph
import Testing
import _TestSupport

/// Every operator case against onnxruntime's output (Scripts/make_fixtures.py).
@Suite struct OperatorTests {
    @Test(arguments: Fixtures.names(in: "ops"), [Executor.Options.Winograd.automatic, .always, .never])
    func matchesOnnxRuntime(_ name: String, winograd: Executor.Options.Winograd) throws {
        var options = Executor.Options()
        options.winograd = winograd
        options.fuseActivations = winograd != .never
        let (ours, expected) = try Fixtures.run("ops", name, options: options)
        #expect(ours.shape == expected.shape, "\(name): shape")
        let tolerance: Float = 1e-4 * max(1, expected.scalars.map(abs).max() ?? 1)
        #expect(TestSupport.maxAbsDifference(ours.scalars, expected.scalars) <= tolerance, "\(name)")
    }

    /// The operator list of the runtime issue: each has at least one fixture.
    @Test func everyListedOperatorHasAFixture() throws {
        let listed = ["Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
                      "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Concat",
                      "BatchNormalization", "Dropout", "Identity", "Softmax", "LRN", "Pad", "Constant", "Shape", "Gather",
                      "Unsqueeze", "Squeeze",
                      // What the real models (Scripts/fetch-real-models.sh) need, and their close relatives.
                      "ConvTranspose", "Resize", "LayerNormalization", "Erf", "Gelu", "HardSwish", "Softplus", "Mish",
                      "Expand", "Split", "Where", "Equal", "Less", "Greater", "Not", "And", "Min", "Max", "Abs",
                      "Reciprocal", "Floor", "Ceil", "Range", "Tile", "InstanceNormalization", "GroupNormalization", "TopK",
                      "ArgMax", "ArgMin", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                      "ReduceLogSumExp",
                      // Quantized weights (opsets 10–21).
                      "QuantizeLinear", "DequantizeLinear"]
        var covered = Set<String>()
        for name in Fixtures.names(in: "ops") {
            let graph = try ONNXFormatTestLoader.load("ops/\(name)")
            covered.formUnion(graph.nodes.map(\.opType))
        }
        let missing = listed.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "operators without a fixture: \(missing)")
    }

    @Test func shapeChainIsFoldedWhenInputsAreConstant() throws {
        let graph = try ONNXFormatTestLoader.load("ops/constant_mul")
        let executor = try Executor(graph: graph)
        #expect(executor.plan.map(\.opType) == ["Mul"], "the Constant node is folded at load time")
    }
}

/// Small PyTorch CNNs (VGG, AlexNet, ResNet, MobileNetV2 style) exported at opsets 11, 13, 17, against PyTorch's output.
@Suite struct ModelFixtureTests {
    @Test(arguments: Fixtures.names(in: "models"), [Executor.Options.Winograd.always, .never])
    func matchesPyTorch(_ name: String, winograd: Executor.Options.Winograd) throws {
        var options = Executor.Options()
        options.winograd = winograd
        let (ours, expected) = try Fixtures.run("models", name, options: options)
        #expect(ours.shape == expected.shape)
        #expect(TestSupport.maxAbsDifference(ours.scalars, expected.scalars) <= 1e-4, "\(name)")
    }
}
