import Clustering
import Compression
import Compute
import Datasets
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import Training
import _TestSupport

@Suite struct ScalarKMeansTests {
    /// A plain reference: Lloyd with quantile seeds and brute-force assignment, O(n·K) per iteration.
    func referenceInertia(_ x: [Float], k: Int) -> Double {
        let s = x.sorted()
        var c = (0..<k).map { j -> Float in
            let p = (Double(j) + 0.5) / Double(k) * Double(s.count - 1), i = Int(p)
            return s[i] + Float(p - Double(i)) * (s[min(i + 1, s.count - 1)] - s[i])
        }
        var inertia = Double.infinity
        for _ in 0..<200 {
            var sum = [Double](repeating: 0, count: k), count = [Double](repeating: 0, count: k)
            var e = 0.0
            for v in x {
                let j = (0..<k).min { abs(v - c[$0]) < abs(v - c[$1]) }!
                sum[j] += Double(v); count[j] += 1; e += Double((v - c[j]) * (v - c[j]))
            }
            inertia = e
            for j in 0..<k where count[j] > 0 { c[j] = Float(sum[j] / count[j]) }
        }
        return inertia
    }

    @Test func asManyEntriesAsDistinctValuesIsExact() {
        let values: [Float] = [3, -1, 0.5, 3, -1, 7, 0.5, 0.5]
        let r = ScalarKMeans.fit(values, clusters: 4)
        #expect(r.inertia < 1e-9)
        #expect(Set(r.centroids) == Set([-1, 0.5, 3, 7]))
    }

    @Test(arguments: [2, 4, 16]) func noWorseThanTheReference(_ k: Int) {
        var g = SeededGenerator(seed: UInt64(k))
        let x = (0..<3000).map { _ in Float(Double.random(in: -1...1, using: &g) * Double.random(in: 0...1, using: &g)) }
        let ours = ScalarKMeans.fit(x, clusters: k)
        #expect(ours.inertia <= referenceInertia(x, k: k) * (1 + 1e-6))
        #expect(ours.centroids == ours.centroids.sorted())
        // The reported inertia is the error of nearest-entry assignment.
        let mids = ScalarKMeans.midpoints(ours.centroids)
        let e = mids.withUnsafeBufferPointer { m in
            x.reduce(0.0) { acc, v in let c = ours.centroids[ScalarKMeans.nearest(v, midpoints: m)]; return acc + Double((v - c) * (v - c)) }
        }
        #expect(abs(e - ours.inertia) <= 1e-6 * max(1, e))
    }

    /// The block-counting and binary-search assigners agree with `nearest` (ties to the upper entry) for every K,
    /// including values exactly on a midpoint and runs shorter than a block.
    @Test(arguments: [1, 2, 3, 16, 17, 64, 256]) func assignerMatchesNearest(_ k: Int) {
        var g = SeededGenerator(seed: UInt64(k) &+ 7)
        let centroids = (0..<k).map { _ in Float(Int.random(in: -40...40, using: &g)) / 8 }.sorted()
        let mids = ScalarKMeans.midpoints(centroids)
        var x = (0..<1037).map { _ in Float.random(in: -6...6, using: &g) }
        x += mids + centroids
        var out = [Int32](repeating: -1, count: x.count)
        x.withUnsafeBufferPointer { v in out.withUnsafeMutableBufferPointer { ScalarKMeans.Assigner(ascending: centroids).assign(v, to: $0.baseAddress!) } }
        mids.withUnsafeBufferPointer { m in
            for (v, j) in zip(x, out) { #expect(Int(j) == ScalarKMeans.nearest(v, midpoints: m)) }
        }
    }

    /// One workspace fits groups of different sizes in a row with the results of fresh ones; zeros can be left out.
    @Test func workspaceReuseAndExcludedZeros() {
        var g = SeededGenerator(seed: 3)
        let ws = ScalarKMeans.Workspace()
        for n in [5000, 70, 20_000, 300] {
            let x = (0..<n).map { i in i % 3 == 0 ? 0 : Float.random(in: -1...1, using: &g) }
            let reused = x.withUnsafeBufferPointer { ScalarKMeans.fit($0, clusters: 8, workspace: ws) }
            #expect(reused == ScalarKMeans.fit(x, clusters: 8))
            let noZeros = x.withUnsafeBufferPointer { ScalarKMeans.fit($0, clusters: 8, excludingZeros: true, workspace: ws) }
            #expect(noZeros == ScalarKMeans.fit(x.filter { $0 != 0 }, clusters: 8))
        }
    }

    @Test func weightsPullCentroids() {
        let x: [Float] = [0, 1, 10, 11]
        let r = ScalarKMeans.fit(x, weights: [1, 100, 1, 1], clusters: 2)
        #expect(abs(r.centroids[0] - 100 / 101.0) < 1e-5)
    }
}

@Suite struct PalettizationTests {
    func tiny(_ name: String) throws -> Graph { try ONNXModelFile.load(Fixtures.path("models/\(name).onnx")) }

