import Compute
import Datasets
import Dispatch
import Foundation
import ModelGraph

public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var loss: Double
    public var trainAccuracy: Double
    public var testTop1: Double?
    /// Fine-tuning: top-1 on the held-out training images at the end of the epoch.
    public var heldOutTop1: Double? = nil
    public var imagesPerSecond: Double
    public var seconds: Double
    /// With re-assignment: how many times a kernel changed its codebook entry during the epoch.
    public var reassigned: Int?
}

/// Periodic re-assignment of tied weights (kernel clustering's "re-assign every N steps"). Each value in `shadows`
/// (a weight rebuilt from a codebook, by its graph name) has a dense shadow copy, trained by plain SGD with the
/// gradient of the rebuilt value (straight-through); every `every` steps `apply` receives the graph and the shadows
/// and returns the graph with new assignments (and how many changed), from which training continues.
public struct Reassignment {
    public var every: Int
    public var shadows: [String: Tensor<Float>]
    public var apply: (Graph, [String: Tensor<Float>]) throws -> (graph: Graph, moved: Int)

    public init(every: Int, shadows: [String: Tensor<Float>], apply: @escaping (Graph, [String: Tensor<Float>]) throws -> (graph: Graph, moved: Int)) {
        self.every = every
        self.shadows = shadows
        self.apply = apply
    }

    /// The one rule for the interval, for front ends that check it before any work.
    public static func validate(every: Int) throws {
        guard every >= 1 else { throw TrainingError.setting(.reassignEvery, "must be at least 1, got \(every)") }
    }
}

/// Progress of the current epoch, for a progress bar.
public struct TrainingProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var images: Int
    public var total: Int
    public var loss: Double
    public var accuracy: Double
    public var imagesPerSecond: Double
}

/// Mini-batch training of a graph's parameters with softmax cross-entropy. Parameters named in `masked` keep
/// their zeros (pruned weights stay exactly zero). Deterministic for a given seed and thread count.
public final class Trainer {
    public private(set) var engine: Backpropagation
    public internal(set) var configuration: TrainingConfiguration
    private(set) var reassignment: Reassignment?
    private var masks: [String: [Bool]] = [:]
    private var velocity: [String: [Float]] = [:]
    private var secondMoment: [String: [Float]] = [:]
    /// Steps taken so far (the schedule's position).
    public internal(set) var step = 0
    /// The step the warm-up starts from (moved forward when a fine-tuning run resumes at a lower rate).
    var warmupStart = 0
    private var generator: UInt64

    public init(graph: Graph, configuration: TrainingConfiguration, masked: Set<String> = [], reassignment: Reassignment? = nil) throws {
        try configuration.validate()
        if let reassignment { try Reassignment.validate(every: reassignment.every) }
        self.configuration = configuration
        self.reassignment = reassignment
        engine = try Self.engine(graph, configuration: configuration, seed: configuration.seed, retaining: reassignment)
        generator = configuration.seed &* 0x2545_F491_4F6C_DD1D | 1
        for name in masked where engine.parameters.contains(name) {
            masks[name] = engine.parameter(name).scalars.map { $0 != 0 }
        }
    }

    /// The model as trained so far.
    public var graph: Graph { engine.graph }

    /// Trains for the configured epochs; after each, `evaluate` (if given) measures the current graph.
    public func train(_ data: ImageDataset, evaluate: ((Graph) throws -> Double)? = nil,
                      progress: ((TrainingProgress) -> Void)? = nil) throws -> [EpochReport] {
        guard let input = engine.graph.inputs.first?.name else { throw TrainingError.invalid("the model has no input") }
        let config = configuration
        let perEpoch = min((data.count + config.batchSize - 1) / config.batchSize, config.stepsPerEpoch ?? .max)
        let totalSteps = perEpoch * config.epochs
        var reports: [EpochReport] = []
        for epoch in 1...config.epochs {
            let order = shuffled(data.count)
            let start = DispatchTime.now().uptimeNanoseconds
            var lossSum = 0.0, correct = 0, seen = 0, reassigned = 0
            for b in 0..<perEpoch {
                let rows = Array(order[(b * config.batchSize)..<min(data.count, (b + 1) * config.batchSize)])
                let (x, labels) = batch(data, rows: rows)
                let (loss, right, moved) = try step(x, labels: labels, input: input, rate: rate(step: step, of: totalSteps))
                reassigned += moved
                lossSum += Double(loss) * Double(rows.count)
                correct += right
                seen += rows.count
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                progress?(TrainingProgress(epoch: epoch, epochs: config.epochs, images: seen, total: min(data.count, perEpoch * config.batchSize),
                                           loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seen),
                                           imagesPerSecond: Double(seen) / max(elapsed, 1e-9)))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let top1 = try evaluate?(engine.graph)
            reports.append(EpochReport(epoch: epoch, loss: lossSum / Double(max(1, seen)), trainAccuracy: Double(correct) / Double(max(1, seen)),
                                       testTop1: top1, imagesPerSecond: Double(seen) / max(seconds, 1e-9), seconds: seconds,
                                       reassigned: reassignment == nil ? nil : reassigned))
        }
        return reports
    }

