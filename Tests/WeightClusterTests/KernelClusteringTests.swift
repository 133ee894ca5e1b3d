import Clustering
import Compression
import Datasets
import Evaluation
import Compute
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import _TestSupport

@Suite struct KernelClusteringTests {
    static func model() throws -> Graph { try ONNXFormatTestLoader.load("models/tiny_resnet_opset13") }
    static func input() throws -> Tensor<Float> { try TestSupport.readFloat(Fixtures.path("models/tiny_resnet_opset13.input.npy")) }

    static func convWeights(_ g: Graph) -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for node in g.nodes where node.opType == "Conv" { result[node.inputs[1]] = g.initializers[node.inputs[1]]?.floatTensor }
        return result
    }

    @Test(arguments: KernelClusteringConfiguration.Mode.allCases)
    func kEqualsNReproducesTheWeights(_ mode: KernelClusteringConfiguration.Mode) throws {
        let g = try Self.model()
        let n = try clusterKernels(in: g, configuration: .init(size: .reduction(0))).footprint.kernels
        let r = try clusterKernels(in: g, configuration: .init(size: .clusters(n), mode: mode, scaleBits: 16))
        #expect(r.footprint.clusters == n)
        for (name, original) in Self.convWeights(g) {
            let clustered = try #require(r.graph.initializers[name]?.floatTensor)
            // Plain: exact. Scaled: the scale is stored in float16, so within half-precision rounding.
            let tolerance: Float = mode == .plain ? 0 : 1e-3 * (original.scalars.map(abs).max() ?? 1)
            #expect(TestSupport.maxAbsDifference(clustered.scalars, original.scalars) <= tolerance, "\(name)")
        }
    }

    @Test func oneClusterGivesTheMeanKernel() throws {
        let g = try Self.model()
        let r = try clusterKernels(in: g, configuration: .init(size: .clusters(1)))
        var sum = [Double](repeating: 0, count: 9), count = 0
        for w in Self.convWeights(g).values where w.shape[2] == 3 {
            for k in 0..<(w.count / 9) { for j in 0..<9 { sum[j] += Double(w.scalars[k * 9 + j]) }; count += 1 }
        }
        let mean = sum.map { Float($0 / Double(count)) }
        for (name, w) in Self.convWeights(r.graph) where w.shape[2] == 3 {
            for k in 0..<(w.count / 9) {
                #expect(TestSupport.maxAbsDifference(Array(w.scalars[k * 9..<k * 9 + 9]), mean) < 1e-6, "\(name)")
            }
        }
    }

    @Test(arguments: KernelClusteringConfiguration.Mode.allCases)
    func sameSeedGivesByteIdenticalFiles(_ mode: KernelClusteringConfiguration.Mode) throws {
        let g = try Self.model()
        let config = KernelClusteringConfiguration(size: .reduction(0.5), mode: mode, seed: 7)
        let a = try clusterKernels(in: g, configuration: config), b = try clusterKernels(in: g, configuration: config)
        #expect(try ONNXModelFile.encode(a.graph) == ONNXModelFile.encode(b.graph))
        #expect(try ONNXModelFile.encode(a.codebookGraph()) == ONNXModelFile.encode(b.codebookGraph()))
    }

    @Test(arguments: [(KernelClusteringConfiguration.Mode.plain, 16), (.scaled, 16), (.scaled, 8)])
    func codebookFileGivesTheDenseLogits(_ setting: (KernelClusteringConfiguration.Mode, Int)) throws {
        let g = try Self.model()
        let r = try clusterKernels(in: g, configuration: .init(size: .reduction(0.7), mode: setting.0, scaleBits: setting.1))
        let codebook = try ONNXModelFile.decode(try ONNXModelFile.encode(r.codebookGraph()))
        let dense = try ONNXModelFile.decode(try ONNXModelFile.encode(r.graph))
        let x = try Self.input()
        let a = try Executor(graph: codebook)(x), b = try Executor(graph: dense)(x)
        #expect(TestSupport.maxAbsDifference(a.scalars, b.scalars) <= 1e-5)
        // The file is really smaller: no float copy of the clustered weights remains.
        for layer in r.layers { #expect(codebook.initializers[layer.weightName] == nil) }
    }

    @Test func scaledKernelsAreScaleTimesCodebookEntry() throws {
        let g = try Self.model()
        let r = try clusterKernels(in: g, configuration: .init(size: .reduction(0.8), mode: .scaled))
        for layer in r.layers {
            let w = try #require(r.graph.initializers[layer.weightName]?.floatTensor)
            let d = layer.shape[2] * layer.shape[3]
            let entries = r.codebooks[layer.codebook].entries
            for (k, index) in layer.indices.enumerated() {
                let scale = try #require(layer.scales)[k]
                #expect(Float(halfBits: scale.halfBits) == scale, "scales are stored as float16")
                for j in 0..<d { #expect(w.scalars[k * d + j] == scale * entries[Int(index) * d + j]) }
            }
        }
    }

    @Test func footprintIsCountedExactly() throws {
        let g = try Self.model()
        let r = try clusterKernels(in: g, configuration: .init(size: .clusters(10), scope: .layer))
        let f = r.footprint
        #expect(f.clusters == 10)
        #expect(f.denseBytes == g.parameterCount * 4)
        let expectedIndexBytes = r.layers.reduce(0) { total, layer in
            total + (layer.indices.count * Footprint.indexBits(clusters: r.codebooks[layer.codebook].count) + 7) / 8
        }
        #expect(f.indexBytes == expectedIndexBytes)
        #expect(f.codebookBytes == r.codebooks.reduce(0) { $0 + $1.entries.count * 4 })
        #expect(f.totalBytes == f.codebookBytes + f.indexBytes + f.restBytes)
        #expect(Footprint.indexBits(clusters: 1) == 0 && Footprint.indexBits(clusters: 2) == 1 && Footprint.indexBits(clusters: 256) == 8
                && Footprint.indexBits(clusters: 257) == 9)
    }

    @Test func excludedLayersStayDense() throws {
        let g = try Self.model()
        let first = try #require(g.nodes.first { $0.opType == "Conv" })
        let r = try clusterKernels(in: g, configuration: .init(size: .reduction(0.9), exclude: [first.name]))
        #expect(r.graph.initializers[first.inputs[1]] == g.initializers[first.inputs[1]])
        #expect(!r.layers.contains { $0.weightName == first.inputs[1] })
    }

    @Test func badSettingsAreRejected() throws {
        let g = try Self.model()
        let n = try clusterKernels(in: g, configuration: .init(size: .reduction(0))).footprint.kernels
        #expect(throws: CompressionError.self) { try clusterKernels(in: g, configuration: .init(size: .clusters(0))) }
        #expect(throws: CompressionError.tooManyClusters(k: n + 1, kernels: n)) { try clusterKernels(in: g, configuration: .init(size: .clusters(n + 1))) }
        #expect(throws: CompressionError.self) { try clusterKernels(in: g, configuration: .init(size: .reduction(1))) }
        #expect(throws: CompressionError.self) { try clusterKernels(in: g, configuration: .init(size: .reduction(-0.1))) }
        #expect(throws: CompressionError.self) { try clusterKernels(in: g, configuration: .init(size: .reduction(0.5), exclude: ["*"])) }
        var broken = g
        let w = try #require(g.nodes.first { $0.opType == "Conv" }).inputs[1]
        var t = try #require(g.initializers[w]?.floatTensor)
        t.scalars[0] = .nan
        broken.initializers[w] = .float(t)
        #expect(throws: CompressionError.nonFinite(tensor: w)) { try clusterKernels(in: broken, configuration: .init(size: .reduction(0.5))) }
        let noConv = try ONNXFormatTestLoader.load("ops/relu")
        #expect(throws: CompressionError.noConvolutions("")) { try clusterKernels(in: noConv, configuration: .init(size: .reduction(0.5))) }
    }
}