    func config(_ o: WeightFormOverride, layers: [PalettizationConfiguration.LayerOverride] = [],
                opTypes: [String: WeightFormOverride] = [:]) -> PalettizationConfiguration {
        var global = o
        global.form = .palettize
        return PalettizationConfiguration(global: global, opTypes: opTypes, layers: layers)
    }

    /// Each group of output channels holds at most K distinct values; the codebook graph computes what the dense one does.
    @Test(arguments: [("tiny_vgg_opset13", 2), ("tiny_mobilenetv2_opset13", 3), ("tiny_alexnet_opset13", 1)])
    func groupedLUTsHoldKValuesAndRunLikeDense(_ model: String, _ bits: Int) throws {
        let g = try tiny(model)
        let r = try palettizeWeights(in: g, configuration: config(.init(bits: bits, granularity: .perGroupedChannel, groupSize: 4)))
        #expect(!r.weights.isEmpty)
        for w in r.weights {
            let rebuilt = try #require(r.denseGraph.initializers[w.layout.weight]?.floatTensor)
            let rows = w.layout.rows, columns = w.layout.columns
            // Canonical rows of the rebuilt weight, group by group.
            let canonical = w.layout.transposed
                ? (0..<rows * columns).map { i in rebuilt.scalars[(i % columns) * rows + i / columns] } : rebuilt.scalars
            for start in stride(from: 0, to: rows, by: 4) {
                let group = canonical[start * columns..<min(rows, start + 4) * columns]
                #expect(Set(group).count <= 1 << bits, "\(w.layout.weight) rows \(start)…")
            }
        }
        let x = try TestSupport.readFloat(Fixtures.path("models/\(model).input.npy"))
        let a = try Executor(graph: r.graph)(x), b = try Executor(graph: r.denseGraph)(x)
        #expect(TestSupport.maxAbsDifference(a.scalars, b.scalars) <= 1e-5)
    }

    /// What `write(into:)` puts in a graph reads back identically, also after an ONNX file round trip.
    @Test(arguments: [EntryPrecision.fp32, .fp16, .int8])
    func layoutReadsBackAfterSaving(_ precision: EntryPrecision) throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = try tiny("tiny_alexnet_opset13")
        let r = try palettizeWeights(in: g, configuration: config(.init(bits: 3, granularity: .perGroupedChannel, groupSize: 3,
                                                                          lut: precision, perChannelScale: true)))
        let path = dir.appendingPathComponent("p.onnx").path
        try ONNXModelFile.save(r.graph, to: path)
        let loaded = try ONNXModelFile.load(path)
        let layouts = WeightLayout.recorded(in: loaded)
        #expect(layouts == r.weights.map(\.layout))
        for w in r.weights {
            let back = try CompressedWeight.read(w.layout, from: loaded)
            #expect(back.indices == w.indices)
            #expect(TestSupport.maxAbsDifference(back.codebook, w.codebook) <= 1e-6 * (w.codebook.map(abs).max() ?? 1))
            #expect(back.reconstructed().scalars == r.denseGraph.initializers[w.layout.weight]?.floatTensor?.scalars || precision == .int8)
        }
    }

    @Test func vectorsAndNetworkCodebooks() throws {
        let g = try tiny("tiny_vgg_opset13")
        let r = try palettizeWeights(in: g, configuration: config(.init(bits: 4, granularity: .network, clusterDim: 2)))
        let codebooks = Set(r.weights.map(\.layout.codebook))
        // One shared codebook for every weight whose input axis is a multiple of 2; the first conv (1·3·3) falls back.
        #expect(codebooks.count == 2)
        #expect(r.layers.contains { $0.note != nil && $0.form == "scalar" })
        #expect(r.sharedCodebookBytes == 16 * 2 * 2 + 4 * 2)  // vectors, and the fallback: 2-bit scalar
        let x = try TestSupport.readFloat(Fixtures.path("models/tiny_vgg_opset13.input.npy"))
        #expect(TestSupport.maxAbsDifference(try Executor(graph: r.graph)(x).scalars, try Executor(graph: r.denseGraph)(x).scalars) <= 1e-5)
    }

