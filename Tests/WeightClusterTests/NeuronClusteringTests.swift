import Compression
import Compute
import Datasets
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _TestSupport

/// Small fully-connected models built in code, with random weights of mixed scale per column.
enum NeuronFixtures {
    static func random(_ shape: [Int], seed: inout UInt64, columnScale: Bool = false) -> Tensor<Float> {
        let count = shape.reduce(1, *)
        var values = (0..<count).map { _ -> Float in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2000) / 1000 - 0.5
        }
        if columnScale, shape.count == 2 {  // columns of very different norms, as trained layers have
            for i in 0..<count { values[i] *= Float(1 + (i % shape[1]) % 5) }
        }
        return Tensor(shape: shape, scalars: values)
    }

    /// x[N,12] → Gemm(16, transB) → Relu → Gemm(10, transB) → `activation` → MatMul(10×6) → Add(bias) → LeakyRelu → Gemm(4) → y.
    static func mlp(activation: String = "Relu") -> Graph {
        var seed: UInt64 = 7
        var g = Graph(name: "mlp", inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(12)])],
                      outputs: [ValueInfo(name: "y", shape: [.symbolic("N"), .fixed(4)])])
        g.initializers = [
            "w1": .float(random([16, 12], seed: &seed, columnScale: true)), "b1": .float(random([16], seed: &seed)),
            "w2": .float(random([10, 16], seed: &seed, columnScale: true)), "b2": .float(random([10], seed: &seed)),
            "w3": .float(random([10, 6], seed: &seed)), "b3": .float(random([6], seed: &seed)),
            "w4": .float(random([4, 6], seed: &seed, columnScale: true)), "b4": .float(random([4], seed: &seed)),
        ]
        g.nodes = [
            Node(name: "fc1", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h1"], attributes: ["transB": .int(1)]),
            Node(name: "relu1", opType: "Relu", inputs: ["h1"], outputs: ["a1"]),
            Node(name: "fc2", opType: "Gemm", inputs: ["a1", "w2", "b2"], outputs: ["h2"], attributes: ["transB": .int(1)]),
            Node(name: "act2", opType: activation, inputs: ["h2"], outputs: ["a2"]),
            Node(name: "fc3", opType: "MatMul", inputs: ["a2", "w3"], outputs: ["m3"]),
            Node(name: "bias3", opType: "Add", inputs: ["m3", "b3"], outputs: ["h3"]),
            Node(name: "leaky3", opType: "LeakyRelu", inputs: ["h3"], outputs: ["a3"], attributes: ["alpha": .float(0.1)]),
            Node(name: "fc4", opType: "Gemm", inputs: ["a3", "w4", "b4"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ]
        return g
    }

    /// x[N,3,4,4] → Conv(8) → Relu → `pool` → Flatten → Gemm(5).
    static func convHead(globalPool: Bool) -> Graph {
        var seed: UInt64 = 11
        let units = globalPool ? 8 : 8 * 2 * 2
        var g = Graph(name: "conv", inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(3), .fixed(4), .fixed(4)])],
                      outputs: [ValueInfo(name: "y", shape: [.symbolic("N"), .fixed(5)])])
        g.initializers = ["cw": .float(random([8, 3, 3, 3], seed: &seed)), "cb": .float(random([8], seed: &seed)),
                          "w": .float(random([5, units], seed: &seed, columnScale: true)), "b": .float(random([5], seed: &seed))]
        g.nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "cw", "cb"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            globalPool ? Node(name: "pool", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["p"])
                : Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["p"], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            Node(name: "flatten", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "w", "b"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ]
        return g
    }

    static func input(_ shape: [Int]) -> Tensor<Float> {
        var seed: UInt64 = 99
        return random(shape, seed: &seed).mapped { 2 * $0 }
    }

    static func outputs(_ graph: Graph, _ x: Tensor<Float>, sharedColumns: Bool = true) throws -> [Float] {
        var options = Executor.Options()
        options.sharedColumns = sharedColumns
        return try Executor(graph: graph, options: options)(x).scalars
    }

    /// max |a − b| relative to the largest |b| (at least 1).
    static func relative(_ a: [Float], _ b: [Float]) -> Float {
        TestSupport.maxAbsDifference(a, b) / max(1, b.map(abs).max() ?? 0)
    }
}

