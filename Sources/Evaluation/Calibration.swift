import Compute
import Datasets
import Execution
import ModelGraph

/// Activation statistics measured on calibration images.
public enum Calibration {
    /// Mean square of each input channel of every Conv with a constant weight, keyed by weight name.
    public static func convInputEnergy(_ executor: Executor, images: ImageDataset, batchSize: Int = 64) throws -> [String: [Float]] {
        final class Sums { var sums: [String: [Double]] = [:]; var counts: [String: Int] = [:] }
        let state = Sums()
        executor.inputObserver = { node, inputs in
            guard node.opType == "Conv", node.inputs.count > 1, executor.constants[node.inputs[1]] != nil,
                  let x = inputs.first??.floatTensor, x.rank == 4 else { return }
            let (n, c) = (x.shape[0], x.shape[1])
            let plane = x.shape[2] * x.shape[3]
            var sums = state.sums[node.inputs[1]] ?? [Double](repeating: 0, count: c)
            x.scalars.withUnsafeBufferPointer { p in
                for b in 0..<n {
                    for ch in 0..<c {
                        var s: Float = 0
                        let base = (b * c + ch) * plane
                        for i in 0..<plane { s += p[base + i] * p[base + i] }
                        sums[ch] += Double(s)
                    }
                }
            }
            state.sums[node.inputs[1]] = sums
            state.counts[node.inputs[1], default: 0] += n * plane
        }
        defer { executor.inputObserver = nil }
        var done = 0
        while done < images.count {
            let range = done..<min(images.count, done + batchSize)
            _ = try executor(images.batch(range))
            done = range.upperBound
        }
        return state.sums.mapValues { sums in sums.map { Float($0) } }.reduce(into: [:]) { result, entry in
            let count = Float(max(1, state.counts[entry.key] ?? 1))
            result[entry.key] = entry.value.map { $0 / count }
        }
    }
}