    @Test func layeredConfigurationResolvesInOrder() throws {
        let g = try tiny("tiny_alexnet_opset13")
        let gemm = try #require(g.nodes.first { $0.opType == "Gemm" })
        let c = config(.init(bits: 4), layers: [.init(name: gemm.name, override: .init(form: .dense))],
                       opTypes: ["Gemm": .init(bits: 2), "Conv": .init(granularity: .perChannel)])
        let r = try palettizeWeights(in: g, configuration: c)
        #expect(!r.layers.contains { $0.layer == gemm.name })
        #expect(r.layers.filter { $0.opType == "Gemm" }.allSatisfy { $0.bits == 2 })
        #expect(r.layers.filter { $0.opType == "Conv" }.allSatisfy { $0.bits == 4 && $0.granularity == "per-channel" })
        // The JSON plan decodes to the same configuration.
        let plan = """
        {"global": {"form": "palettize", "bits": 4}, "op_types": {"Gemm": {"bits": 2}, "Conv": {"granularity": "per-channel"}},
         "layers": [{"name": "\(gemm.name)", "form": "dense"}]}
        """
        #expect(try JSONDecoder().decode(PalettizationConfiguration.self, from: Data(plan.utf8)) == c)
    }

    @Test func badSettingsNameTheField() throws {
        let g = try tiny("tiny_alexnet_opset13")
        for (override, field) in [(WeightFormOverride(bits: 0), "bits"), (.init(bits: 9), "bits"), (.init(groupSize: 0), "group_size"),
                                  (.init(clusterDim: 100), "cluster_dim"), (.init(bits: 21, clusterDim: 2), "bits")] {
            #expect(throws: ConfigurationError.self) { try palettizeWeights(in: g, configuration: config(override)) }
            do { _ = try palettizeWeights(in: g, configuration: config(override)) } catch let e as ConfigurationError { #expect(e.field == field) }
        }
        // A layer pattern that matches nothing, a vector longer than a layer's input axis.
        #expect(throws: ConfigurationError.self) {
            try palettizeWeights(in: g, configuration: config(.init(bits: 4), layers: [.init(name: "nope*", override: .init(bits: 2))]))
        }
        #expect(throws: ConfigurationError.self) { try palettizeWeights(in: g, configuration: config(.init(bits: 4, clusterDim: 64))) }
        var nan = g
        let name = try #require(g.nodes.first { $0.opType == "Conv" }?.inputs[1])
        var t = try #require(g.initializers[name]?.floatTensor)
        t.scalars[0] = .nan
        nan.initializers[name] = .float(t)
        #expect(throws: CompressionError.nonFinite(tensor: name)) { try palettizeWeights(in: nan, configuration: config(.init(bits: 4))) }
    }

    @Test func prunedZerosStayExactlyZero() throws {
        let g = try tiny("tiny_alexnet_opset13")
        let result = try compress(g, configuration: .init(pruning: .init(sparsity: 0.7),
                                                          palettization: config(.init(bits: 2, granularity: .perTensor)), format: .dense))
        for layer in try #require(result.pruning?.layers) {
            let before = try #require(result.pruning?.graph.initializers[layer.weightName]?.floatTensor?.scalars)
            let after = try #require(result.graph.initializers[layer.weightName]?.floatTensor?.scalars)
            #expect(zip(before, after).allSatisfy { $0 != 0 || $1 == 0 })
        }
    }

    /// The kernel seed is a preset of the same layout: its codebook at fp16 is stored, counted and rebuilt as fp16.
    @Test func kernelCodebooksAtHalfPrecision() throws {
        let g = try tiny("tiny_vgg_opset13")
        var config = KernelClusteringConfiguration(size: .reduction(0.5), mode: .scaled)
        let full = try clusterKernels(in: g, configuration: config)
        config.codebookPrecision = .fp16
        let half = try clusterKernels(in: g, configuration: config)
        #expect(half.footprint.codebookBytes * 2 == full.footprint.codebookBytes)
        #expect(half.codebooks.allSatisfy { $0.entries.allSatisfy { Float(halfBits: $0.halfBits) == $0 } })
        let saved = try ONNXModelFile.decode(try ONNXModelFile.encode(half.codebookGraph()))
        #expect(WeightLayout.recorded(in: saved).allSatisfy { $0.precision == .fp16 && $0.vectorScaleBits == 16 })
        let x = try TestSupport.readFloat(Fixtures.path("models/tiny_vgg_opset13.input.npy"))
        #expect(TestSupport.maxAbsDifference(try Executor(graph: saved)(x).scalars, try Executor(graph: half.graph)(x).scalars) <= 1e-5)
    }

    @Test func footprintCountsCodebooksIndicesAndScales() throws {
        let g = try tiny("tiny_vgg_opset13")
        let r = try compress(g, configuration: .init(palettization: config(.init(bits: 3, granularity: .perGroupedChannel, groupSize: 4,
                                                                                  perChannelScale: true))))
        let p = try #require(r.palettization)
        for w in p.weights {
            let l = w.layout
            // fp16 entries per group, 3 bits per weight bit-packed, one fp16 scale per output channel.
            let expected = l.groups * 8 * 2 + (l.rows * l.columns * 3 + 7) / 8 + l.rows * 2
            #expect(p.layers.first { $0.weight == l.weight }?.storedBytes == expected)
        }
        #expect(r.footprintBytes == r.denseBytes - p.denseBytes + p.storedBytes)
    }
}

