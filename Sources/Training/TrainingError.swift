/// Why training could not start or go on.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    /// A setting out of range: which one, and what would be accepted (a front end maps the setting to its own name).
    case setting(Setting, String)
    case unsupported(op: String, node: String)

    /// The settings `TrainingConfiguration`, `FineTuningConfiguration` and `Reassignment` validate.
    public enum Setting: String, Sendable, CaseIterable {
        case epochs, learningRate, batchSize, momentum, weightDecay, warmup, gradientClipNorm, stepsPerEpoch
        case reassignEvery, heldOut, trainingLimit, rangeTest

        /// Words for a message.
        public var words: String {
            switch self {
            case .epochs: "epochs"
            case .learningRate: "learning rate"
            case .batchSize: "batch size"
            case .momentum: "momentum"
            case .weightDecay: "weight decay"
            case .warmup: "warm-up steps"
            case .gradientClipNorm: "gradient clipping norm"
            case .stepsPerEpoch: "steps per epoch"
            case .reassignEvery: "re-assignment interval"
            case .heldOut: "held-out image count"
            case .trainingLimit: "training image limit"
            case .rangeTest: "learning-rate range test"
            }
        }
    }

    public var description: String {
        switch self {
        case .invalid(let message): message
        case .setting(let setting, let message): "\(setting.words) \(message)"
        case .unsupported(let op, let node): "no gradient for \(op) (node \(node)); training supports Conv, Gemm, MatMul, Add/Sub/Mul/Div, Relu, LeakyRelu, Clip, Sigmoid, Tanh, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Concat, Pad (constant), BatchNormalization, Dropout, Gather, Cast"
        }
    }
}
