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

@Suite struct TrainingTests {
    /// 16 random 3×4×4 images with labels 0..<5 (the conv-head fixture has 5 outputs).
    static func data() throws -> ImageDataset {
        let x = GradientCheck.random([16, 3, 4, 4], seed: 21, scale: 2)
        return try ImageDataset(images: x, labels: (0..<16).map { $0 % 5 })
    }

    static func quick(_ epochs: Int = 2) -> TrainingConfiguration {
        var c = TrainingConfiguration(epochs: epochs)
        c.batchSize = 4
        c.learningRate = 0.05
        c.augment = true
        c.shift = 1
        return c
    }

    @Test func trainingLowersTheLossAndIsDeterministic() throws {
        var config = Self.quick(8)
        config.schedule = .constant
        func run() throws -> (Graph, [EpochReport]) {
            let trainer = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: config)
            let reports = try trainer.train(try Self.data())
            return (trainer.graph, reports)
        }
        let (a, reports) = try run()
        #expect(reports.count == 8)
        #expect(reports.last!.loss < reports.first!.loss, "\(reports.map(\.loss))")
        let (b, _) = try run()
        for name in a.initializers.keys { #expect(a.initializers[name] == b.initializers[name], "\(name) differs between runs") }
        for optimizer in TrainingConfiguration.Optimizer.allCases {
            for schedule in TrainingConfiguration.Schedule.allCases {
                var c = Self.quick(3)
                c.optimizer = optimizer
                c.schedule = schedule
                c.learningRate = optimizer == .adam ? 0.01 : 0.05
                let r = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: c).train(try Self.data())
                #expect(r.allSatisfy { $0.loss.isFinite }, "\(optimizer) \(schedule)")
            }
        }
    }

    @Test func oneCycleAndCosineSchedules() throws {
        var c = Self.quick()
        c.learningRate = 1
        c.schedule = .oneCycle
        let t = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: c)
        #expect(abs(t.rate(step: 0, of: 100) - 1.0 / 25) < 1e-6)
        #expect(abs(t.rate(step: 30, of: 100) - 1) < 1e-6)
        #expect(t.rate(step: 100, of: 100) < 1e-4)
        c.schedule = .cosine
        let u = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: c)
        #expect(abs(u.rate(step: 50, of: 100) - 0.5) < 1e-6)
    }

    @Test func codebookStaysSharedAndPrunedWeightsStayZero() throws {
        // Kernel clustering (scaled: codebook and per-kernel scales train) + pruning of the FC layer.
        let graph = NeuronFixtures.convHead(globalPool: true)
        let pruned = try pruneWeights(in: graph, configuration: .init(sparsity: 0.5))
        let clustered = try clusterKernels(in: pruned.graph, configuration: .init(size: .reduction(0.5), mode: .scaled))
        let compact = clustered.codebookGraph()
        let trainer = try Trainer(graph: compact, configuration: Self.quick(), masked: ["w"])
        _ = try trainer.train(try Self.data())
        let trained = trainer.graph
        let layout = try #require(WeightLayout.recorded(in: trained).first { $0.weight == "cw" })
        let start = try CompressedWeight.read(layout, from: compact), end = try CompressedWeight.read(layout, from: trained)
        #expect(end.codebook != start.codebook, "the codebook trained")
        #expect(end.vectorScales != start.vectorScales, "the scales trained")
        // Every kernel is still its codebook entry times its scale.
        let book = end.codebook, index = end.indices, scale = end.vectorScales!
        let kernels = try Executor(graph: trained).constants["cw"]!.floatTensor!.scalars
        for k in 0..<index.count {
            for j in 0..<9 { #expect(abs(kernels[k * 9 + j] - scale[k] * book[Int(index[k]) * 9 + j]) < 1e-6) }
        }
        // Pruned weights are still exactly zero; the others moved.
        let before = pruned.graph.initializers["w"]!.floatTensor!.scalars, after = trained.initializers["w"]!.floatTensor!.scalars
        #expect(zip(before, after).allSatisfy { $0 != 0 || $1 == 0 })
        #expect(zip(before, after).contains { $0 != 0 && $0 != $1 })
        // The file keeps the form: the same initializers and storage types.
        #expect(Set(trained.initializers.keys) == Set(compact.initializers.keys) && trained.storageTypes == compact.storageTypes)
    }

    /// Re-assignment reads the structure back from the codebook graph: shadows set to entry j (times 2.5 in scaled
    /// mode, with fp16 and with 8-bit scales) are assigned to j with that factor, and the graph keeps its form.
    @Test(arguments: [(KernelClusteringConfiguration.Mode.plain, 16), (.scaled, 16), (.scaled, 8)])
    func reassignmentFindsTheNearestEntry(_ mode: KernelClusteringConfiguration.Mode, _ scaleBits: Int) throws {
        var config = KernelClusteringConfiguration(size: .reduction(0.5), mode: mode)
        config.scaleBits = scaleBits
        let compact = try clusterKernels(in: NeuronFixtures.convHead(globalPool: true), configuration: config).codebookGraph()
        let structure = CodebookStructure(compact)
        let layer = try #require(structure.layouts.first { $0.weight == "cw" })
        let book = compact.initializers[layer.codebook]!.floatTensor!
        let (k, n) = (book.shape[0], layer.shape[0] * layer.shape[1])
        let target = (0..<n).map { Int32(($0 * 7 + 3) % k) }
        let factor: Float = mode == .scaled ? 2.5 : 1
        let shadow = Tensor(shape: layer.shape, scalars: target.flatMap { t in (0..<9).map { factor * book.scalars[Int(t) * 9 + $0] } })
        let (moved, count) = try structure.reassigned(compact, to: ["cw": shadow])
        #expect(try structure.indices(of: layer, in: moved) == target)
        #expect(count == zip(try structure.indices(of: layer, in: compact), target).filter { $0 != $1 }.count)
        #expect(Set(moved.initializers.keys) == Set(compact.initializers.keys) && moved.storageTypes == compact.storageTypes)
        let rebuilt = try Executor(graph: moved).constants["cw"]!.floatTensor!
        #expect(TestSupport.maxAbsDifference(rebuilt.scalars, shadow.scalars) < (scaleBits == 8 ? 0.05 : 1e-5))
        #expect(throws: (any Error).self) { try structure.reassigned(compact, to: [:]) }
    }

    /// Fine-tuning with re-assignment every step, shadows starting from the original weights: kernels change entry,
    /// every kernel is still its entry times its scale, and two runs give the same model.
    @Test func fineTuningWithReassignmentKeepsTheCodebookShared() throws {
        let original = NeuronFixtures.convHead(globalPool: true)
        let compact = try clusterKernels(in: original, configuration: .init(size: .reduction(0.75), mode: .scaled)).codebookGraph()
        let structure = CodebookStructure(compact)
        func run() throws -> (Graph, [EpochReport]) {
            let shadows = Dictionary(uniqueKeysWithValues: structure.layouts.map { ($0.weight, original.initializers[$0.weight]!.floatTensor!) })
            let trainer = try Trainer(graph: compact, configuration: Self.quick(3),
                                      reassignment: Reassignment(every: 1, shadows: shadows) { try structure.reassigned($0, to: $1) })
            let reports = try trainer.train(try Self.data())
            return (trainer.graph, reports)
        }
        let (trained, reports) = try run()
        #expect(reports.allSatisfy { $0.reassigned != nil } && reports.contains { ($0.reassigned ?? 0) > 0 }, "\(reports.map(\.reassigned))")
        #expect(try structure.indices(of: structure.layouts[0], in: trained) != structure.indices(of: structure.layouts[0], in: compact))
        let weight = try CompressedWeight.read(structure.layouts[0], from: trained)
        let book = weight.codebook, index = weight.indices, scale = weight.vectorScales!
        let kernels = try Executor(graph: trained).constants["cw"]!.floatTensor!.scalars
        for k in 0..<index.count {
            for j in 0..<9 { #expect(abs(kernels[k * 9 + j] - scale[k] * book[Int(index[k]) * 9 + j]) < 1e-6) }
        }
        let (again, _) = try run()
        for name in trained.initializers.keys { #expect(trained.initializers[name] == again.initializers[name], "\(name) differs between runs") }
    }

    @Test func sharedColumnsStayShared() throws {
        let clustered = try clusterNeurons(in: NeuronFixtures.convHead(globalPool: true), configuration: .init(size: .reduction(0.5)))
        let trainer = try Trainer(graph: clustered.graph, configuration: Self.quick())
        _ = try trainer.train(try Self.data())
        let g = trainer.graph
        #expect(g.initializers["w/wc_shared_columns"] != clustered.graph.initializers["w/wc_shared_columns"])
        #expect(g.initializers["cw"] != clustered.graph.initializers["cw"], "the producer that absorbed the norms trains too")
        let shared = g.initializers["w/wc_shared_columns"]!.floatTensor!
        let index = g.initializers["w/wc_column_index"]!.int64Values
        var options = Executor.Options()
        options.sharedColumns = false
        let w = try Executor(graph: g, options: options).constants["w"]!.floatTensor!
        for o in 0..<w.shape[0] {
            for i in 0..<w.shape[1] { #expect(w.scalars[o * w.shape[1] + i] == shared.scalars[o * shared.shape[1] + Int(index[i])]) }
        }
    }

    @Test func badTrainingSettings() throws {
        // The library names the setting; the CLI maps it to its flag (pinned in CLITests).
        for (change, setting) in [({ (c: inout TrainingConfiguration) in c.epochs = 0 }, TrainingError.Setting.epochs),
                                  ({ $0.learningRate = 0 }, .learningRate), ({ $0.learningRate = .nan }, .learningRate),
                                  ({ $0.batchSize = 0 }, .batchSize), ({ $0.gradientClipNorm = 0 }, .gradientClipNorm)] {
            var c = Self.quick()
            change(&c)
            do {
                _ = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: c)
                Issue.record("accepted a bad \(setting)")
            } catch let TrainingError.setting(found, _) {
                #expect(found == setting)
            }
        }
        #expect(throws: TrainingError.setting(.reassignEvery, "must be at least 1, got 0")) {
            try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: Self.quick(),
                        reassignment: Reassignment(every: 0, shadows: [:]) { g, _ in (g, 0) })
        }
        // A model whose path to the loss has an op without a gradient.
        var g = NeuronFixtures.convHead(globalPool: true)
        g.nodes.insert(Node(name: "lrn", opType: "LRN", inputs: ["c"], outputs: ["l"], attributes: ["size": .int(3)]), at: 1)
        g.nodes[2].inputs = ["l"]
        do {
            _ = try Trainer(graph: g, configuration: Self.quick()).train(try Self.data())
            Issue.record("LRN accepted")
        } catch { #expect("\(error)".contains("no gradient for LRN")) }
    }
}
