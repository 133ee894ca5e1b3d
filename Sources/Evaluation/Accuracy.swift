import Compute
import Datasets
import Dispatch
import Execution

/// Top-1 / top-5 / per-class accuracy of a classifier over a dataset, with throughput.
public struct AccuracyReport: Sendable, Codable {
    public var images: Int
    public var top1: Double
    public var top5: Double
    /// Accuracy of each class (index = label); nil for classes with no test images.
    public var perClass: [Double?]
    public var seconds: Double
    public var imagesPerSecond: Double
    /// The predicted class (arg max, ties to the lower index) of every image, in order.
    public var predictions: [Int] = []

    enum CodingKeys: String, CodingKey {
        case images, top1, top5, seconds
        case perClass = "per_class"
        case imagesPerSecond = "images_per_second"
    }
}

public enum Evaluator {
    /// Runs `executor` over `dataset` in batches of `batchSize`; `progress(done, total)` after each batch.
    public static func evaluate(_ executor: Executor, on dataset: ImageDataset, batchSize: Int = 64,
                                progress: ((Int, Int) -> Void)? = nil) throws -> AccuracyReport {
        guard dataset.count > 0 else { throw DatasetError.mismatch("the dataset has no images: there is nothing to measure") }
        let classes = dataset.classCount
        var correct1 = 0, correct5 = 0
        var perClassCorrect = [Int](repeating: 0, count: classes), perClassTotal = [Int](repeating: 0, count: classes)
        let start = DispatchTime.now().uptimeNanoseconds
        var done = 0
        var predictions: [Int] = []
        predictions.reserveCapacity(dataset.count)
        while done < dataset.count {
            let range = done..<min(dataset.count, done + max(1, batchSize))
            let logits = try executor(dataset.batch(range))
            guard logits.rank == 2, logits.shape[0] == range.count else {
                throw DatasetError.mismatch("model output has shape \(logits.shape); expected [\(range.count), classes]")
            }
            if !logits.scalars.allSatisfy(\.isFinite) {
                // Run the batch again, checking each node's output, to name the first node that went non-finite.
                guard let inputName = executor.graph.inputs.first?.name else { throw ExecutionError.nonFinite(node: "graph output", op: "output") }
                _ = try executor.run([inputName: .float(dataset.batch(range))], checkingFinite: true)
                throw ExecutionError.nonFinite(node: executor.graph.outputs.first?.name ?? "graph output", op: "graph output")
            }
            let width = logits.shape[1]
            guard width >= classes else {
                throw DatasetError.mismatch("model has \(width) outputs but the dataset has labels up to \(classes - 1)")
            }
            for (row, label) in zip(0..<range.count, dataset.labels[range]) {
                let scores = logits.scalars[row * width..<(row + 1) * width]
                let target = scores[scores.startIndex + label]
                // Rank of the true class: how many scores beat it (ties broken toward the lower index, as argmax does).
                var better = 0
                for (j, s) in scores.enumerated() where s > target || (s == target && j < label) { better += 1 }
                if better == 0 { correct1 += 1; perClassCorrect[label] += 1 }
                if better < 5 { correct5 += 1 }
                var best = scores.startIndex
                for j in scores.indices where scores[j] > scores[best] { best = j }
                predictions.append(best - scores.startIndex)
                perClassTotal[label] += 1
            }
            done = range.upperBound
            progress?(done, dataset.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let n = max(1, dataset.count)
        return AccuracyReport(images: dataset.count, top1: Double(correct1) / Double(n), top5: Double(correct5) / Double(n),
                              perClass: (0..<classes).map { perClassTotal[$0] > 0 ? Double(perClassCorrect[$0]) / Double(perClassTotal[$0]) : nil },
                              seconds: seconds, imagesPerSecond: Double(dataset.count) / max(seconds, 1e-9), predictions: predictions)
    }
}
