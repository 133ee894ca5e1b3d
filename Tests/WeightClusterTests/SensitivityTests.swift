import Clustering
import Compression
import Compute
import Datasets
import Evaluation
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import Testing
import Training
import _TestSupport

@Suite struct SensitivityTests {
    /// Mean softmax cross-entropy of `graph` on image `n` of `data`, in Double from the executor's logits.
    func loss(_ graph: Graph, _ data: ImageDataset, _ n: Int) throws -> Double {
        let y = try Executor(graph: graph)(data.batch(n..<(n + 1))).scalars.map(Double.init)
        let m = y.max()!
        return m + log(y.reduce(0) { $0 + exp($1 - m) }) - y[data.labels[n]]
    }

    /// The diagonal Fisher is Σₙ (∂ℓₙ/∂w)², checked against central differences of the executor's loss per image.
    @Test func fisherIsTheSumOfSquaredPerImageGradients() throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let data = try TrainingTests.data().prefix(4)
        let fisher = try Sensitivity.fisher(graph, images: data)
        #expect(Set(fisher.keys) == ["cw", "w"])  // weights only, not biases
        for (name, element) in [("cw", 0), ("cw", 100), ("w", 3), ("w", 37)] {
            var expected = 0.0
            for n in 0..<data.count {
                var plus = graph, minus = graph
                let h: Float = 1e-2
                var t = graph.initializers[name]!.floatTensor!
                t.scalars[element] += h
                plus.initializers[name] = .float(t)
                t.scalars[element] -= 2 * h
                minus.initializers[name] = .float(t)
                let g = (try loss(plus, data, n) - loss(minus, data, n)) / Double(2 * h)
                expected += g * g
            }
            let got = Double(fisher[name]![element])
            #expect(abs(got - expected) <= 0.02 * expected + 1e-7, "\(name)[\(element)]: \(got) vs \(expected)")
        }
    }

    /// Integer weights act as repeated values.
    @Test func weightedFitEqualsRepeatedValues() {
        var g = SeededGenerator(seed: 5)
        let x = (0..<700).map { _ in Float.random(in: -1...1, using: &g) }
        let w = (0..<700).map { _ in Float(Int.random(in: 0...3, using: &g)) }
        let repeated = zip(x, w).flatMap { [Float](repeating: $0, count: Int($1)) }
        let weighted = ScalarKMeans.fit(x, weights: w, clusters: 6), plain = ScalarKMeans.fit(repeated, clusters: 6)
        // Same objective: the weighted optimum is no worse than the repeated one's (seeds differ: quantiles of x).
        #expect(weighted.inertia <= plain.inertia * 1.05)
        let mids = ScalarKMeans.midpoints(weighted.centroids)
        let e = mids.withUnsafeBufferPointer { m in
            zip(x, w).reduce(0.0) { acc, p in let c = weighted.centroids[ScalarKMeans.nearest(p.0, midpoints: m)]; return acc + Double(p.1 * (p.0 - c) * (p.0 - c)) }
        }
        #expect(abs(e - weighted.inertia) <= 1e-6 * max(1, e))
    }

    /// Heavier weights in a group pull its entries: the weighted error is lower than the plain fit's.
    @Test func importanceLowersTheWeightedError() throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let fisher = try Sensitivity.fisher(graph, images: try TrainingTests.data())
        let config = PalettizationConfiguration(global: .init(form: .palettize, bits: 2, granularity: .perTensor))
        let plain = try palettizeWeights(in: graph, configuration: config, importance: [:])
        let weighted = try palettizeWeights(in: graph, configuration: config, importance: fisher)
        for (p, w) in zip(plain.layers, weighted.layers) {
            let f = fisher[p.weight]!
            let original = graph.initializers[p.weight]!.floatTensor!.scalars
            let rebuilt = plain.denseGraph.initializers[p.weight]!.floatTensor!.scalars
            var plainWeighted = 0.0
            for i in 0..<f.count {
                let d = Double(original[i] - rebuilt[i])
                plainWeighted += Double(f[i]) * d * d
            }
            #expect(try #require(w.weightedError) <= plainWeighted * 1.0001, "\(p.weight)")
        }
        #expect(throws: CompressionError.self) { try palettizeWeights(in: graph, configuration: config, importance: ["cw": [1, 2]]) }
    }

    /// The four-layer fixture, equal k-means weights, and an allocation cost: each weight's squared error, reshaped
    /// by `shape` (the weight's name and its error → its cost).
    static func allocationFixture(_ shape: @escaping @Sendable (String, Double) -> Double)
        -> (graph: Graph, ones: [String: [Float]], base: PalettizationConfiguration, cost: AllocationCost) {
        let graph = NeuronFixtures.mlp()
        let ones = Dictionary(uniqueKeysWithValues: ["w1", "w2", "w3", "w4"].map { ($0, [Float](repeating: 1, count: graph.initializers[$0]!.floatTensor!.count)) })
        let base = PalettizationConfiguration(global: .init(form: .palettize, granularity: .perTensor, lut: .fp16))
        let cost: AllocationCost = { name, rebuilt in
            let original = graph.initializers[name]!.floatTensor!.scalars
            return shape(name, zip(original, rebuilt.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) })
        }
        return (graph, ones, base, cost)
    }

    /// The allocation meets the budget, spends it where the measured cost falls most, and says which size is the
    /// smallest when the target is below it.
    @Test func allocationMeetsTheBudgetAndFollowsTheCost() throws {
        // w2's errors cost a hundred times more than the others'.
        let (graph, ones, base, cost) = Self.allocationFixture { name, e in name == "w2" ? 100 * e : e }
        for target in [3.0, 4.0, 6.0] {
            let a = try allocateBits(in: graph, configuration: base, bitsPerWeight: target, importance: ones, cost: cost)
            let r = try palettizeWeights(in: graph, configuration: a.configuration, importance: ones)
            #expect(Double(r.storedBytes * 8) / Double(r.denseBytes / 4) <= target + 1e-9)
            let bits = Dictionary(uniqueKeysWithValues: a.choices.map { ($0.weight, $0.bits) })
            #expect(bits["w2"]! == bits.values.max()!)
        }
        #expect { try allocateBits(in: graph, configuration: base, bitsPerWeight: 0.5, importance: ones) } throws: { error in
            "\(error)".contains("below the smallest size any candidate reaches")
        }
        #expect(throws: ConfigurationError.self) { try allocateBits(in: graph, configuration: base, bitsPerWeight: 2, importance: [:]) }
    }

    /// Curves measured once give, for every target, the plan `allocateBits` gives (which measures each time); curves
    /// holding vector candidates too give it again when restricted to the scalar ones.
    @Test func curvesMeasuredOnceGiveTheSamePlans() throws {
        let graph = NeuronFixtures.mlp()
        let ones = Dictionary(uniqueKeysWithValues: ["w1", "w2", "w3", "w4"].map { ($0, [Float](repeating: 1, count: graph.initializers[$0]!.floatTensor!.count)) })
        let base = PalettizationConfiguration(global: .init(form: .palettize, granularity: .perTensor, lut: .fp16))
        let scalar = try AllocationCurves(measuring: graph, configuration: base, importance: ones)
        let mixed = try AllocationCurves(measuring: graph, configuration: base, candidates: AllocationCandidate.scalar + AllocationCandidate.pairs,
                                         importance: ones)
        for target in [2.0, 3.0, 4.5, 6.0] {
            let each = try allocateBits(in: graph, configuration: base, bitsPerWeight: target, importance: ones)
            #expect(try scalar.allocate(bitsPerWeight: target).choices == each.choices)
            #expect(try scalar.allocate(bitsPerWeight: target).configuration == each.configuration)
            #expect(try mixed.restricted(to: AllocationCandidate.scalar).allocate(bitsPerWeight: target).configuration == each.configuration)
        }
        #expect { try scalar.allocate(bitsPerWeight: 0.5) } throws: { "\($0)".contains("below the smallest size any candidate reaches") }
    }

    /// The plan is exact for the measured costs: no plan of the same forms that fits the budget — uniform or mixed —
    /// costs less in sum (checked against every plan of the fixture's four weights).
    @Test func allocationIsTheLeastCostPlanWithinTheBudget() throws {
        // Costs that are not convex in the bytes: greedy marginal gain can stop short of the best plan.
        let (graph, ones, base, cost) = Self.allocationFixture { name, e in name == "w3" ? e * e * 1e3 : e }
        let curves = try AllocationCurves(measuring: graph, configuration: base, candidates: AllocationCandidate.scalar + AllocationCandidate.pairs,
                                          importance: ones, cost: cost)
        let lists = curves.weights.map { curves.curves[$0]! }
        for target in [1.5, 2.5, 3.25, 4.0] {
            let a = try curves.allocate(bitsPerWeight: target)
            let chosen = a.choices.reduce(0) { $0 + $1.error }
            #expect(a.choices.reduce(0) { $0 + $1.storedBytes } <= a.budgetBytes)
            // Every plan: one choice per weight.
            var leastWithin = Double.infinity
            func visit(_ l: Int, _ bytes: Int, _ error: Double) {
                guard bytes <= a.budgetBytes else { return }
                guard l < lists.count else { leastWithin = min(leastWithin, error); return }
                for c in lists[l] { visit(l + 1, bytes + c.storedBytes, error + c.error) }
            }
            visit(0, 0, 0)
            #expect(abs(chosen - leastWithin) <= 1e-9 * max(1, leastWithin), "target \(target)")
        }
    }

    /// With vector candidates, every weight's curve holds pairs of weights at 1, 2, 3 and 5 bits; the plan sets
    /// cluster_dim where it chose a pair, and palettizing with the plan gives the chosen forms and sizes within budget.
    @Test func vectorCandidatesEnterThePlan() throws {
        let graph = NeuronFixtures.mlp()
        let ones = Dictionary(uniqueKeysWithValues: ["w1", "w2", "w3", "w4"].map { ($0, [Float](repeating: 1, count: graph.initializers[$0]!.floatTensor!.count)) })
        let base = PalettizationConfiguration(global: .init(form: .palettize, granularity: .perTensor, lut: .fp16))
        let curves = try AllocationCurves(measuring: graph, configuration: base, candidates: AllocationCandidate.scalar + AllocationCandidate.pairs,
                                          importance: ones)
        for weight in curves.weights {
            #expect(curves.curves[weight]!.filter { $0.clusterDim == 2 }.map(\.bits) == [1, 2, 3, 5], "\(weight)")
        }
        var vectors = 0
        for target in [1.25, 1.5, 2.5, 3.0] {
            let a = try curves.allocate(bitsPerWeight: target)
            let r = try palettizeWeights(in: graph, configuration: a.configuration, importance: ones)
            #expect(Double(r.storedBytes * 8) / Double(r.denseBytes / 4) <= target + 1e-9)
            for (choice, layer) in zip(a.choices, r.layers) {
                #expect(choice.weight == layer.weight && choice.bits == layer.bits && (choice.clusterDim ?? 1) == layer.clusterDim)
                #expect(choice.storedBytes == layer.storedBytes)
            }
            vectors += a.choices.filter { $0.clusterDim == 2 }.count
        }
        #expect(vectors > 0)
    }

    /// A whole-model size target (`--target-size`): through `compress`, the footprint — palettized weights plus
    /// everything left dense — is at most the target, and a target below the smallest reachable model says that size.
    @Test func allocationMeetsAWholeModelTarget() throws {
        let graph = NeuronFixtures.mlp()
        let ones = Dictionary(uniqueKeysWithValues: ["w1", "w2", "w3", "w4"].map { ($0, [Float](repeating: 1, count: graph.initializers[$0]!.floatTensor!.count)) })
        let palettization = PalettizationConfiguration(global: .init(form: .palettize, granularity: .perTensor, lut: .fp16))
        let dense = graph.parameterCount * 4
        for target in [dense / 8, dense / 5, dense / 3] {
            var config = CompressionConfiguration(palettization: palettization, importance: ones)
            config.targetBytes = target
            let r = try compress(graph, configuration: config)
            #expect(r.footprintBytes <= target, "\(r.footprintBytes) > \(target)")
            #expect(r.footprintBytes > target * 3 / 4, "\(r.footprintBytes) leaves most of \(target) unused")
        }
        var config = CompressionConfiguration(palettization: palettization, importance: ones)
        config.targetBytes = dense / 100
        #expect { try compress(graph, configuration: config) } throws: { "\($0)".contains("is below the smallest model any candidate reaches") }
    }

    @Test(arguments: OutputDivergence.Measure.allCases)
    func divergenceIsZeroForTheSameModelAndGrowsWithTheChange(measure: OutputDivergence.Measure) throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let d = try OutputDivergence(reference: graph, images: try TrainingTests.data(), measure: measure)
        #expect(try d.divergence(graph) == 0)
        var w = graph.initializers["w"]!.floatTensor!
        w.scalars = w.scalars.map { $0 * 0.9 }
        let small = try d.replacing("w", with: w)
        w.scalars = w.scalars.map { _ in 0 }
        let large = try d.replacing("w", with: w)
        #expect(small > 0 && large > small)
    }

    /// Six seeded random 28×28 images and their labels as `--data X.npy,Y.npy` files in `dir`.
    static func randomImages(in dir: URL) throws -> (images: String, labels: String) {
        let images = dir.appendingPathComponent("x.npy").path, labels = dir.appendingPathComponent("y.npy").path
        var rng = SeededGenerator(seed: 9)
        try NPYFile.write(.uint8(Tensor(shape: [6, 28, 28], scalars: (0..<(6 * 784)).map { _ in UInt8.random(in: 0...255, using: &rng) })), to: images)
        try NPYFile.write(.int64(Tensor(shape: [6], scalars: [0, 1, 2, 3, 4, 5])), to: labels)
        return (images, labels)
    }

    /// `compress --calibration N --compensate` through the CLI: every Conv/Gemm layer reports that compensation chose
    /// its indices, and the model still has 2-bit LUTs.
    @Test func compensateThroughTheCommandLine() throws {
        let dir = try CLI.temporaryDirectory()
        let (images, labels) = try Self.randomImages(in: dir)
        let out = dir.appendingPathComponent("c.onnx").path
        let result = try CLI.run(["compress", Fixtures.path("models/tiny_vgg_opset13.onnx"), "-o", out, "--bits", "2", "--calibration", "6",
                                  "--compensate", "--data", "\(images),\(labels)", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let layers = try #require(json["layers"] as? [[String: Any]])
        #expect(!layers.isEmpty && layers.allSatisfy { $0["compensated"] as? Bool == true && $0["bits"] as? Int == 2 }, "\(layers)")
        #expect(!result.stderr.contains("warning"))
        // A depthwise layer has no single input Gram matrix: left to nearest assignment, named in one warning line.
        let depthwise = Graph(nodes: [
            Node(name: "conv", opType: "Conv", inputs: ["input", "k1"], outputs: ["a"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "dw", opType: "Conv", inputs: ["a", "k2"], outputs: ["b"], attributes: ["group": .int(4), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["b"], outputs: ["c"]),
            Node(name: "pool", opType: "GlobalAveragePool", inputs: ["c"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "w"], outputs: ["logits"], attributes: ["transB": .int(1)])],
            initializers: ["k1": .float(GradientCheck.random([4, 1, 3, 3], seed: 1)), "k2": .float(GradientCheck.random([4, 1, 3, 3], seed: 2)),
                           "w": .float(GradientCheck.random([10, 4], seed: 3))],
            inputs: [ValueInfo(name: "input", shape: [.symbolic("N"), .fixed(1), .fixed(32), .fixed(32)])],
            outputs: [ValueInfo(name: "logits", shape: nil)], opsetVersion: 13)
        let model = dir.appendingPathComponent("dw.onnx").path
        try ONNXModelFile.save(depthwise, to: model)
        let mobile = try CLI.run(["compress", model, "-o", out, "--bits", "2", "--calibration", "6",
                                  "--compensate", "--data", "\(images),\(labels)", "--json"])
        #expect(mobile.status == 0, "\(mobile.stderr)")
        let warnings = mobile.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: --compensate left") }
        #expect(warnings.count == 1 && warnings[0].contains("grouped or depthwise"), "\(mobile.stderr)")
    }

    /// The bad inputs that need data, each one line: targets below the smallest reachable size (which the
    /// message gives) and more calibration images than the training split fail; a target above the dense size warns
    /// and compresses. `--allocation-forms scalar+vector` writes a plan with cluster_dim where it chose pairs, and a
    /// sweep over three targets and two sets of forms measures the candidates once and skips the target none reaches.
    @Test func allocationTargetsThroughTheCommandLine() throws {
        let dir = try CLI.temporaryDirectory()
        let (images, labels) = try Self.randomImages(in: dir)
        let model = Fixtures.path("models/tiny_vgg_opset13.onnx"), out = dir.appendingPathComponent("c.onnx").path
        let data = ["--data", "\(images),\(labels)", "--limit", "6"]
        for (arguments, text) in [
            (["--bits-per-weight", "0.1", "--calibration", "6"], "0.1 is below the smallest size any candidate reaches: "),
            (["--target-size", "100", "--calibration", "6"], "100 bytes is below the smallest model any candidate reaches: "),
            (["--bits-per-weight", "2", "--calibration", "7"], "--calibration 7 is more than the 6 images of the training split"),
        ] {
            let result = try CLI.run(["compress", model, "-o", out, "--bits", "2"] + arguments + data)
            #expect(result.status != 0)
            #expect(result.stderr.contains(text) && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        let above = try CLI.run(["compress", model, "-o", out, "--bits", "2", "--target-size", "1GB", "--calibration", "6"] + data)
        #expect(above.status == 0, "\(above.stderr)")
        #expect(above.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: --target-size 1000000000 bytes is not below the dense size") }.count == 1,
                "\(above.stderr)")

        let plan = dir.appendingPathComponent("plan.json").path
        let mixed = try CLI.run(["compress", model, "-o", out, "--bits", "4", "--bits-per-weight", "2.5", "--allocation-forms", "scalar+vector",
                                 "--calibration", "6", "--write-plan", plan, "--json"] + data)
        #expect(mixed.status == 0, "\(mixed.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(mixed.stdout.utf8)) as? [String: Any])
        #expect(try #require(json["bits_per_weight"] as? Double) <= 2.5)
        let written = try JSONDecoder().decode(PalettizationConfiguration.self, from: try Data(contentsOf: URL(fileURLWithPath: plan)))
        let layers = try #require(json["layers"] as? [[String: Any]])
        for layer in layers {
            let entry = try #require(written.layers.last { $0.name == layer["weight"] as? String })
            #expect(entry.override.bits == layer["bits"] as? Int && (entry.override.clusterDim ?? 1) == layer["cluster_dim"] as? Int, "\(layer)")
        }

        let sweep = try CLI.run(["sweep", model, "--bits-per-weight", "2,1.5,0.1", "--allocation-forms", "scalar,scalar+vector",
                                 "--calibration", "6"] + data)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        #expect(sweep.stderr.split(separator: "\n").filter { $0.contains("candidates for") && $0.contains("measured in") }.count == 1, "\(sweep.stderr)")
        #expect(sweep.stdout.split(separator: "\n").filter { $0.contains("allocated per-tensor, scalar+vector") }.count == 2, "\(sweep.stdout)")
        // A target no form reaches is skipped with a warning, not the end of the sweep.
        #expect(sweep.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") && $0.contains("skipped: --bits-per-weight 0.1 is below the smallest size") }.count == 2,
                "\(sweep.stderr)")
        let bad = try CLI.run(["sweep", model, "--bits-per-weight", "2", "--allocation-forms", "vector", "--calibration", "6"] + data)
        #expect(bad.status != 0 && bad.stderr.contains("unknown --allocation-forms 'vector'") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
    }

    @Test func sensitivityFlagsAreChecked() throws {
        let model = Fixtures.path("models/tiny_vgg_opset13.onnx")
        let out = try CLI.temporaryDirectory().appendingPathComponent("never-written.onnx").path
        for (arguments, text) in [
            (["--bits", "2", "--bits-per-weight", "2"], "--bits-per-weight needs --calibration N"),
            (["--bits", "2", "--calibration", "0"], "--calibration must be at least 1 image, got 0"),
            (["--bits", "2", "--bits-per-weight", "0", "--calibration", "4"], "--bits-per-weight must be a positive number"),
            (["--bits", "2", "--write-plan", "p.json"], "--write-plan needs --bits-per-weight"),
            (["--bits", "2", "--allocation-forms", "scalar+vector"], "--allocation-forms needs --bits-per-weight or --target-size"),
            (["--bits", "2", "--compensate"], "--compensate needs --calibration N"),
            (["--bits", "2", "--unweighted"], "--unweighted needs --calibration N"),
            (["--bits", "2", "--target-size", "1MiB"], "--target-size needs --calibration N"),
            (["--bits", "2", "--target-size", "0", "--calibration", "4"], "--target-size must be a positive size"),
            (["--bits", "2", "--target-size", "12 parsecs", "--calibration", "4"], "--target-size must be a positive size"),
            (["--bits", "2", "--target-size", "1MiB", "--bits-per-weight", "2", "--calibration", "4"], "not both"),
        ] {
            let result = try CLI.run(["compress", model, "-o", out] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr.contains(text), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