extension OnnxRuntimeExportTests {
    /// Every palettized form runs unchanged in onnxruntime and computes what our executor computes.
    @Test(.enabled(if: python != nil, "no Python with onnxruntime"),
          arguments: [WeightFormOverride(bits: 3, granularity: .perGroupedChannel, groupSize: 4),
                      WeightFormOverride(bits: 4, granularity: .perTensor, lut: .int8, perChannelScale: true),
                      WeightFormOverride(bits: 4, granularity: .network, clusterDim: 2),
                      WeightFormOverride(bits: 10, granularity: .perTensor, clusterDim: 4, lut: .fp32)])
    func palettizedFilesRunInOnnxRuntime(_ form: WeightFormOverride) throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for model in ["tiny_mobilenetv2_opset13", "tiny_alexnet_opset13"] {
            var global = form
            global.form = .palettize
            let r = try palettizeWeights(in: try ONNXModelFile.load(Fixtures.path("models/\(model).onnx")),
                                         configuration: PalettizationConfiguration(global: global))
            let codebook = dir.appendingPathComponent("\(model).onnx").path, dense = dir.appendingPathComponent("\(model)-dense.onnx").path
            try ONNXModelFile.save(r.graph, to: codebook)
            try ONNXModelFile.save(r.denseGraph, to: dense)
            let input = Fixtures.path("models/\(model).input.npy")
            let script = """
            import sys, numpy as np, onnxruntime as ort
            x = np.load(sys.argv[3])
            a, b = (ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {ort.InferenceSession(p).get_inputs()[0].name: x})[0] for p in sys.argv[1:3])
            np.save(sys.argv[4], a)
            print(float(np.abs(a - b).max()))
            """
            let ortOut = dir.appendingPathComponent("ort.npy").path
            let (status, text) = try Self.runPython(script, [codebook, dense, input, ortOut])
            #expect(status == 0, "\(model)")
            let difference = try #require(Float(text.trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(difference <= 1e-5, "codebook vs dense in onnxruntime, \(model)")
            let ours = try Executor(graph: try ONNXModelFile.load(codebook))(try TestSupport.readFloat(input))
            #expect(TestSupport.maxAbsDifference(ours.scalars, try TestSupport.readFloat(ortOut).scalars) <= 1e-4, "ours vs onnxruntime, \(model)")
        }
    }
}