    /// One optimisation step on a batch: forward, loss, backward, update (and the shadows' step and re-assignment).
    /// Returns the batch's mean loss, how many rows it classified right, and how many kernels were re-assigned.
    public func step(_ x: Tensor<Float>, labels: [Int], input: String? = nil, rate lr: Float) throws -> (loss: Float, correct: Int, reassigned: Int) {
        guard let input = input ?? engine.graph.inputs.first?.name else { throw TrainingError.invalid("the model has no input") }
        let tape = try engine.forward([input: .float(x)], training: true)
        let (loss, gradient, right) = try Backpropagation.crossEntropy(tape.logits, labels: labels)
        guard loss.isFinite else {
            step += 1
            return (loss, right, 0)  // no update from a non-finite loss; the caller decides what follows
        }
        var grads = try engine.backward(tape, logitsGradient: gradient)
        if configuration.sharedEntries == .mean {
            for (name, counts) in engine.gatherCounts { if let g = grads[name] { grads[name]!.scalars = zip(g.scalars, counts).map { $1 > 1 ? $0 / $1 : $0 } } }
        }
        if let clip = configuration.gradientClipNorm { Self.clip(&grads, parameters: engine.parameters, to: clip) }
        update(grads, rate: lr)
        step += 1
        let moved = reassignment != nil ? try trainShadows(grads, rate: lr) : 0
        return (loss, right, moved)
    }

    /// Rows `rows` of `data` as a batch, augmented when the configuration says so.
    public func batch(_ data: ImageDataset, rows: [Int]) -> (images: Tensor<Float>, labels: [Int]) {
        var x = data.rows(rows)
        if configuration.augment { augment(&x) }
        return (x, rows.map { data.labels[$0] })
    }

    /// Learning rate at `step` of `total`: the schedule, times the linear warm-up.
    public func rate(step: Int, of total: Int) -> Float {
        let lr = configuration.learningRate
        let t = Double(step) / Double(max(1, total))
        let warm = configuration.warmupSteps > 0 ? min(1, Float(step - warmupStart + 1) / Float(configuration.warmupSteps)) : 1
        switch configuration.schedule {
        case .constant: return warm * lr
        case .cosine: return warm * lr * Float(0.5 * (1 + cos(Double.pi * t)))
        case .oneCycle:
            let warmFraction = 0.3
            func anneal(_ from: Float, _ to: Float, _ p: Double) -> Float { to + (from - to) * Float(0.5 * (1 + cos(Double.pi * p))) }
            return warm * (t < warmFraction ? anneal(lr / 25, lr, t / warmFraction) : anneal(lr, lr / 25 / 1e4, (t - warmFraction) / (1 - warmFraction)))
        }
    }

    /// The parameters, running statistics and shadow weights as they are now.
    public struct State {
        public var graph: Graph
        var shadows: [String: Tensor<Float>]?
    }

    public var state: State { State(graph: engine.graph, shadows: reassignment?.shadows) }

    /// Goes back to `state` at learning rate `rate`, with the optimizer's moments cleared and the warm-up restarted;
    /// the schedule keeps its position.
    public func restore(_ state: State, learningRate rate: Float) throws {
        if let shadows = state.shadows { reassignment?.shadows = shadows }
        let profiling = engine.profiling
        engine = try Self.engine(state.graph, configuration: configuration, seed: configuration.seed &+ UInt64(step) &+ 1, retaining: reassignment)
        engine.profiling = profiling
        configuration.learningRate = rate
        velocity = [:]
        secondMoment = [:]
        warmupStart = step
    }

    /// Scales all gradients of `parameters` together down to L2 norm `limit` when they are longer.
    static func clip(_ grads: inout [String: Tensor<Float>], parameters: [String], to limit: Float) {
        var sum = 0.0
        for name in parameters { if let g = grads[name] { for v in g.scalars { sum += Double(v) * Double(v) } } }
        let norm = sum.squareRoot()
        guard norm > Double(limit), norm.isFinite else { return }
        let factor = Float(Double(limit) / norm)
        for name in parameters where grads[name] != nil { grads[name]!.scalars = grads[name]!.scalars.map { $0 * factor } }
    }

