/// How to train: the mechanics of one run at a given learning rate.
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

    /// The gradient of a parameter element gathered into many weights (a codebook or LUT entry).
    public enum SharedEntryGradient: String, Sendable, CaseIterable {
        /// The mean over the weights it stands for: the entry moves as one of those weights would in dense training,
        /// so one learning rate suits entries shared by 20 kernels and LUT values shared by 70,000 weights alike.
        case mean
        /// The plain sum (the true gradient of the entry).
        case sum
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
    /// The schedule's rate is scaled by (s + 1) / warmupSteps over the first `warmupSteps` steps.
    public var warmupSteps = 0
    public var sharedEntries: SharedEntryGradient = .mean
    /// When set, the gradient of all parameters together is scaled down to this L2 norm when it is longer.
    public var gradientClipNorm: Float? = nil
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

    /// Throws `TrainingError.setting` naming the first setting out of range.
    public func validate() throws {
        guard epochs >= 1 && epochs <= 1000 else { throw TrainingError.setting(.epochs, "must be between 1 and 1000, got \(epochs)") }
        // No upper bound: a rate too high for the model is the divergence guard's business.
        guard learningRate > 0 && learningRate.isFinite else {
            throw TrainingError.setting(.learningRate, "must be a positive number, got \(learningRate)")
        }
        guard batchSize >= 1 else { throw TrainingError.setting(.batchSize, "must be at least 1, got \(batchSize)") }
        guard momentum >= 0 && momentum < 1 else { throw TrainingError.setting(.momentum, "must be in [0, 1), got \(momentum)") }
        guard weightDecay >= 0 && weightDecay.isFinite else { throw TrainingError.setting(.weightDecay, "must be ≥ 0, got \(weightDecay)") }
        guard warmupSteps >= 0 else { throw TrainingError.setting(.warmup, "must be ≥ 0, got \(warmupSteps)") }
        if let clip = gradientClipNorm, !(clip > 0 && clip.isFinite) {
            throw TrainingError.setting(.gradientClipNorm, "must be a positive number, got \(clip)")
        }
        if let s = stepsPerEpoch, s < 1 { throw TrainingError.setting(.stepsPerEpoch, "must be at least 1, got \(s)") }
    }
}
