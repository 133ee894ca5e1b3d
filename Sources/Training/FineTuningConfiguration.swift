/// How to fine-tune a compressed model so that it cannot silently get worse: the training mechanics, how the
/// learning rate is chosen, the held-out images that decide which state is kept, and the divergence guard.
public struct FineTuningConfiguration: Sendable, Equatable {
    public enum LearningRate: Sendable, Equatable {
        /// A learning-rate range test on a few hundred training images chooses it (`rangeTest`).
        case auto
        case fixed(Float)
    }

    /// Epochs, batch, optimizer, schedule, augmentation, seed. Its `learningRate` is replaced by `learningRate`
    /// below and its `warmupSteps` by `warmup`.
    public var training: TrainingConfiguration
    public var learningRate: LearningRate = .auto
    public var rangeTest = LearningRateRangeTest()
    /// Linear warm-up over this fraction of the run's steps (and again after every back-off).
    public var warmup = 0.03
    /// Training images set aside (a seeded draw, at most a fifth of them) to evaluate before, at every check-point
    /// and after; the best state seen on them is the one returned. 0: no held-out images, the last state is returned.
    public var heldOut = 2000
    /// Train on the first N of the remaining training images only.
    public var trainingLimit: Int? = nil
    /// Held-out check-points per epoch (one at the end of each epoch at least).
    public var checkpointsPerEpoch = 4
    /// Divergence: the smoothed loss at or above its starting value (the mean of the first 10 steps) for this many
    /// steps in a row.
    public var patience = 100
    /// Divergence: a check-point's held-out top-1 more than this far below the best seen (0.1 = 10 points), or three
    /// standard errors of the best on the held-out images if that is more.
    public var maximumDrop = 0.10
    /// Divergence backs off to the last good state at `backoffFactor` × the rate, at most `backoffs` times; the
    /// next divergence stops the run (the best state seen is still returned).
    public var backoffs = 3
    public var backoffFactor: Float = 0.3

    public init(epochs: Int) { training = TrainingConfiguration(epochs: epochs) }

    /// Throws `TrainingError.setting` naming the first setting out of range.
    public func validate() throws {
        var t = training
        if case .fixed(let rate) = learningRate { t.learningRate = rate }
        try t.validate()
        if case .auto = learningRate { try rangeTest.validate() }
        guard heldOut >= 0 else { throw TrainingError.setting(.heldOut, "must be ≥ 0, got \(heldOut)") }
        if let trainingLimit, trainingLimit < 1 { throw TrainingError.setting(.trainingLimit, "must be at least 1, got \(trainingLimit)") }
        guard warmup >= 0 && warmup < 1 else { throw TrainingError.setting(.warmup, "must be a fraction in [0, 1), got \(warmup)") }
        guard checkpointsPerEpoch >= 1, patience >= 1, maximumDrop > 0, backoffs >= 0, backoffFactor > 0 && backoffFactor < 1 else {
            throw TrainingError.invalid("the divergence guard needs check-points ≥ 1, patience ≥ 1, a drop > 0, back-offs ≥ 0 and a factor in (0, 1)")
        }
    }
}
