import Compression
import Compute
import Datasets
import Execution
import Foundation
import ModelGraph
import Testing
import Training
import _TestSupport

@Suite struct FineTuningTests {
    /// 120 images of 3×4×4 whose label (0..<5) shifts channel 0: learnable by the conv head.
    static func data(_ n: Int = 120) throws -> ImageDataset {
        var x = GradientCheck.random([n, 3, 4, 4], seed: 5, scale: 0.5)
        var labels: [Int] = []
        for i in 0..<n {
            let label = i % 5
            for j in 0..<16 { x.scalars[i * 48 + j] += 0.5 * (Float(label) - 2) }
            labels.append(label)
        }
        return try ImageDataset(images: x, labels: labels)
    }

    static func configuration(_ rate: FineTuningConfiguration.LearningRate, epochs: Int = 3) -> FineTuningConfiguration {
        var c = FineTuningConfiguration(epochs: epochs)
        c.learningRate = rate
        c.training.batchSize = 8
        c.training.augment = false
        c.heldOut = 24
        c.rangeTest.images = 24
        c.rangeTest.steps = 12
        return c
    }

    static func heldOutTop1(_ graph: Graph, _ data: ImageDataset) throws -> Double {
        let logits = try Executor(graph: graph)(data.images)
        let k = logits.shape[1]
        var right = 0
        for r in 0..<data.count {
            let row = Array(logits.scalars[r * k..<(r + 1) * k])
            if row.firstIndex(of: row.max()!) == data.labels[r] { right += 1 }
        }
        return Double(right) / Double(data.count)
    }

    /// An absurd rate diverges: the guard backs off, then stops, and what comes back is never worse on the held-out
    /// images than the model given (here: the model given itself).
    @Test func anAbsurdRateIsCaughtAndTheModelKept() throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let result = try fineTune(graph, on: try Self.data(), configuration: Self.configuration(.fixed(100)))
        let r = result.report
        #expect(r.diverged)
        #expect(r.backoffs.count == 3 && r.stopped != nil, "\(r.backoffs) \(r.stopped ?? "-")")
        #expect(r.backoffs.map(\.toRate) == [30, 9, 2.7].map { Float($0) } || r.backoffs.first.map { abs($0.toRate - 30) < 1e-3 } == true)
        #expect(r.top1After >= r.top1Before)
        if !r.improved {
            for name in graph.initializers.keys { #expect(result.graph.initializers[name] == graph.initializers[name], "\(name)") }
        }
    }

    /// The default (`auto`) rate comes from the range test, lies inside its range, and the run improves or keeps.
    @Test func theRangeTestChoosesTheRate() throws {
        let graph = NeuronFixtures.convHead(globalPool: true)
        let result = try fineTune(graph, on: try Self.data(), configuration: Self.configuration(.auto, epochs: 4))
        let r = result.report
        let test = try #require(r.rangeTest)
        #expect(r.learningRateFromRangeTest && r.learningRate == test.chosen)
        #expect(test.chosen >= 1e-4 && test.chosen <= 0.1 && !test.points.isEmpty)
        #expect(r.heldOutImages == 24 && r.trainingImages == 96)
        #expect(r.top1After >= r.top1Before && r.checkpoints.count >= 4)
        #expect(!r.diverged, "\(r.backoffs)")
        // Same seed, same result.
        let again = try fineTune(graph, on: try Self.data(), configuration: Self.configuration(.auto, epochs: 4))
        #expect(again.report.learningRate == r.learningRate && again.report.top1After == r.top1After)
        for name in graph.initializers.keys { #expect(again.graph.initializers[name] == result.graph.initializers[name]) }
    }

    /// The held-out images come from the training data, seeded; the report's top-1 is the kept graph's on them.
    @Test func theKeptStateIsTheBestOnTheHeldOutImages() throws {
        let data = try Self.data()
        let result = try fineTune(NeuronFixtures.convHead(globalPool: true), on: data, configuration: Self.configuration(.fixed(0.05)))
        let r = result.report
        let best = max(r.top1Before, r.checkpoints.map(\.top1).max() ?? 0)
        #expect(r.top1After == best)
        #expect(r.improved == (best > r.top1Before))
        #expect(r.summary.contains("held-out top-1"))
    }

    @Test func badFineTuningSettings() throws {
        var c = Self.configuration(.fixed(0))
        #expect(throws: TrainingError.setting(.learningRate, "must be a positive number, got 0.0")) { try c.validate() }
        c = Self.configuration(.auto)
        c.heldOut = -1
        #expect(throws: TrainingError.setting(.heldOut, "must be ≥ 0, got -1")) { try c.validate() }
        c = Self.configuration(.auto)
        c.trainingLimit = 0
        #expect(throws: TrainingError.setting(.trainingLimit, "must be at least 1, got 0")) { try c.validate() }
        // Labels beyond the model's outputs.
        let bad = try ImageDataset(images: GradientCheck.random([4, 3, 4, 4], seed: 1, scale: 1), labels: [0, 1, 2, 7])
        #expect(throws: TrainingError.invalid("the model has 5 outputs but the training labels go up to 7")) {
            try fineTune(NeuronFixtures.convHead(globalPool: true), on: bad, configuration: Self.configuration(.fixed(0.01)))
        }
    }
}
