import Compute
import ONNXFormat
import Foundation
import ModelGraph
import Testing
import Training
import _TestSupport

/// Backward passes against central finite differences of L = Σ y·R (R fixed and random), in float32 with
/// the loss summed in Double; up to 12 coordinates of every parameter and of the input are checked.
enum GradientCheck {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor<Float> {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return scale * (Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 0.5)
        })
    }

    /// One op (or a short chain) with input "x" and output "y"; parameters as initializers.
    static func graph(_ nodes: [Node], _ initializers: [String: Tensor<Float>], input: [Int], opset: Int = 13,
                      extra: [String: AnyTensor] = [:]) -> Graph {
        var g = Graph(name: "check", nodes: nodes, inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)],
                      opsetVersion: opset)
        g.initializers = initializers.mapValues { .float($0) }.merging(extra) { $1 }
        return g
    }

    static func loss(_ bp: Backpropagation, _ x: Tensor<Float>, _ r: Tensor<Float>) throws -> Double {
        let y = try bp.forward(["x": .float(x)], training: true).logits
        return zip(y.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    static func run(_ name: String, _ graph: Graph, input shape: [Int], epsilon: Float = 1e-3) throws {
        let bp = try Backpropagation(graph: graph, inputGradients: true, seed: 1)
        let x = random(shape, seed: 5, scale: 2)
        let tape = try bp.forward(["x": .float(x)], training: true)
        let r = random(tape.logits.shape, seed: 9)
        let grads = try bp.backward(tape, logitsGradient: r)
        for target in bp.parameters + ["x"] {
            let analytic = try #require(grads[target], "\(name): no gradient for \(target)")
            let count = analytic.count
            for j in Set((0..<min(12, count)).map { ($0 * 7919) % count }).sorted() {
                func perturbed(_ delta: Float) throws -> Double {
                    if target == "x" {
                        var moved = x
                        moved.scalars[j] += delta
                        return try loss(bp, moved, r)
                    }
                    var p = bp.parameter(target)
                    let original = p.scalars[j]
                    p.scalars[j] = original + delta
                    bp.setParameter(target, p)
                    defer { p.scalars[j] = original; bp.setParameter(target, p) }
                    return try loss(bp, x, r)
                }
                let numeric = (try perturbed(epsilon) - (try perturbed(-epsilon))) / Double(2 * epsilon)
                let a = Double(analytic.scalars[j])
                #expect(abs(numeric - a) <= 1e-2 * max(abs(numeric), abs(a)) + 3e-3, "\(name) ∂L/∂\(target)[\(j)]: analytic \(a), numeric \(numeric)")
            }
        }
    }
}

@Suite struct GradientTests {
    @Test func convolutions() throws {
        try GradientCheck.run("conv stride 2 pads", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                  attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])])],
            ["w": GradientCheck.random([4, 3, 3, 3], seed: 1), "b": GradientCheck.random([4], seed: 2)], input: [2, 3, 5, 5]), input: [2, 3, 5, 5])
        try GradientCheck.run("conv groups dilation", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                  attributes: ["group": .int(2), "dilations": .ints([2, 2]), "pads": .ints([2, 2, 2, 2])])],
            ["w": GradientCheck.random([4, 2, 3, 3], seed: 3)], input: [2, 4, 5, 5]), input: [2, 4, 5, 5])
        // Depthwise (its own backward loops): stride 1 and 2, asymmetric pads, dilation.
        try GradientCheck.run("depthwise stride 2", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                  attributes: ["group": .int(3), "pads": .ints([1, 0, 2, 1]), "strides": .ints([2, 2])])],
            ["w": GradientCheck.random([3, 1, 3, 3], seed: 4), "b": GradientCheck.random([3], seed: 5)], input: [2, 3, 6, 7]),
            input: [2, 3, 6, 7])
        try GradientCheck.run("depthwise dilation", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                  attributes: ["group": .int(4), "dilations": .ints([2, 1]), "pads": .ints([2, 1, 2, 1])])],
            ["w": GradientCheck.random([4, 1, 3, 3], seed: 6)], input: [2, 4, 5, 5]), input: [2, 4, 5, 5])
        // Stride 1 takes dX as the forward convolution of dY with the turned filters: on a map 16 or more wide (the
        // row path), and with pads beyond the kernel's extent, where it spreads dY·W instead.
        try GradientCheck.run("depthwise stride 1 wide", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                  attributes: ["group": .int(2), "pads": .ints([1, 2, 0, 1])])],
            ["w": GradientCheck.random([2, 1, 3, 3], seed: 7), "b": GradientCheck.random([2], seed: 8)], input: [1, 2, 4, 18]),
            input: [1, 2, 4, 18])
        try GradientCheck.run("depthwise pads beyond the kernel", GradientCheck.graph(
            [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                  attributes: ["group": .int(2), "pads": .ints([3, 1, 1, 3])])],
            ["w": GradientCheck.random([2, 1, 3, 3], seed: 9)], input: [1, 2, 3, 4]), input: [1, 2, 3, 4])
    }

    /// Training runs the executor's plan: Pad → Conv → Add(another Conv of x) → Clip(0, 1) is one fused Conv, and
    /// Conv → Add(a broadcast [1, C, 1, 1] parameter) → Relu another (its Add falls back to broadcasting); the fused
    /// nodes' gradients (to x, both weights, the biases and the added parameter) match finite differences.
    @Test func fusedConvolutions() throws {
        let nodes = [
            Node(name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: ["xp"]),
            Node(name: "c1", opType: "Conv", inputs: ["xp", "w1", "b1"], outputs: ["a"]),
            Node(name: "c2", opType: "Conv", inputs: ["x", "w2"], outputs: ["s"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "add", opType: "Add", inputs: ["a", "s"], outputs: ["t"]),
            Node(name: "clip", opType: "Clip", inputs: ["t", "lo", "hi"], outputs: ["u"]),
            Node(name: "c3", opType: "Conv", inputs: ["u", "w3"], outputs: ["v"]),
            Node(name: "add2", opType: "Add", inputs: ["v", "row"], outputs: ["z"]),
            Node(name: "relu", opType: "Relu", inputs: ["z"], outputs: ["y"]),
        ]
        let graph = GradientCheck.graph(nodes, ["w1": GradientCheck.random([3, 2, 3, 3], seed: 11), "b1": GradientCheck.random([3], seed: 12),
                                                "w2": GradientCheck.random([3, 2, 3, 3], seed: 13), "w3": GradientCheck.random([4, 3, 1, 1], seed: 14),
                                                "row": GradientCheck.random([1, 4, 1, 1], seed: 15)],
                                        input: [2, 2, 5, 5],
                                        extra: ["pads": .int64(Tensor(shape: [8], scalars: [0, 0, 1, 1, 0, 0, 1, 1])),
                                                "lo": .float(Tensor(shape: [], scalars: [0])), "hi": .float(Tensor(shape: [], scalars: [1]))])
        let bp = try Backpropagation(graph: graph)
        #expect(bp.plan.map(\.opType) == ["Conv", "Conv", "Conv"])
        try GradientCheck.run("fused Pad/Conv/Add/Clip, Conv/broadcast Add/Relu", graph, input: [2, 2, 5, 5])
    }

    @Test func matrixProducts() throws {
        try GradientCheck.run("gemm transB alpha beta", GradientCheck.graph(
            [Node(name: "g", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["y"],
                  attributes: ["transB": .int(1), "alpha": .float(0.7), "beta": .float(1.3)])],
            ["w": GradientCheck.random([5, 6], seed: 1), "b": GradientCheck.random([5], seed: 2)], input: [3, 6]), input: [3, 6])
        try GradientCheck.run("gemm transA", GradientCheck.graph(
            [Node(name: "g", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["y"], attributes: ["transA": .int(1)])],
            ["w": GradientCheck.random([6, 5], seed: 1), "b": GradientCheck.random([1, 5], seed: 2)], input: [6, 3]), input: [6, 3])
        try GradientCheck.run("matmul batched", GradientCheck.graph(
            [Node(name: "m", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
            ["w": GradientCheck.random([4, 3], seed: 1)], input: [2, 3, 4]), input: [2, 3, 4])
    }

    @Test func broadcastingArithmetic() throws {
        for op in ["Add", "Sub", "Mul", "Div"] {
            let p = op == "Div" ? GradientCheck.random([3, 1], seed: 4).mapped { $0 + ($0 >= 0 ? 1 : -1) } : GradientCheck.random([3, 1], seed: 4)
            try GradientCheck.run(op, GradientCheck.graph(
                [Node(name: "a", opType: op, inputs: ["x", "p"], outputs: ["t"]),
                 Node(name: "b", opType: "Add", inputs: ["t", "q"], outputs: ["y"])],
                ["p": p, "q": GradientCheck.random([4], seed: 5)], input: [2, 3, 4]), input: [2, 3, 4])
        }
    }

    @Test func activations() throws {
        for (op, attributes) in [("Relu", [:]), ("LeakyRelu", ["alpha": Attribute.float(0.2)]), ("Sigmoid", [:]), ("Tanh", [:])] as [(String, [String: Attribute])] {
            try GradientCheck.run(op, GradientCheck.graph([Node(name: "a", opType: op, inputs: ["x"], outputs: ["y"], attributes: attributes)],
                                                          [:], input: [3, 7]), input: [3, 7])
        }
        try GradientCheck.run("Clip", GradientCheck.graph([Node(name: "c", opType: "Clip", inputs: ["x", "lo", "hi"], outputs: ["y"])],
                                                          ["lo": Tensor(shape: [], scalars: [-0.3]), "hi": Tensor(shape: [], scalars: [0.4])],
                                                          input: [3, 7]), input: [3, 7])
    }

    @Test func pooling() throws {
        try GradientCheck.run("maxpool 2x2", GradientCheck.graph(
            [Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])],
            [:], input: [2, 2, 4, 4]), input: [2, 2, 4, 4])
        try GradientCheck.run("maxpool 3x3 pad", GradientCheck.graph(
            [Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])],
            [:], input: [1, 2, 5, 5]), input: [1, 2, 5, 5])
        for include in [0, 1] {
            try GradientCheck.run("avgpool include_pad \(include)", GradientCheck.graph(
                [Node(name: "p", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
                      attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(include)])],
                [:], input: [1, 2, 5, 5]), input: [1, 2, 5, 5])
        }
        try GradientCheck.run("global average", GradientCheck.graph(
            [Node(name: "p", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["y"])], [:], input: [2, 3, 3, 3]), input: [2, 3, 3, 3])
    }

    @Test func shapesConcatAndGather() throws {
        try GradientCheck.run("flatten reshape concat", GradientCheck.graph([
            Node(name: "f", opType: "Flatten", inputs: ["x"], outputs: ["f"]),
            Node(name: "c", opType: "Concat", inputs: ["f", "p"], outputs: ["c"], attributes: ["axis": .int(1)]),
            Node(name: "r", opType: "Reshape", inputs: ["c", "shape"], outputs: ["y"]),
        ], ["p": GradientCheck.random([2, 4], seed: 3)], input: [2, 2, 2, 2], extra: ["shape": .int64(Tensor(shape: [2], scalars: [4, 6]))]),
            input: [2, 2, 2, 2])
        // Shared columns rebuilt by a Gather (neuron clustering) and a codebook gathered into kernels.
        try GradientCheck.run("gather axis 1 into gemm", GradientCheck.graph([
            Node(name: "g", opType: "Gather", inputs: ["shared", "index"], outputs: ["w"], attributes: ["axis": .int(1)]),
            Node(name: "m", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ], ["shared": GradientCheck.random([3, 2], seed: 3)], input: [2, 5],
            extra: ["index": .int64(Tensor(shape: [5], scalars: [0, 1, 1, 0, 1]))]), input: [2, 5])
        try GradientCheck.run("gather axis 0", GradientCheck.graph([
            Node(name: "g", opType: "Gather", inputs: ["book", "index"], outputs: ["k"]),
            Node(name: "m", opType: "Mul", inputs: ["x", "k"], outputs: ["y"]),
        ], ["book": GradientCheck.random([2, 4], seed: 3)], input: [3, 4],
            extra: ["index": .int64(Tensor(shape: [3], scalars: [1, 0, 1]))]), input: [3, 4])
    }

    @Test func batchNormalization() throws {
        let params = ["s": GradientCheck.random([3], seed: 1).mapped { $0 + 1 }, "b": GradientCheck.random([3], seed: 2),
                      "m": GradientCheck.random([3], seed: 3), "v": GradientCheck.random([3], seed: 4).mapped { abs($0) + 0.5 }]
        let node = Node(name: "bn", opType: "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], outputs: ["t"])
        // A product after it, so the batch-statistics gradient is not trivially zero.
        let graph = GradientCheck.graph([node, Node(name: "q", opType: "Mul", inputs: ["t", "t"], outputs: ["y"])], params, input: [4, 3, 2, 2])
        try GradientCheck.run("batchnorm training", graph, input: [4, 3, 2, 2])
        let bp = try Backpropagation(graph: graph)
        #expect(!bp.parameters.contains("m") && !bp.parameters.contains("v"), "running statistics are not trained")
    }

    @Test func frozenBatchNormalization() throws {
        let params = ["s": GradientCheck.random([3], seed: 1), "b": GradientCheck.random([3], seed: 2),
                      "m": GradientCheck.random([3], seed: 3), "v": GradientCheck.random([3], seed: 4).mapped { abs($0) + 0.5 }]
        let graph = GradientCheck.graph([Node(name: "bn", opType: "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], outputs: ["y"])],
                                        params, input: [2, 3, 2, 2])
        let bp = try Backpropagation(graph: graph, inputGradients: true)
        bp.batchNormalization = .frozen
        let x = GradientCheck.random([2, 3, 2, 2], seed: 5)
        let tape = try bp.forward(["x": .float(x)], training: true)
        let r = GradientCheck.random([2, 3, 2, 2], seed: 6)
        let g = try bp.backward(tape, logitsGradient: r)
        let scale = params["s"]!.scalars, variance = params["v"]!.scalars
        for i in 0..<x.count {
            let ch = (i / 4) % 3
            #expect(abs(g["x"]!.scalars[i] - r.scalars[i] * scale[ch] / (variance[ch] + 1e-5).squareRoot()) < 1e-5)
        }
    }

    @Test func dropoutMasksTheGradientItMaskedForward() throws {
        let graph = GradientCheck.graph([Node(name: "d", opType: "Dropout", inputs: ["x"], outputs: ["y"], attributes: ["ratio": .float(0.5)])],
                                        [:], input: [4, 50])
        let bp = try Backpropagation(graph: graph, inputGradients: true, seed: 3)
        let x = GradientCheck.random([4, 50], seed: 1)
        let tape = try bp.forward(["x": .float(x)], training: true)
        let g = try bp.backward(tape, logitsGradient: Tensor(shape: [4, 50], repeating: 1))["x"]!
        let dropped = tape.logits.scalars.filter { $0 == 0 }.count
        #expect(dropped > 50 && dropped < 150)
        for i in 0..<x.count { #expect(g.scalars[i] == (tape.logits.scalars[i] == 0 ? 0 : 2)) }
        // Evaluation: identity.
        #expect(try bp.forward(["x": .float(x)], training: false).logits == x)
    }

    @Test func softmaxCrossEntropy() throws {
        let logits = GradientCheck.random([3, 5], seed: 2, scale: 4)
        let labels = [1, 4, 0]
        let (loss, gradient, _) = try Backpropagation.crossEntropy(logits, labels: labels)
        for j in 0..<logits.count {
            var plus = logits, minus = logits
            plus.scalars[j] += 1e-2
            minus.scalars[j] -= 1e-2
            let numeric = (try Backpropagation.crossEntropy(plus, labels: labels).loss - (try Backpropagation.crossEntropy(minus, labels: labels).loss)) / 2e-2
            #expect(abs(numeric - gradient.scalars[j]) < 2e-3)
        }
        #expect(loss > 0)
        #expect(throws: TrainingError.self) { try Backpropagation.crossEntropy(logits, labels: [1, 5, 0]) }
    }
}

/// One forward + backward step of a small CNN against PyTorch (`Scripts/make_gradient_fixture.py`): Conv (also
/// grouped and 1×1), Relu, frozen BatchNormalization, MaxPool, LeakyRelu, Clip, Concat, Pad + AveragePool, Add,
/// Flatten, Gemm, and the mean softmax cross-entropy.
@Suite struct PyTorchGradientTests {
    @Test func parameterGradientsMatchPyTorch() throws {
        let graph = try ONNXFormatTestLoader.load("training/small_cnn")
        let x = try TestSupport.readFloat(Fixtures.path("training/input.npy"))
        let labels = try TestSupport.readFloat(Fixtures.path("training/labels.npy")).scalars.map { Int($0) }
        let bp = try Backpropagation(graph: graph)
        bp.batchNormalization = .frozen  // PyTorch in eval mode
        let tape = try bp.forward(["input": .float(x)], training: true)
        let (loss, gradient, _) = try Backpropagation.crossEntropy(tape.logits, labels: labels)
        let expectedLoss = try TestSupport.readFloat(Fixtures.path("training/loss.npy")).scalars[0]
        #expect(abs(loss - expectedLoss) < 1e-5)
        let grads = try bp.backward(tape, logitsGradient: gradient)
        #expect(Set(bp.parameters) == Set(graph.initializers.keys.filter { !$0.contains("running") && $0.contains(".") }))
        for name in bp.parameters {
            let expected = try TestSupport.readFloat(Fixtures.path("training/grad.\(name).npy"))
            let ours = try #require(grads[name], "no gradient for \(name)")
            let scale = expected.scalars.map(abs).max() ?? 0
            #expect(ours.count == expected.count)
            #expect(TestSupport.maxAbsDifference(ours.scalars, expected.scalars) <= 1e-4 * max(scale, 1e-3), "\(name): scale \(scale)")
        }
    }
}
