import Clustering
import Compute
import Dispatch
@testable import Execution
import ModelGraph
import Synchronization
import Testing

/// The plan as `run` executes it: names resolved to slots at load (`Step`), and a layer's attributes read at load
/// (`LayerAttributes`).
@Suite struct ExecutorStepTests {
    /// A value read by two nodes lives until the second; a graph output is never released; a graph output may be an
    /// initializer or a graph input; and a second run starts from fresh slots.
    @Test func valuesLiveUntilTheirLastReader() throws {
        let graph = Graph(nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                                  Node(name: "neg", opType: "Neg", inputs: ["a"], outputs: ["b"]),
                                  Node(name: "sum", opType: "Add", inputs: ["a", "w"], outputs: ["c"]),
                                  Node(name: "mul", opType: "Mul", inputs: ["b", "c"], outputs: ["d"])],
                          initializers: ["w": .float(Tensor(shape: [3], scalars: [1, 2, 3]))],
                          inputs: [ValueInfo(name: "x", shape: nil)],
                          outputs: [ValueInfo(name: "d", shape: nil), ValueInfo(name: "a", shape: nil),
                                    ValueInfo(name: "w", shape: nil), ValueInfo(name: "x", shape: nil)])
        let executor = try Executor(graph: graph)
        for input: [Float] in [[-1, 2, 0.5], [4, -3, 1]] {
            let x = Tensor(shape: [3], scalars: input)
            let outputs = try executor.run(["x": .float(x)])
            let a = input.map { max(0, $0) }
            let expected = zip(a, [Float(1), 2, 3]).map { -$0 * ($0 + $1) }
            #expect(outputs["d"]?.floatTensor?.scalars == expected)
            #expect(outputs["a"]?.floatTensor?.scalars == a)
            #expect(outputs["w"]?.floatTensor?.scalars == [1, 2, 3])
            #expect(outputs["x"]?.floatTensor?.scalars == input)
        }
    }

    /// A Conv (SAME_UPPER padding, stride 2, a fused Relu) and a ceil-mode MaxPool give the same bits from the
    /// attributes read at load as from the node's attributes read on the call (`Executor.evaluate`).
    @Test func layerAttributesReadAtLoadMatchTheNode() throws {
        var generator = SeededGenerator(seed: 16)
        let weight = Tensor<Float>(shape: [5, 3, 3, 3], scalars: (0..<135).map { _ in Float.random(in: -1...1, using: &generator) })
        let x = Tensor<Float>(shape: [2, 3, 9, 10], scalars: (0..<540).map { _ in Float.random(in: -1...1, using: &generator) })
        let graph = Graph(nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                                       attributes: ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2]),
                                                    "kernel_shape": .ints([3, 3])]),
                                  Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                                  Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"],
                                       attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]),
                                                    "ceil_mode": .int(1), "pads": .ints([0, 1, 0, 0])])],
                          initializers: ["w": .float(weight), "b": .float(Tensor(shape: [5], scalars: [0.1, -0.2, 0.3, 0, 0.5]))],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
        let executor = try Executor(graph: graph)
        #expect(executor.plan.map(\.opType) == ["Conv", "MaxPool"], "the Relu fused into the Conv")
        var value = AnyTensor.float(x)
        for node in executor.plan {
            let inputs = node.inputs.map { name -> AnyTensor? in name == node.inputs[0] ? value : executor.constants[name] }
            value = try Executor.evaluate(node, inputs: inputs, opset: graph.opsetVersion)[0]
        }
        let y = try executor(x)
        #expect(y.shape == [2, 5, 3, 3])
        #expect(y.scalars == value.floatTensor?.scalars)
    }

    /// A Concat over channels of Convs read by nothing else is assembled in place: each Conv (a 1×1 with a fused Relu;
    /// a padded 3×3 with a fused HardSwish, a pass of its own over its channels; a 3×3 at stride 2 into a second Concat)
    /// writes its channels of the Concat's output. Not in place: a Concat with a depthwise Conv among its inputs, and one
    /// whose Conv is read by another node too. At batches 1 and 3 (images a stride apart in the wider output), every
    /// output has the bits of the nodes evaluated one by one, and the profile names every node.
    @Test func concatOfConvolutionsWrittenInPlace() throws {
        var generator = SeededGenerator(seed: 18)
        func random(_ shape: [Int]) -> Tensor<Float> {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &generator) })
        }
        func conv(_ name: String, _ input: String, _ output: String, kernel: Int, strides: Int = 1, pads: Int = 0, group: Int = 1) -> Node {
            Node(name: name, opType: "Conv", inputs: [input, name + ".w", name + ".b"], outputs: [output],
                 attributes: ["kernel_shape": .ints([kernel, kernel]), "strides": .ints([strides, strides]),
                              "pads": .ints([pads, pads, pads, pads]), "group": .int(group)])
        }
        let shapes: [String: [Int]] = ["e1": [3, 4, 1, 1], "e3": [5, 4, 3, 3], "s2": [6, 8, 3, 3], "t2": [2, 8, 3, 3],
                                       "dw": [4, 1, 3, 3], "p1": [3, 4, 1, 1], "p3": [2, 4, 3, 3]]
        var initializers: [String: AnyTensor] = [:]
        for (name, shape) in shapes {
            initializers[name + ".w"] = .float(random(shape))
            initializers[name + ".b"] = .float(random([shape[0]]))
        }
        let concat = { (name: String, inputs: [String]) in
            Node(name: name, opType: "Concat", inputs: inputs, outputs: [name], attributes: ["axis": .int(1)])
        }
        let graph = Graph(nodes: [conv("e1", "x", "c1", kernel: 1), Node(name: "relu", opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
                                  conv("e3", "x", "c3", kernel: 3, pads: 1),
                                  Node(name: "swish", opType: "HardSwish", inputs: ["c3"], outputs: ["h3"]),
                                  concat("fire", ["r1", "h3"]),
                                  conv("s2", "fire", "s", kernel: 3, strides: 2), conv("t2", "fire", "t", kernel: 3, strides: 2),
                                  concat("down", ["s", "t"]),
                                  conv("dw", "x", "d", kernel: 3, pads: 1, group: 4), conv("p3", "x", "q", kernel: 3, pads: 1),
                                  concat("mixed", ["d", "q"]),
                                  conv("p1", "x", "p", kernel: 1), concat("shared", ["p", "q2"]),
                                  Node(name: "neg", opType: "Neg", inputs: ["p"], outputs: ["np"]),
                                  conv("q2", "x", "q2", kernel: 1)],
                          initializers: initializers.merging(["q2.w": .float(random([2, 4, 1, 1])), "q2.b": .float(random([2]))]) { a, _ in a },
                          inputs: [ValueInfo(name: "x", shape: nil)],
                          outputs: ["fire", "down", "mixed", "shared", "np"].map { ValueInfo(name: $0, shape: nil) })
        var options = Executor.Options()
        options.winograd = .never  // the nodes evaluated one by one take no Winograd weights either
        let executor = try Executor(graph: graph, options: options)
        executor.profiling = true
        let inPlace = Executor.concatenatedInPlace(executor.plan, graph: executor.graph, constants: executor.constants)
        #expect(Set(inPlace.concats.map { executor.plan[$0].name }) == ["fire", "down"])
        #expect(Set(inPlace.producers.keys.map { executor.plan[$0].name }) == ["e1", "e3", "s2", "t2"])
        for batch in [1, 3] {
            let x = random([batch, 4, 11, 11])
            var values: [String: AnyTensor] = ["x": .float(x)]
            for node in executor.plan {
                let inputs = node.inputs.map { values[$0] ?? executor.constants[$0] }
                for (name, value) in zip(node.outputs, try Executor.evaluate(node, inputs: inputs, opset: graph.opsetVersion)) {
                    values[name] = value
                }
            }
            let outputs = try executor.run(["x": .float(x)])
            for name in ["fire", "down", "mixed", "shared", "np"] {
                #expect(outputs[name]?.shape == values[name]?.shape, "\(name) at batch \(batch)")
                #expect(outputs[name]?.floatTensor?.scalars.map(\.bitPattern) == values[name]?.floatTensor?.scalars.map(\.bitPattern),
                        "\(name) at batch \(batch)")
            }
        }
        // The profile names every node, the Concats assembled in place among them.
        #expect(Set(executor.nodeProfile.keys) == Set(executor.plan.map { "\($0.displayName) (\($0.opType))" }))
    }

    /// A Conv step whose weight and bias are constants runs on its operands as they stand (`Step.convolution`): with
    /// and without a bias, with a fused Add whose other operand is a value of the output's shape or one that
    /// broadcasts, and with a fused Relu. A Conv whose weight is a graph input, and one whose fused Add's operand is a
    /// constant, go through the kernel with its inputs gathered. Every output has the bits of the nodes evaluated one
    /// by one, at batches 1 and 2.
    @Test func convolutionStepsRunOnTheirOperands() throws {
        var generator = SeededGenerator(seed: 37)
        func random(_ shape: [Int]) -> Tensor<Float> {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &generator) })
        }
        func conv(_ name: String, _ inputs: [String], kernel: Int, pads: Int = 0) -> Node {
            Node(name: name, opType: "Conv", inputs: inputs, outputs: [name + ".y"],
                 attributes: ["kernel_shape": .ints([kernel, kernel]), "pads": .ints([pads, pads, pads, pads])])
        }
        func add(_ name: String, _ a: String, _ b: String) -> Node {
            Node(name: name, opType: "Add", inputs: [a, b], outputs: [name])
        }
        let graph = Graph(nodes: [conv("a", ["x", "a.w", "a.b"], kernel: 3, pads: 1), add("s1", "a.y", "y"),
                                  Node(name: "relu", opType: "Relu", inputs: ["s1"], outputs: ["r1"]),
                                  conv("b", ["r1", "wIn"], kernel: 1),
                                  conv("c", ["x", "c.w"], kernel: 1), add("s2", "c.y", "z"),
                                  conv("d", ["x", "d.w", "d.b"], kernel: 1), add("s3", "d.y", "k")],
                          initializers: ["a.w": .float(random([6, 4, 3, 3])), "a.b": .float(random([6])),
                                         "c.w": .float(random([6, 4, 1, 1])), "d.w": .float(random([6, 4, 1, 1])),
                                         "d.b": .float(random([6])), "k": .float(random([1, 6, 1, 1]))],
                          inputs: ["x", "y", "wIn", "z"].map { ValueInfo(name: $0, shape: nil) },
                          outputs: ["b.y", "s2", "s3"].map { ValueInfo(name: $0, shape: nil) })
        var options = Executor.Options()
        options.winograd = .never  // the nodes evaluated one by one take no Winograd weights either
        let executor = try Executor(graph: graph, options: options)
        #expect(executor.plan.map(\.opType) == ["Conv", "Conv", "Conv", "Conv"], "the Adds and the Relu fused")
        #expect(executor.steps.filter { $0.convolution != nil }.map(\.node.name) == ["a", "c"])
        for batch in [1, 2] {
            let feeds: [String: AnyTensor] = ["x": .float(random([batch, 4, 7, 7])), "y": .float(random([batch, 6, 7, 7])),
                                              "wIn": .float(random([5, 6, 1, 1])), "z": .float(random([1, 6, 1, 1]))]
            var values = feeds
            for node in executor.plan {
                let inputs = node.inputs.map { $0.isEmpty ? nil : values[$0] ?? executor.constants[$0] }
                for (name, value) in zip(node.outputs, try Executor.evaluate(node, inputs: inputs, opset: graph.opsetVersion)) {
                    values[name] = value
                }
            }
            let outputs = try executor.run(feeds)
            for name in ["b.y", "s2", "s3"] {
                #expect(outputs[name]?.shape == values[name]?.shape, "\(name) at batch \(batch)")
                #expect(outputs[name]?.floatTensor?.scalars.map(\.bitPattern) == values[name]?.floatTensor?.scalars.map(\.bitPattern),
                        "\(name) at batch \(batch)")
            }
        }
    }

    /// One executor run from several threads at once while profiling: each run's nodes are added to the profile under
    /// a lock (the executor is `Sendable`, checked by the compiler), and every run gives the same values.
    @Test func profilingWhileSeveralThreadsRun() throws {
        let graph = Graph(nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                                  Node(name: "neg", opType: "Neg", inputs: ["a"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", shape: nil)], outputs: [ValueInfo(name: "y", shape: nil)])
        let executor = try Executor(graph: graph)
        executor.profiling = true
        let x = Tensor<Float>(shape: [4096], scalars: (0..<4096).map { Float($0 % 7) - 3 })
        let expected = x.scalars.map { -max(0, $0) }
        let agreed = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            if (try? executor(x))?.scalars == expected { agreed.withLock { $0 += 1 } }
        }
        #expect(agreed.withLock { $0 } == 8)
        #expect(Set(executor.nodeProfile.keys) == ["relu (Relu)", "neg (Neg)"])
        #expect(Set(executor.profile.keys) == ["Relu", "Neg"])
        #expect(executor.profile.values.allSatisfy { $0 > 0 })
    }
}
