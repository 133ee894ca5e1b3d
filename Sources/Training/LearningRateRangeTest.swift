import Compute
import Datasets
import Foundation
import ModelGraph

/// A learning-rate range test (Smith 2017, fastai's `lr_find`): from the model as it is, train one batch of new
/// images per step while the rate grows geometrically from `lowest` to `highest`, and watch the smoothed loss. The
/// chosen rate is the one where the smoothed loss was lowest, divided by `divisor`, so the run trains well below
/// the rate where the loss turns up. Every step sees new images: cycling through a few hundred lets a large model
/// memorise them at low rates, and the minimum then says nothing about the rate (measured on AlexNet: 512 images
/// cycled put it at 8e-4, a tenth of what trains well).
public struct LearningRateRangeTest: Sendable, Equatable {
    public var lowest: Float = 1e-4
    public var highest: Float = 1
    public var steps = 40
    /// At most this many training images (steps × batch size when more): past them the test cycles.
    public var images = 4096
    /// Exponential smoothing of the loss per step.
    public var smoothing: Float = 0.7
    /// The test stops once the smoothed loss exceeds this multiple of its minimum (or is not finite).
    public var stopFactor: Float = 4
    public var divisor: Float = 10

    public init() {}

    public func validate() throws {
        guard lowest > 0, highest > lowest, highest.isFinite, steps >= 2, images >= 1, divisor >= 1, smoothing >= 0, smoothing < 1 else {
            throw TrainingError.setting(.rangeTest, "needs 0 < lowest < highest, at least 2 steps and 1 image, divisor ≥ 1 and smoothing in [0, 1)")
        }
    }

    /// One step of the test.
    public struct Point: Sendable, Codable, Equatable {
        public var learningRate: Float
        public var loss: Float
        public var smoothedLoss: Float
    }

    /// What the test saw and chose.
    public struct Result: Sendable, Codable, Equatable {
        public var points: [Point]
        /// The rate of the lowest smoothed loss.
        public var bestRate: Float
        public var chosen: Float
        public var seconds: Double
    }

    /// Runs the test on `data` from `graph` with `configuration`'s optimizer, batch size and augmentation; the
    /// graph is not changed (the test trains a copy).
    public func run(_ graph: Graph, on data: ImageDataset, configuration: TrainingConfiguration, masked: Set<String> = [],
                    progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        try validate()
        let start = DispatchTime.now().uptimeNanoseconds
        var c = configuration
        c.schedule = .constant
        c.warmupSteps = 0
        c.stepsPerEpoch = nil
        c.learningRate = lowest
        let trainer = try Trainer(graph: graph, configuration: c, masked: masked)
        let n = min(images, data.count), batch = min(c.batchSize, n)
        guard n > 0 else { throw TrainingError.invalid("no training images for the learning-rate range test") }
        var points: [Point] = []
        var smoothed: Float = 0, weight: Float = 0, minimum = Float.infinity, best = lowest
        var cursor = 0
        for s in 0..<steps {
            let rate = lowest * powf(highest / lowest, Float(s) / Float(steps - 1))
            let rows = (0..<batch).map { (cursor + $0) % n }
            cursor = (cursor + batch) % n
            let (x, labels) = trainer.batch(data, rows: rows)
            let loss = try trainer.step(x, labels: labels, rate: rate).loss
            progress?(s + 1, steps)
            guard loss.isFinite else { break }
            // Bias-corrected exponential average, as fastai smooths it.
            weight = smoothing * weight + (1 - smoothing)
            smoothed = smoothing * smoothed + (1 - smoothing) * loss
            let value = smoothed / weight
            points.append(Point(learningRate: rate, loss: loss, smoothedLoss: value))
            if value < minimum { minimum = value; best = rate }
            if value > stopFactor * minimum { break }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(points: points, bestRate: best, chosen: max(lowest, best / divisor), seconds: seconds)
    }
}
