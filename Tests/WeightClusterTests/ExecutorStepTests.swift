import Clustering
import Compute
import Dispatch
import Execution
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