@Suite(.serialized) struct PalettizationCLITests {
    func expectOneLineError(_ arguments: [String], containing text: String) throws {
        try CLITests().expectOneLineError(arguments, containing: text)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func compressBitsPrintsTheReport() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("p.onnx").path
        let result = try CLI.run(["compress", "-o", out, "--bits", "4", "--granularity", "per-grouped-channel", "--group-size", "16",
                                  "--format", "codebook", "--evaluate", "--limit", "64", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in ["top1", "footprint_bytes", "dense_bytes", "compression_ratio", "file_bytes", "clustering_seconds", "layers", "bits_per_weight"] {
            #expect(object[key] != nil, "\(key)")
        }
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(!layers.isEmpty)
        for key in ["form", "bits", "clusters", "stored_bytes", "dense_bytes", "relative_error", "granularity"] { #expect(layers[0][key] != nil, "\(key)") }
        #expect((object["top1"] as? Double ?? 0) > 0.8)
        #expect((object["file_bytes"] as? Int ?? 0) > 0)
    }

    @Test func versionIsPrinted() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0 && result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.5.0")
    }

    @Test func badPalettizationInputIsOneLine() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("never.onnx").path
        try expectOneLineError(["compress", "-o", out, "--bits", "0"], containing: "--bits must be between 1 and 8")
        try expectOneLineError(["compress", "-o", out, "--bits", "9"], containing: "--bits must be between 1 and 8")
        try expectOneLineError(["compress", "-o", out, "--bits", "4", "--group-size", "0"], containing: "--group-size")
        try expectOneLineError(["compress", "-o", out, "--bits", "4", "--cluster-dim", "4096"], containing: "--cluster-dim")
        let plan = dir.appendingPathComponent("plan.json").path
        try Data(#"{"global": {"bits": 4}, "layers": [{"name": "no-such-layer", "bits": 2}]}"#.utf8).write(to: URL(fileURLWithPath: plan))
        try expectOneLineError(["compress", "-o", out, "--config", plan], containing: "no-such-layer")
        try Data(#"{"global": {"bits": "four"}}"#.utf8).write(to: URL(fileURLWithPath: plan))
        try expectOneLineError(["compress", "-o", out, "--config", plan], containing: "global.bits")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: DatasetSource.defaultFashionMNIST), "Fashion-MNIST is not installed"))
    func sweepPutsEveryFamilyOnOneChart() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try CLI.run(["sweep", "--bits", "4,2", "--granularity", "per-tensor,per-grouped-channel", "--kernel-reduction", "0.9",
                                  "--limit", "16", "--out", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        let csv = try String(contentsOfFile: dir.appendingPathComponent("sweep.csv").path, encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 1 + 4 + 1)
        let svg = try String(contentsOfFile: dir.appendingPathComponent("sweep.svg").path, encoding: .utf8)
        #expect(svg.contains("scalar per-grouped-channel") && svg.contains("plain") && svg.contains("bits per weight"))
    }
}

@Suite struct PalettizationTrainingTests {
    /// Every LUT entry knows how many weights it stands for (through the fp16 Cast), so its gradient can be their mean.
    @Test func lutEntriesCountTheirWeights() throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let global = WeightFormOverride(form: .palettize, bits: 2, granularity: .perGroupedChannel, groupSize: 4)
        let r = try palettizeWeights(in: graph, configuration: PalettizationConfiguration(global: global))
        let counts = try Backpropagation(graph: r.graph).gatherCounts
        for w in r.weights {
            let c = try #require(counts[w.layout.codebook])
            #expect(c.count == w.layout.groups * w.layout.entries)
            var expected = [Float](repeating: 0, count: c.count)
            let perGroup = w.layout.groupSize * w.layout.columns
            for (i, j) in w.indices.enumerated() { expected[(i / perGroup) * w.layout.entries + Int(j)] += 1 }
            #expect(c == expected)
            #expect(w.layout.origin == .palettization)
        }
    }

    /// Fine-tuning a 2-bit per-grouped-channel model trains the LUT entries (and the re-assignment moves weights
    /// between them) while every group keeps at most 4 distinct values.

    @Test(arguments: [false, true])
    func fineTuningKeepsTheLUTs(_ reassign: Bool) throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let global = WeightFormOverride(form: .palettize, bits: 2, granularity: .perGroupedChannel, groupSize: 4)
        let r = try palettizeWeights(in: graph, configuration: PalettizationConfiguration(global: global))
        let structure = CodebookStructure(r.graph)
        let shadows = Dictionary(uniqueKeysWithValues: structure.layouts.map { ($0.weight, graph.initializers[$0.weight]!.floatTensor!) })
        let trainer = try Trainer(graph: r.graph, configuration: TrainingTests.quick(3),
                                  reassignment: reassign ? Reassignment(every: 1, shadows: shadows) { try structure.reassigned($0, to: $1) } : nil)
        let reports = try trainer.train(try TrainingTests.data())
        let trained = trainer.graph
        if reassign { #expect(reports.contains { ($0.reassigned ?? 0) > 0 }) }
        let folded = try Executor(graph: trained).foldedGraph()
        for layout in structure.layouts {
            let before = try CompressedWeight.read(layout, from: r.graph), after = try CompressedWeight.read(layout, from: trained)
            #expect(before.codebook != after.codebook, "\(layout.weight): the LUT trained")
            let w = try #require(folded.initializers[layout.weight]?.floatTensor)
            #expect(w.scalars == after.reconstructed().scalars)
            let columns = layout.columns
            let canonical = layout.transposed ? (0..<layout.rows * columns).map { i in w.scalars[(i % columns) * layout.rows + i / columns] } : w.scalars
            for start in stride(from: 0, to: layout.rows, by: 4) {
                #expect(Set(canonical[start * columns..<min(layout.rows, start + 4) * columns]).count <= 4)
            }
        }
        #expect(Set(trained.initializers.keys) == Set(r.graph.initializers.keys) && trained.storageTypes == r.graph.storageTypes)
    }
}