@Suite struct CodebookIndexTypeTests {
    /// One 1×1 Conv with 75,000 kernels: K = 300 needs uint16 indices, K = 70,000 the uint16 + uint8 split.
    @Test(arguments: [300, 70_000])
    func wideIndicesRebuildTheWeights(_ k: Int) throws {
        var generator = SeededGenerator(seed: 7)
        let weight = Tensor<Float>(shape: [300, 250, 1, 1], scalars: (0..<75_000).map { _ in Float.random(in: -1...1, using: &generator) })
        let graph = Graph(nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["kernel_shape": .ints([1, 1])])],
                          initializers: ["w": .float(weight)],
                          inputs: [ValueInfo(name: "x", shape: [.fixed(1), .fixed(250), .fixed(2), .fixed(2)])],
                          outputs: [ValueInfo(name: "y", shape: nil)])
        let r = try clusterKernels(in: graph, configuration: .init(size: .clusters(k), maxIterations: 1))
        let codebook = try ONNXModelFile.decode(try ONNXModelFile.encode(r.codebookGraph()))
        let expectedType = k <= 65_536 ? [4] : [4, 2]
        #expect(codebook.initializers.keys.filter { $0.contains("wc_index") }.compactMap { codebook.storageTypes[$0] }.sorted(by: >) == expectedType)
        let rebuilt = try Executor(graph: codebook).constants["w"]?.floatTensor
        #expect(rebuilt == r.graph.initializers["w"]?.floatTensor)
    }
}