@Suite struct NeuronClusteringTests {
    static let models: [(String, Graph, [Int])] = [
        ("mlp", NeuronFixtures.mlp(), [5, 12]), ("sigmoid", NeuronFixtures.mlp(activation: "Sigmoid"), [5, 12]),
        ("conv-gap", NeuronFixtures.convHead(globalPool: true), [3, 3, 4, 4]), ("conv-maxpool", NeuronFixtures.convHead(globalPool: false), [3, 3, 4, 4]),
    ]

    @Test(arguments: NeuronClusteringConfiguration.Mode.allCases)
    func everyColumnItsOwnClusterReproducesTheModel(_ mode: NeuronClusteringConfiguration.Mode) throws {
        // k = in: for the spherical modes this is the folding alone (unit columns, norms folded or kept as scales).
        for (name, graph, shape) in Self.models {
            let x = NeuronFixtures.input(shape)
            let reference = try NeuronFixtures.outputs(graph, x)
            let r = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0), mode: mode))
            #expect(r.layers.allSatisfy { $0.clusters == $0.inputs })
            #expect(NeuronFixtures.relative(try NeuronFixtures.outputs(r.graph, x), reference) <= 1e-5, "\(name) \(mode) compressed")
            #expect(NeuronFixtures.relative(try NeuronFixtures.outputs(r.denseGraph, x), reference) <= 1e-5, "\(name) \(mode) dense")
        }
    }

    @Test func foldingDecisionsFollowTheGraph() throws {
        let mlp = try clusterNeurons(in: NeuronFixtures.mlp(), configuration: .init(size: .reduction(0.5)))
        // fc1 reads the graph input; fc2 folds through Relu into fc1; fc3 (MatMul) into fc2; fc4 through Add + LeakyRelu into fc3.
        #expect(mlp.layers.map(\.nodeName) == ["fc1", "fc2", "fc3", "fc4"])
        guard case .explicit(let reason) = mlp.layers[0].factors else { Issue.record("fc1 should keep explicit scales"); return }
        #expect(reason.contains("graph input"))
        #expect(mlp.layers[1].factors == .folded(into: "fc1 → Relu"))
        #expect(mlp.layers[2].factors == .folded(into: "fc2 → Relu"))
        #expect(mlp.layers[3].factors == .folded(into: "fc3 → Add → LeakyRelu"))
        #expect(mlp.foldedLayers == 3 && mlp.scaledLayers == 1)

        let sigmoid = try clusterNeurons(in: NeuronFixtures.mlp(activation: "Sigmoid"), configuration: .init(size: .reduction(0.5)))
        guard case .explicit(let why) = sigmoid.layers[2].factors else { Issue.record("Sigmoid must not be folded through"); return }
        #expect(why.contains("Sigmoid"))
        #expect(sigmoid.graph.initializers["w3/wc_column_scale"] != nil)

        let gap = try clusterNeurons(in: NeuronFixtures.convHead(globalPool: true), configuration: .init(size: .reduction(0.5)))
        #expect(gap.layers[0].factors == .folded(into: "conv → Relu → GlobalAveragePool → Flatten"))
        let spatial = try clusterNeurons(in: NeuronFixtures.convHead(globalPool: false), configuration: .init(size: .reduction(0.5)))
        guard case .explicit(let position) = spatial.layers[0].factors else { Issue.record("one column per position must not fold"); return }
        #expect(position.contains("spatial position"))
        // kmeans needs no factors at all.
        let plain = try clusterNeurons(in: NeuronFixtures.mlp(), configuration: .init(size: .reduction(0.5), mode: .kmeans))
        #expect(plain.layers.allSatisfy { $0.factors == .none })
    }

    @Test(arguments: NeuronClusteringConfiguration.Mode.allCases)
    func compressedFormEqualsTheDenseReconstruction(_ mode: NeuronClusteringConfiguration.Mode) throws {
        for (name, graph, shape) in Self.models {
            let x = NeuronFixtures.input(shape)
            let r = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), mode: mode))
            let compressed = try NeuronFixtures.outputs(r.graph, x)
            #expect(NeuronFixtures.relative(compressed, try NeuronFixtures.outputs(r.denseGraph, x)) <= 1e-5, "\(name) \(mode)")
            #expect(NeuronFixtures.relative(compressed, try NeuronFixtures.outputs(r.graph, x, sharedColumns: false)) <= 1e-5, "\(name) \(mode)")
            // The executor really runs the compressed form: one _SharedColumns node per layer, no Gather left.
            let plan = try Executor(graph: r.graph).plan
            #expect(plan.filter { $0.opType == "_SharedColumns" }.count == r.layers.count, "\(name)")
            #expect(!plan.contains { $0.opType == "Gather" || ($0.opType == "Mul" && $0.name.hasSuffix("wc_scale")) }, "\(name)")
            // And it changes the model: columns really are shared.
            #expect(NeuronFixtures.relative(compressed, try NeuronFixtures.outputs(graph, x)) > 1e-4, "\(name)")
        }
    }

    @Test func sphericalCentroidsHaveUnitNorm() throws {
        // One layer at a time: a later layer's fold rescales the rows of the shared columns before it.
        for mode in [NeuronClusteringConfiguration.Mode.spherical, .sphericalWeighted] {
            for name in ["fc1", "fc2", "fc3", "fc4"] {
            let r = try clusterNeurons(in: NeuronFixtures.mlp(), configuration: .init(size: .reduction(0.5), mode: mode, layers: [name]))
            for layer in r.layers {
                let shared = try #require(r.graph.initializers["\(layer.weightName)/wc_shared_columns"]?.floatTensor)
                #expect(shared.shape == [layer.outputs, layer.clusters] || shared.shape == [layer.clusters, layer.outputs])
                let transposed = shared.shape == [layer.outputs, layer.clusters] && layer.weightName != "w3"
                for c in 0..<layer.clusters {
                    let column = transposed ? (0..<layer.outputs).map { shared.scalars[$0 * layer.clusters + c] }
                        : Array(shared.scalars[c * layer.outputs..<(c + 1) * layer.outputs])
                    let norm = column.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    #expect(abs(norm - 1) < 1e-5, "\(mode) \(layer.nodeName) column \(c): \(norm)")
                }
            }
            }
        }
    }

    @Test func weightedModeHasTheSmallestReconstructionError() throws {
        // Same clustering objective family; the weighted factors are least-squares projections.
        let graph = NeuronFixtures.mlp(activation: "Sigmoid")  // fc1 and fc3 keep explicit (unclamped) scales
        let plain = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), mode: .spherical))
        let weighted = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), mode: .sphericalWeighted))
        for (p, w) in zip(plain.layers, weighted.layers) { #expect(w.inertia <= p.inertia * 1.0001, "\(p.nodeName)") }
    }

    /// Sensitivity weights the columns (as it does every other form): a column that matters a million times more
    /// than the others keeps its own direction, in every mode.
    @Test(arguments: NeuronClusteringConfiguration.Mode.allCases)
    func importantColumnsAreReproduced(_ mode: NeuronClusteringConfiguration.Mode) throws {
        let graph = NeuronFixtures.mlp()
        let w2 = graph.initializers["w2"]!.floatTensor!  // [10, 16], transB: column i is w2[:, i]
        var importance = [Float](repeating: 1, count: w2.count)
        for o in 0..<10 { importance[o * 16 + 5] = 1e6 }
        let config = NeuronClusteringConfiguration(size: .reduction(0.75), mode: mode, layers: ["fc2"])
        let weighted = try clusterNeurons(in: graph, configuration: config, importance: ["w2": importance])
        func cosine(_ r: NeuronClusteringResult) -> Float {
            let rebuilt = r.denseGraph.initializers["w2"]!.floatTensor!.scalars
            let a = (0..<10).map { w2.scalars[$0 * 16 + 5] }, b = (0..<10).map { rebuilt[$0 * 16 + 5] }
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            return dot / max(1e-12, (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot())
        }
        #expect(cosine(weighted) > 0.9999, "\(mode)")
        #expect(throws: CompressionError.self) { try clusterNeurons(in: graph, configuration: config, importance: ["w2": [1]]) }
    }

    @Test func zeroColumnsDropOut() throws {
        var graph = NeuronFixtures.mlp()
        var w2 = graph.initializers["w2"]!.floatTensor!
        for o in 0..<10 { w2.scalars[o * 16 + 3] = 0; w2.scalars[o * 16 + 7] = 0 }
        graph.initializers["w2"] = .float(w2)
        let r = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), mode: .spherical))
        #expect(r.layers[1].liveColumns == 14)
        // Their producer rows are scaled by 0, so the neurons are off.
        let w1 = r.graph.initializers["w1/wc_shared_columns"]!.floatTensor!
        #expect(w1.scalars[3 * w1.shape[1]..<4 * w1.shape[1]].allSatisfy { $0 == 0 })
        let x = NeuronFixtures.input([5, 12])
        #expect(NeuronFixtures.relative(try NeuronFixtures.outputs(r.graph, x), try NeuronFixtures.outputs(r.denseGraph, x)) <= 1e-5)
    }

    @Test func badRequests() throws {
        let graph = NeuronFixtures.mlp()
        #expect(throws: CompressionError.self) { try clusterNeurons(in: graph, configuration: .init(size: .reduction(1))) }
        #expect(throws: CompressionError.self) { try clusterNeurons(in: graph, configuration: .init(size: .reduction(-0.1))) }
        #expect(throws: CompressionError.self) { try clusterNeurons(in: graph, configuration: .init(size: .clusters(0))) }
        do {
            _ = try clusterNeurons(in: graph, configuration: .init(size: .clusters(13)))
            Issue.record("k > in accepted")
        } catch { #expect("\(error)".contains("larger than the 12 input columns of 'fc1'")) }
        do {
            _ = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), layers: ["nope"]))
            Issue.record("unknown layer accepted")
        } catch { #expect("\(error)".contains("no layer named 'nope'") && "\(error)".contains("fc1, fc2, fc3, fc4")) }
        do {
            _ = try clusterNeurons(in: NeuronFixtures.convHead(globalPool: true), configuration: .init(size: .reduction(0.5), layers: ["conv"]))
            Issue.record("Conv accepted as a fully-connected layer")
        } catch { #expect("\(error)".contains("'conv' is a Conv, not a fully-connected layer")) }
        var nan = graph
        var w = nan.initializers["w2"]!.floatTensor!
        w.scalars[5] = .nan
        nan.initializers["w2"] = .float(w)
        #expect(throws: CompressionError.nonFinite(tensor: "w2")) { try clusterNeurons(in: nan, configuration: .init(size: .reduction(0.5))) }
        // Only the named layers are touched.
        let one = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), layers: ["fc2"]))
        #expect(one.layers.map(\.nodeName) == ["fc2"] && one.graph.initializers["w1"] != nil)
    }
}

