import Compute
import Datasets
import Dispatch
import Foundation
import ModelGraph

/// How to train.
public struct TrainingConfiguration: Sendable, Equatable {
    public enum Optimizer: String, Sendable, CaseIterable {
        /// SGD with momentum (PyTorch semantics; Nesterov by default).
        case sgd
        /// Adam (β 0.9/0.999, ε 1e-8), weight decay added to the gradient as PyTorch's Adam does.
        case adam
    }

    public enum Schedule: String, Sendable, CaseIterable {
        case constant
        /// Cosine decay from the learning rate to 0 over all steps.
        case cosine
        /// PyTorch's OneCycleLR: 30% cosine warm-up from lr/25 to lr, then cosine down to lr/10⁴.
        case oneCycle = "one-cycle"
    }

    public var epochs: Int
    public var batchSize: Int = 64
    public var learningRate: Float = 0.01
    public var optimizer: Optimizer = .sgd
    public var momentum: Float = 0.9
    public var nesterov = true
    /// L2 weight decay on weights of rank ≥ 2 (biases, scales and normalisation parameters are not decayed).
    public var weightDecay: Float = 5e-4
    public var schedule: Schedule = .cosine
    /// Random horizontal flips and shifts of up to `shift` pixels, the uncovered border filled with `background`.
    public var augment = true
    public var shift = 2
    public var background: Float = 0
    /// BatchNormalization during training: batch statistics (`train`) or the stored ones (`frozen`).
    public var batchNormalization: Backpropagation.BatchNormalizationMode = .train
    /// Stop each epoch after this many steps (benchmarks, quick runs).
    public var stepsPerEpoch: Int? = nil
    public var seed: UInt64 = 0

    public init(epochs: Int) { self.epochs = epochs }

    public func validate() throws {
        guard epochs >= 1 && epochs <= 1000 else { throw TrainingError.invalid("--epochs must be between 1 and 1000, got \(epochs)") }
        guard learningRate > 0 && learningRate <= 10 && learningRate.isFinite else {
            throw TrainingError.invalid("--lr must be in (0, 10], got \(learningRate)")
        }
        guard batchSize >= 1 else { throw TrainingError.invalid("--batch must be at least 1, got \(batchSize)") }
        guard momentum >= 0 && momentum < 1, weightDecay >= 0 else {
            throw TrainingError.invalid("--momentum must be in [0, 1) and --weight-decay ≥ 0")
        }
        if let s = stepsPerEpoch, s < 1 { throw TrainingError.invalid("--steps must be at least 1, got \(s)") }
    }
}

public struct EpochReport: Sendable, Codable {
    public var epoch: Int
    public var loss: Double
    public var trainAccuracy: Double
    public var testTop1: Double?
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
    public let configuration: TrainingConfiguration
    private var reassignment: Reassignment?
    private var masks: [String: [Bool]] = [:]
    private var velocity: [String: [Float]] = [:]
    private var secondMoment: [String: [Float]] = [:]
    private var step = 0
    private var generator: UInt64

    public init(graph: Graph, configuration: TrainingConfiguration, masked: Set<String> = [], reassignment: Reassignment? = nil) throws {
        try configuration.validate()
        if let reassignment, reassignment.every < 1 {
            throw TrainingError.invalid("--reassign-every must be at least 1, got \(reassignment.every)")
        }
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
                var x = gather(data.images, rows)
                if config.augment { augment(&x) }
                let labels = rows.map { data.labels[$0] }
                let tape = try engine.forward([input: .float(x)], training: true)
                let (loss, gradient, right) = try Backpropagation.crossEntropy(tape.logits, labels: labels)
                let grads = try engine.backward(tape, logitsGradient: gradient)
                let lr = rate(step: step, of: totalSteps)
                update(grads, rate: lr)
                step += 1
                if reassignment != nil { reassigned += try trainShadows(grads, rate: lr) }
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

    /// Learning rate at `step` of `total`.
    public func rate(step: Int, of total: Int) -> Float {
        let lr = configuration.learningRate
        let t = Double(step) / Double(max(1, total))
        switch configuration.schedule {
        case .constant: return lr
        case .cosine: return lr * Float(0.5 * (1 + cos(Double.pi * t)))
        case .oneCycle:
            let warm = 0.3
            func anneal(_ from: Float, _ to: Float, _ p: Double) -> Float { to + (from - to) * Float(0.5 * (1 + cos(Double.pi * p))) }
            return t < warm ? anneal(lr / 25, lr, t / warm) : anneal(lr, lr / 25 / 1e4, (t - warm) / (1 - warm))
        }
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

    private func shuffled(_ n: Int) -> [Int] {
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(nextRandom() % UInt64(i + 1))) }
        return order
    }

    private func gather(_ images: Tensor<Float>, _ rows: [Int]) -> Tensor<Float> {
        let size = images.count / max(1, images.shape[0])
        var out = [Float](repeating: 0, count: rows.count * size)
        for (r, row) in rows.enumerated() { for j in 0..<size { out[r * size + j] = images.scalars[row * size + j] } }
        return Tensor(shape: [rows.count] + images.shape.dropFirst(), scalars: out)
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
