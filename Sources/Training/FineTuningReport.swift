import ModelGraph

/// What a fine-tuning run did: the rate it used and how it was chosen, held-out top-1 before and after, whether it
/// diverged and what the guard did, and which state was kept.
public struct FineTuningReport: Sendable, Codable {
    /// One back-off of the divergence guard.
    public struct Backoff: Sendable, Codable, Equatable {
        /// The step at which the divergence was seen, and the step training resumed from.
        public var step: Int
        public var resumedFrom: Int
        public var reason: String
        public var fromRate: Float
        public var toRate: Float
    }

    /// One held-out evaluation during the run.
    public struct Checkpoint: Sendable, Codable, Equatable {
        public var step: Int
        public var epoch: Int
        public var top1: Double
    }

    /// The peak rate the run started with (chosen by the range test or given).
    public var learningRate: Float
    /// The peak rate in force at the end (lower than `learningRate` after back-offs).
    public var finalLearningRate: Float
    public var learningRateFromRangeTest: Bool
    public var rangeTest: LearningRateRangeTest.Result?
    public var trainingImages: Int
    public var heldOutImages: Int
    /// Held-out top-1 of the model as given, and of the state returned.
    public var top1Before: Double
    public var top1After: Double
    /// False when no state beat the model as given: the returned graph is then the model as given.
    public var improved: Bool
    /// The step of the returned state (0: the model as given).
    public var keptStep: Int
    /// True when the guard saw a divergence (non-finite loss, loss stuck at or above its start, held-out collapse).
    public var diverged: Bool
    public var backoffs: [Backoff]
    /// Why the run stopped before its last step, when it did.
    public var stopped: String?
    public var checkpoints: [Checkpoint]
    public var epochs: [EpochReport]
    public var steps: Int
    public var seconds: Double

    /// One line for a person: what happened and what was kept.
    public var summary: String {
        func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
        let rate = String(format: "%.3g", Double(learningRate)) + (learningRateFromRangeTest ? " (range test)" : "")
        var line = "held-out top-1 \(pct(top1Before)) → \(pct(top1After)) on \(heldOutImages) training images set aside, lr \(rate)"
        if !backoffs.isEmpty { line += ", backed off \(backoffs.count)× to \(String(format: "%.3g", Double(finalLearningRate)))" }
        if heldOutImages == 0 { return line + "; no held-out images, the last state is kept" }
        line += improved ? "; kept the state of step \(keptStep)" : "; fine-tuning did not improve on the compressed model, which is kept unchanged"
        return line
    }
}

/// The state a fine-tuning run returns, with its report.
public struct FineTuningResult {
    public var graph: Graph
    public var report: FineTuningReport
}

/// What a fine-tuning run is doing, for a progress display.
public enum FineTuningEvent: Sendable {
    case rangeTest(step: Int, of: Int)
    case rangeTestDone(LearningRateRangeTest.Result)
    case evaluating(images: Int, of: Int)
    case training(TrainingProgress)
    case checkpoint(FineTuningReport.Checkpoint)
    case backoff(FineTuningReport.Backoff)
}