@Suite struct PruningTests {
    @Test func layerScopePrunesExactlyThatFractionOfEachLayer() throws {
        let r = try pruneWeights(in: NeuronFixtures.mlp(), configuration: .init(sparsity: 0.75))
        for layer in r.layers {
            #expect(layer.zeros == Int((0.75 * Double(layer.weights)).rounded()), "\(layer.nodeName)")
            // The survivors are the largest magnitudes.
            let original = NeuronFixtures.mlp().initializers[layer.weightName]!.floatTensor!.scalars
            let pruned = r.graph.initializers[layer.weightName]!.floatTensor!.scalars
            let kept = zip(original, pruned).filter { $1 != 0 }.map { abs($0.0) }.min() ?? 0
            let dropped = zip(original, pruned).filter { $1 == 0 }.map { abs($0.0) }.max() ?? 0
            #expect(dropped <= kept)
        }
    }

    @Test func globalScopeUsesOneThreshold() throws {
        let graph = NeuronFixtures.mlp()
        let r = try pruneWeights(in: graph, configuration: .init(sparsity: 0.6, scope: .global))
        let total = r.layers.reduce(0) { $0 + $1.weights }
        #expect(r.layers.reduce(0) { $0 + $1.zeros } == Int((0.6 * Double(total)).rounded()))
        let pairs = r.layers.flatMap { layer in
            zip(graph.initializers[layer.weightName]!.floatTensor!.scalars, r.graph.initializers[layer.weightName]!.floatTensor!.scalars)
        }
        #expect((pairs.filter { $1 == 0 }.map { abs($0.0) }.max() ?? 0) <= (pairs.filter { $1 != 0 }.map { abs($0.0) }.min() ?? 0))
    }

