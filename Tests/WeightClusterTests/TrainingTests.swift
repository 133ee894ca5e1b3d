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
        #expect(trained.initializers["wc_codebook_0"] != compact.initializers["wc_codebook_0"], "the codebook trained")
        #expect(trained.initializers["cw/wc_scale"] != compact.initializers["cw/wc_scale"], "the scales trained")
        // Every kernel is still its codebook entry times its scale.
        let book = trained.initializers["wc_codebook_0"]!.floatTensor!.scalars
        let index = trained.initializers["cw/wc_index"]!.int64Values
        let scale = trained.initializers["cw/wc_scale"]!.floatTensor!.scalars
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
        for (change, text) in [({ (c: inout TrainingConfiguration) in c.epochs = 0 }, "--epochs"),
                               ({ $0.learningRate = 0 }, "--lr"), ({ $0.learningRate = .nan }, "--lr"), ({ $0.batchSize = 0 }, "--batch")] {
            var c = Self.quick()
            change(&c)
            do {
                _ = try Trainer(graph: NeuronFixtures.convHead(globalPool: true), configuration: c)
                Issue.record("accepted \(text)")
            } catch { #expect("\(error)".contains(text)) }
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