/// The exported files in onnxruntime itself, when a Python with onnxruntime is available
/// (`WC_ONNXRUNTIME_PYTHON`, set by Scripts/test.sh, or `python3`).
@Suite struct OnnxRuntimeExportTests {
    static let python: String? = {
        let candidates = [ProcessInfo.processInfo.environment["WC_ONNXRUNTIME_PYTHON"], "/usr/bin/python3", "python3"].compactMap { $0 }
        for candidate in candidates {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [candidate, "-c", "import onnxruntime, numpy"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            if (try? p.run()) != nil { p.waitUntilExit(); if p.terminationStatus == 0 { return candidate } }
        }
        return nil
    }()

    /// Runs `script` with the onnxruntime Python; returns its exit status and standard output.
    static func runPython(_ script: String, _ arguments: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python!, "-c", script] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test(.enabled(if: python != nil, "no Python with onnxruntime"), arguments: KernelClusteringConfiguration.Mode.allCases)
    func codebookAndDenseFilesAgreeInOnnxRuntime(_ mode: KernelClusteringConfiguration.Mode) throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = try ONNXFormatTestLoader.load("models/tiny_resnet_opset13")
        let r = try clusterKernels(in: g, configuration: .init(size: .reduction(0.7), mode: mode))
        let dense = dir.appendingPathComponent("dense.onnx").path, codebook = dir.appendingPathComponent("codebook.onnx").path
        try ONNXModelFile.save(r.graph, to: dense)
        try ONNXModelFile.save(r.codebookGraph(), to: codebook)
        let input = Fixtures.path("models/tiny_resnet_opset13.input.npy")
        let script = """
        import sys, numpy as np, onnxruntime as ort
        x = np.load(sys.argv[3])
        a, b = (ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0] for p in sys.argv[1:3])
        np.save(sys.argv[4], a)
        print(float(np.abs(a - b).max()))
        """
        let ortOut = dir.appendingPathComponent("ort.npy").path
        let (status, text) = try Self.runPython(script, [codebook, dense, input, ortOut])
        #expect(status == 0)
        let difference = try #require(Float(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(difference <= 1e-5, "codebook vs dense in onnxruntime")
        let ours = try Executor(graph: try ONNXModelFile.load(codebook))(try TestSupport.readFloat(input))
        #expect(TestSupport.maxAbsDifference(ours.scalars, try TestSupport.readFloat(ortOut).scalars) <= 1e-4, "ours vs onnxruntime")
    }
}

@Suite struct KernelPresetTests {
    /// The kernel seed is a preset of the palettization engine: the same settings given as a palettization
    /// configuration (vectors of kh·kw, K entries shared network-wide, unit shapes with 16-bit scales, fp32 entries)
    /// give the same weights, bit for bit, in the one layout every form shares.
    @Test(arguments: KernelClusteringConfiguration.Mode.allCases)
    func kernelsAreAPaletteSetting(_ mode: KernelClusteringConfiguration.Mode) throws {
        let graph = try ONNXFormatTestLoader.load("models/tiny_resnet_opset13")
        let kernels = try clusterKernels(in: graph, configuration: .init(size: .reduction(0.8), mode: mode))
        var plan = PalettizationConfiguration()
        for (layer, codebook) in zip(kernels.layers, kernels.layers.map { kernels.codebooks[$0.codebook] }) {
            plan.layers.append(.init(name: layer.weightName, override: WeightFormOverride(
                granularity: .network, clusterDim: codebook.kernelShape.reduce(1, *), lut: .fp32, clusters: codebook.count,
                vectorScaleBits: mode == .scaled ? 16 : nil)))
        }
        let palettes = try palettizeWeights(in: graph, configuration: plan)
        for layer in kernels.layers {
            #expect(palettes.denseGraph.initializers[layer.weightName] == kernels.graph.initializers[layer.weightName], "\(layer.weightName)")
        }
        #expect(abs(palettes.inertia - kernels.inertia) <= 1e-9 * max(1, kernels.inertia))
    }
}

@Suite struct KernelImportanceTests {
    /// A kernel whose weights matter a million times more than the others' is reproduced (almost) exactly.
    @Test func importantKernelsAreReproduced() throws {
        let graph = try ONNXFormatTestLoader.load("models/tiny_resnet_opset13")
        let first = try #require(graph.nodes.first { $0.opType == "Conv" && (graph.initializers[$0.inputs[1]]?.floatTensor?.shape.suffix(2) ?? []) == [3, 3] })
        let name = first.inputs[1], w = graph.initializers[name]!.floatTensor!
        var importance = [Float](repeating: 1, count: w.count)
        for i in 0..<9 { importance[i] = 1e6 }  // kernel W[0, 0]
        let config = KernelClusteringConfiguration(size: .reduction(0.8))
        let plain = try clusterKernels(in: graph, configuration: config)
        let weighted = try clusterKernels(in: graph, configuration: config, importance: [name: importance])
        func error(_ r: KernelClusteringResult) -> Float {
            let rebuilt = r.graph.initializers[name]!.floatTensor!.scalars
            return (0..<9).reduce(0) { $0 + (rebuilt[$1] - w.scalars[$1]) * (rebuilt[$1] - w.scalars[$1]) }
        }
        #expect(error(weighted) <= error(plain))
        #expect(error(weighted) < 1e-6 * max(1, (0..<9).reduce(0) { $0 + w.scalars[$1] * w.scalars[$1] }) || error(plain) == 0)
        #expect(throws: CompressionError.self) { try clusterKernels(in: graph, configuration: config, importance: [name: [1]]) }
        #expect(WeightLayout.recorded(in: weighted.codebookGraph()).allSatisfy { $0.origin == .kernels })
    }
}