    @Test func sparseStorageIsCountedWhenSmaller() {
        var values = [Float](repeating: 0, count: 100 * 100)
        #expect(storedMatrixBytes(values, rows: 100, columns: 100) == 101 * 4)
        for i in stride(from: 0, to: values.count, by: 10) { values[i] = 1 }
        // 1000 nonzeros × (32 + 7 bits) + 101 row offsets.
        #expect(storedMatrixBytes(values, rows: 100, columns: 100) == (1000 * 39 + 7) / 8 + 404)
        #expect(storedMatrixBytes([Float](repeating: 1, count: 10_000), rows: 100, columns: 100) == 40_000)
    }

    @Test func pruningThenClusteringStaysConsistent() throws {
        let pruned = try pruneWeights(in: NeuronFixtures.mlp(), configuration: .init(sparsity: 0.9))
        let r = try clusterNeurons(in: pruned.graph, configuration: .init(size: .reduction(0.5), mode: .sphericalWeighted))
        let x = NeuronFixtures.input([5, 12])
        #expect(NeuronFixtures.relative(try NeuronFixtures.outputs(r.graph, x), try NeuronFixtures.outputs(r.denseGraph, x)) <= 1e-5)
        let footprint = ModelFootprint(original: NeuronFixtures.mlp(), pruning: pruned, neurons: r)
        #expect(footprint.totalBytes == footprint.denseBytes - r.denseBytes + r.storedBytes)
        #expect(throws: CompressionError.self) { try pruneWeights(in: NeuronFixtures.mlp(), configuration: .init(sparsity: 1)) }
    }
}

