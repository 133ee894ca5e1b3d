import Compute
import Datasets
import Execution
import Foundation

/// How a model's outputs agree with a reference model's on the same images — no labels needed, so a user with a
/// folder of unlabeled photos can see what compression did.
public struct AgreementReport: Sendable, Codable, Equatable {
    public var images: Int
    /// Images on which both models predict the same class (arg max).
    public var top1Agreement: Double
    /// Images on which the reference's predicted class is among the model's five highest outputs.
    public var top5Agreement: Double
    /// Mean KL(reference ‖ model) of the two output distributions (softmax of the outputs, unless they already are
    /// probabilities), in nats.
    public var meanKL: Double
    /// Mean cosine similarity of the two models' raw output rows.
    public var meanCosine: Double

    enum CodingKeys: String, CodingKey {
        case images
        case top1Agreement = "top1_agreement", top5Agreement = "top5_agreement", meanKL = "mean_kl", meanCosine = "logit_cosine"
    }
}

public enum Agreement {
    /// Runs `model` and `reference` over `images` in batches and compares their outputs row by row.
    public static func measure(_ model: Executor, reference: Executor, on images: ImageDataset, batchSize: Int = 64,
                               progress: ((Int, Int) -> Void)? = nil) throws -> AgreementReport {
        guard images.count > 0 else { throw DatasetError.mismatch("the dataset has no images: there is nothing to compare") }
        var top1 = 0, top5 = 0, kl = 0.0, cosine = 0.0
        for start in stride(from: 0, to: images.count, by: max(1, batchSize)) {
            let range = start..<min(images.count, start + max(1, batchSize))
            let x = images.batch(range)
            let a = try model(x), b = try reference(x)
            guard a.shape == b.shape, a.rank == 2, a.shape[0] == range.count else {
                throw DatasetError.mismatch("the model's output has shape \(a.shape) but the reference's has \(b.shape): they cannot be compared")
            }
            guard a.scalars.allSatisfy(\.isFinite), b.scalars.allSatisfy(\.isFinite) else {
                throw ExecutionError.nonFinite(node: a.scalars.allSatisfy(\.isFinite) ? "reference output" : "model output", op: "graph output")
            }
            let width = a.shape[1]
            for r in 0..<range.count {
                let p = b.scalars[r * width..<(r + 1) * width].map(Double.init), q = a.scalars[r * width..<(r + 1) * width].map(Double.init)
                let predicted = p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) } ?? 0
                let better = q.indices.filter { q[$0] > q[predicted] || (q[$0] == q[predicted] && $0 < predicted) }.count
                if better == 0 { top1 += 1 }
                if better < 5 { top5 += 1 }
                let lp = OutputDivergence.logProbabilities(p), lq = OutputDivergence.logProbabilities(q)
                for (x, y) in zip(lp, lq) where x > -.infinity { kl += exp(x) * (x - y) }
                let dot = zip(p, q).reduce(0) { $0 + $1.0 * $1.1 }
                let norms = sqrt(p.reduce(0) { $0 + $1 * $1 }) * sqrt(q.reduce(0) { $0 + $1 * $1 })
                cosine += norms > 0 ? dot / norms : (p == q ? 1 : 0)
            }
            progress?(range.upperBound, images.count)
        }
        let n = Double(images.count)
        return AgreementReport(images: images.count, top1Agreement: Double(top1) / n, top5Agreement: Double(top5) / n,
                               meanKL: kl / n, meanCosine: cosine / n)
    }
}