    private func update(_ grads: [String: Tensor<Float>], rate lr: Float) {
        let c = configuration
        let momentum = c.momentum, nesterov = c.nesterov, adam = c.optimizer == .adam
        let t = Float(step + 1)
        let correction1 = 1 - powf(0.9, t), correction2 = 1 - powf(0.999, t)
        for name in engine.parameters {
            guard let g = grads[name] else { continue }
            var w = engine.parameter(name)
            let decay = w.rank >= 2 ? c.weightDecay : 0
            let mask = masks[name]
            var first = velocity[name] ?? [Float](repeating: 0, count: w.count)
            var second = adam ? (secondMoment[name] ?? [Float](repeating: 0, count: w.count)) : []
            // Elementwise, so the split over workers does not change the result.
            w.scalars.withUnsafeMutableBufferPointer { pw in
                first.withUnsafeMutableBufferPointer { pm in
                    second.withUnsafeMutableBufferPointer { ps in
                        g.scalars.withUnsafeBufferPointer { pg in
                            let (wa, ma, sa) = (Int(bitPattern: pw.baseAddress!), Int(bitPattern: pm.baseAddress!),
                                                Int(bitPattern: ps.baseAddress ?? pm.baseAddress!))
                            parallelChunks(pw.count, minimumChunk: 1 << 16) { range in
                                let w = UnsafeMutablePointer<Float>(bitPattern: wa)!, m = UnsafeMutablePointer<Float>(bitPattern: ma)!
                                let s = UnsafeMutablePointer<Float>(bitPattern: sa)!
                                for i in range {
                                    if let mask, !mask[i] { continue }
                                    let d = pg[i] + decay * w[i]
                                    if adam {
                                        m[i] = 0.9 * m[i] + 0.1 * d
                                        s[i] = 0.999 * s[i] + 0.001 * d * d
                                        w[i] -= lr * (m[i] / correction1) / ((s[i] / correction2).squareRoot() + 1e-8)
                                    } else {
                                        m[i] = momentum * m[i] + d
                                        w[i] -= lr * (nesterov ? d + momentum * m[i] : m[i])
                                    }
                                }
                            }
                        }
                    }
                }
            }
            velocity[name] = first
            if adam { secondMoment[name] = second }
            engine.setParameter(name, w)
        }
    }

    private static func engine(_ graph: Graph, configuration: TrainingConfiguration, seed: UInt64,
                               retaining reassignment: Reassignment?) throws -> Backpropagation {
        let engine = try Backpropagation(graph: graph, seed: seed)
        engine.batchNormalization = configuration.batchNormalization
        engine.retainedGradients = Set(reassignment.map { Array($0.shadows.keys) } ?? [])
        return engine
    }

    /// One SGD step of the shadow weights, in place (weight decay as for the parameters); on every `every`-th step
    /// the re-assignment, after which training goes on from the new graph (optimizer state is kept: the parameters
    /// are the same tensors). Returns how many kernels changed entry.
    private func trainShadows(_ grads: [String: Tensor<Float>], rate lr: Float) throws -> Int {
        guard let names = reassignment?.shadows.keys else { return 0 }
        let decay = configuration.weightDecay
        for name in names {
            guard let g = grads[name], g.count == reassignment!.shadows[name]!.count else { continue }
            g.scalars.withUnsafeBufferPointer { pg in
                reassignment!.shadows[name]!.scalars.withUnsafeMutableBufferPointer { pw in
                    let address = Int(bitPattern: pw.baseAddress!)
                    parallelChunks(pw.count, minimumChunk: 1 << 16) { range in
                        let w = UnsafeMutablePointer<Float>(bitPattern: address)!
                        for i in range { w[i] -= lr * (pg[i] + decay * w[i]) }
                    }
                }
            }
        }
        guard let r = reassignment, step % r.every == 0 else { return 0 }
        let (graph, moved) = try r.apply(engine.graph, r.shadows)
        let profiling = engine.profiling
        engine = try Self.engine(graph, configuration: configuration, seed: configuration.seed &+ UInt64(step), retaining: r)
        engine.profiling = profiling
        return moved
    }

    private func nextRandom() -> UInt64 {
        generator = generator &* 6364136223846793005 &+ 1442695040888963407
        return generator >> 11
    }

    func shuffled(_ n: Int) -> [Int] {
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(nextRandom() % UInt64(i + 1))) }
        return order
    }

    /// Random horizontal flip and shift of each image (all channels alike).
    private func augment(_ x: inout Tensor<Float>) {
        guard x.rank == 4 else { return }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let s = configuration.shift
        for img in 0..<n {
            let flip = nextRandom() % 2 == 1
            let dy = s > 0 ? Int(nextRandom() % UInt64(2 * s + 1)) - s : 0
            let dx = s > 0 ? Int(nextRandom() % UInt64(2 * s + 1)) - s : 0
            if !flip && dy == 0 && dx == 0 { continue }
            for ch in 0..<c {
                let base = (img * c + ch) * h * w
                let plane = Array(x.scalars[base..<base + h * w])
                for yy in 0..<h {
                    for xx in 0..<w {
                        let sy = yy - dy, sx0 = xx - dx
                        let sx = flip ? w - 1 - sx0 : sx0
                        x.scalars[base + yy * w + xx] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : configuration.background
                    }
                }
            }
        }
    }
}