extension OnnxRuntimeExportTests {
    @Test(.enabled(if: python != nil, "no Python with onnxruntime"), arguments: NeuronClusteringConfiguration.Mode.allCases)
    func sharedColumnFilesRunInOnnxRuntime(_ mode: NeuronClusteringConfiguration.Mode) throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, graph, shape) in [("mlp", NeuronFixtures.mlp(activation: "Sigmoid"), [5, 12]), ("conv", NeuronFixtures.convHead(globalPool: false), [3, 3, 4, 4])] {
            let r = try clusterNeurons(in: graph, configuration: .init(size: .reduction(0.5), mode: mode))
            let path = dir.appendingPathComponent("\(name).onnx").path, inputPath = dir.appendingPathComponent("\(name).npy").path
            try ONNXModelFile.save(r.graph, to: path)
            let x = NeuronFixtures.input(shape)
            try NPYFile.write(.float(x), to: inputPath)
            let script = """
            import sys, numpy as np, onnxruntime as ort
            s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
            y = s.run(None, {"x": np.load(sys.argv[2])})[0]
            print(" ".join(repr(float(v)) for v in y.ravel()))
            """
            let (status, text) = try Self.runPython(script, [path, inputPath])
            #expect(status == 0)
            let theirs = text.split(separator: " ").compactMap { Float($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let ours = try NeuronFixtures.outputs(try ONNXModelFile.load(path), x)
            #expect(theirs.count == ours.count)
            #expect(NeuronFixtures.relative(ours, theirs) <= 1e-5, "\(name) \(mode)")
        }
    }
}
