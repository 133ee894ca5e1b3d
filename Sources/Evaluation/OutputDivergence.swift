import Compute
import Datasets
import Execution
import Foundation
import ModelGraph

/// How far a changed model's predictions move from a reference model's on the same images, label-free (bit
/// allocation measures each layer's candidate this way): the mean Kullback–Leibler divergence KL(reference ‖ changed)
/// of their softmax outputs, or the mean squared change of the logits (outputs that already are probabilities —
/// non-negative rows summing to 1 — are taken as they are, their logarithms as logits).
public final class OutputDivergence: @unchecked Sendable {
    public enum Measure: String, Sendable, CaseIterable {
        /// KL(reference ‖ changed) of the softmax outputs.
        case kl
        /// Σ over classes of the squared change of the logits, each row centred (the shift softmax ignores). Unlike the
        /// KL divergence it does not vanish where the reference is confident — as a trained model is on its own
        /// training images, the calibration images.
        case logits
    }

    public let graph: Graph
    public let measure: Measure
    let images: ImageDataset
    let batchSize: Int
    /// Reference log-probabilities, one row per image.
    let reference: [[Double]]

    public init(reference graph: Graph, images: ImageDataset, measure: Measure = .kl, batchSize: Int = 64) throws {
        guard images.count >= 1 else { throw DatasetError.mismatch("the divergence needs at least 1 image") }
        self.graph = graph
        self.measure = measure
        self.images = images
        self.batchSize = batchSize
        reference = try Self.logProbabilities(graph, images, batchSize: batchSize)
    }

    /// Mean divergence of `changed` from the reference.
    public func divergence(_ changed: Graph) throws -> Double {
        let rows = try Self.logProbabilities(changed, images, batchSize: batchSize)
        var total = 0.0
        for (p, q) in zip(reference, rows) {
            switch measure {
            case .kl:
                for (a, b) in zip(p, q) where a > -.infinity { total += exp(a) * (a - b) }
            case .logits:
                // Log-probabilities are the logits shifted per row: centred, they are the centred logits. A class
                // with probability 0 in either (an output that already is a distribution) has no logit to compare.
                let kept = zip(p, q).filter { $0.0 > -.infinity && $0.1 > -.infinity }
                let shift = kept.reduce(0) { $0 + $1.0 - $1.1 } / Double(max(1, kept.count))
                for (a, b) in kept { total += (a - b - shift) * (a - b - shift) }
            }
        }
        return total / Double(rows.count)
    }

    /// Mean divergence with the initializer `name` of the reference replaced by `value`.
    public func replacing(_ name: String, with value: Tensor<Float>) throws -> Double {
        var changed = graph
        changed.initializers[name] = .float(value)
        return try divergence(changed)
    }

    static func logProbabilities(_ graph: Graph, _ images: ImageDataset, batchSize: Int) throws -> [[Double]] {
        let executor = try Executor(graph: graph)
        var rows: [[Double]] = []
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let range = start..<min(images.count, start + batchSize)
            let out = try executor(images.batch(range))
            guard out.rank == 2, out.shape[0] == range.count else {
                throw DatasetError.mismatch("model output has shape \(out.shape); expected [\(range.count), classes]")
            }
            guard out.scalars.allSatisfy(\.isFinite) else { throw ExecutionError.nonFinite(node: graph.outputs.first?.name ?? "graph output", op: "graph output") }
            let width = out.shape[1]
            for r in 0..<range.count { rows.append(logProbabilities(out.scalars[r * width..<(r + 1) * width].map(Double.init))) }
        }
        return rows
    }

    /// Log-probabilities of one output row: taken as they are when the row already is a distribution, else log-softmax.
    static func logProbabilities(_ row: [Double]) -> [Double] {
        let sum = row.reduce(0, +)
        if row.allSatisfy({ $0 >= 0 }) && abs(sum - 1) < 1e-3 { return row.map { $0 > 0 ? log($0) : -.infinity } }
        let m = row.max() ?? 0
        let logSum = m + log(row.reduce(0) { $0 + exp($1 - m) })
        return row.map { $0 - logSum }
    }
}
