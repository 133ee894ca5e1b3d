import Compute
import Foundation

/// Preprocessing applied to raw images before they reach a model.
/// Defaults match ../shared/models/README.md: pad 2, x = (p/255 − 0.2860)/0.3530.
public struct Preprocessing: Sendable, Equatable {
    public var pad: Int
    public var mean: Float
    public var std: Float

    public init(pad: Int = 2, mean: Float = 0.2860, std: Float = 0.3530) {
        self.pad = pad
        self.mean = mean
        self.std = std
    }

    /// Leaves float images exactly as stored (they are already preprocessed).
    public static let none = Preprocessing(pad: 0, mean: 0, std: 1)
}

/// Images as an NCHW float tensor plus integer labels.
public struct ImageDataset: Sendable {
    public var images: Tensor<Float>
    public var labels: [Int]

    public init(images: Tensor<Float>, labels: [Int]) throws {
        guard images.rank == 4 else { throw DatasetError.mismatch("images must be N×C×H×W, got \(images.shape)") }
        guard images.shape[0] == labels.count else {
            throw DatasetError.mismatch("\(images.shape[0]) images but \(labels.count) labels")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 }) {
            throw DatasetError.mismatch("label \(labels[bad]) of image \(bad) is negative; labels are class indices 0, 1, 2, …")
        }
        self.images = images
        self.labels = labels
    }

    public var count: Int { labels.count }
    public var classCount: Int { (labels.max() ?? -1) + 1 }

    /// Images `range` as a batch tensor.
    public func batch(_ range: Range<Int>) -> Tensor<Float> {
        let per = images.count / max(1, count)
        var shape = images.shape
        shape[0] = range.count
        return Tensor(shape: shape, scalars: Array(images.scalars[range.lowerBound * per..<range.upperBound * per]))
    }

    /// The first `n` examples.
    public func prefix(_ n: Int) -> ImageDataset {
        let k = min(n, count)
        return try! ImageDataset(images: batch(0..<k), labels: Array(labels[0..<k]))
    }

    /// Builds a dataset from raw pixels: [N,H,W] or [N,C,H,W], bytes scaled by 1/255 (floats taken as they are),
    /// then zero-padded and normalised.
    public static func preprocessed(pixels: [Float], shape: [Int], labels: [Int], scale: Float,
                                    preprocessing p: Preprocessing) throws -> ImageDataset {
        let nchw: [Int]
        switch shape.count {
        case 3: nchw = [shape[0], 1, shape[1], shape[2]]
        case 4: nchw = shape
        default: throw DatasetError.mismatch("images must be N×H×W or N×C×H×W, got \(shape)")
        }
        let (n, c, h, w) = (nchw[0], nchw[1], nchw[2], nchw[3])
        guard p.pad >= 0, p.pad <= ShapeLimits.maxWindow, let count = checkedElementCount([n, c, h + 2 * p.pad, w + 2 * p.pad]),
              checkedElementCount(nchw) == pixels.count else {
            throw DatasetError.mismatch("\(shape) images padded by \(p.pad) are more than the \(ShapeLimits.maxElements)-value limit")
        }
        let (ph, pw) = (h + 2 * p.pad, w + 2 * p.pad)
        // Padding is black (0) before normalisation, as torchvision's Pad does.
        let padValue = (0 - p.mean) / p.std
        var out = [Float](repeating: padValue, count: count)
        for plane in 0..<(n * c) {
            for y in 0..<h {
                for x in 0..<w {
                    out[(plane * ph + y + p.pad) * pw + x + p.pad] = (pixels[(plane * h + y) * w + x] * scale - p.mean) / p.std
                }
            }
        }
        guard out.allSatisfy(\.isFinite) else {
            throw DatasetError.mismatch("preprocessing gives NaN or infinite pixel values (mean \(p.mean), std \(p.std)); choose a --std that keeps (x − mean) / std finite, or check the images")
        }
        return try ImageDataset(images: Tensor(shape: [n, c, ph, pw], scalars: out), labels: labels)
    }
}
