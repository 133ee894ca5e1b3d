import Foundation

/// How ONNX Resize maps an output coordinate back to the input (`coordinate_transformation_mode`).
public enum ResizeCoordinates: String, Sendable {
    case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric", pytorchHalfPixel = "pytorch_half_pixel"
    case alignCorners = "align_corners", asymmetric, tfHalfPixelForNN = "tf_half_pixel_for_nn"
}

/// ONNX Resize interpolation: nearest (with its rounding), n-linear or n-cubic.
public enum ResizeMode: Sendable, Equatable {
    public enum Rounding: String, Sendable { case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil }
    case nearest(Rounding)
    case linear
    case cubic(coefficient: Float, excludeOutside: Bool)
}

/// Resizes `x` to `shape`, one axis at a time (nearest, linear and cubic are all separable). `scales[a]` is the
/// scale the coordinate transform uses on axis `a` (the given scale, or output/input size when sizes were given).
public func resized(_ x: Tensor<Float>, to shape: [Int], scales: [Float], mode: ResizeMode,
                    coordinates: ResizeCoordinates) throws -> Tensor<Float> {
    guard shape.count == x.rank, scales.count == x.rank, scales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
        throw ComputeError.shapeMismatch("Resize of \(x.shape) needs one positive output size and scale per axis, got \(shape) and \(scales)")
    }
    _ = try elementCount(shape, "Resize output")
    var y = x
    // Shrinking axes first, so that no intermediate is larger than both the input and the output.
    let axes = (0..<x.rank).filter { shape[$0] != x.shape[$0] || scales[$0] != 1 }.sorted { (shape[$0] < x.shape[$0] ? 0 : 1) < (shape[$1] < x.shape[$1] ? 0 : 1) }
    for axis in axes {
        guard x.shape[axis] > 0 || shape[axis] == 0 else { throw ComputeError.shapeMismatch("Resize cannot grow the empty axis \(axis) of \(x.shape)") }
        y = resampled(y, axis: axis, size: shape[axis], scale: scales[axis], mode: mode, coordinates: coordinates)
    }
    return y
}

/// One axis of `resized`: every output index is a weighted sum of at most four input indices along `axis`.
func resampled(_ x: Tensor<Float>, axis: Int, size: Int, scale: Float, mode: ResizeMode, coordinates: ResizeCoordinates) -> Tensor<Float> {
    let length = x.shape[axis]
    let taps = (0..<size).map { resizeTaps(output: $0, outputLength: size, inputLength: length, scale: scale, mode: mode, coordinates: coordinates) }
    var shape = x.shape
    shape[axis] = size
    let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    return Tensor(shape: shape) { out in
        x.scalars.withUnsafeBufferPointer { src in
            for o in 0..<outer {
                let source = src.baseAddress! + o * length * inner
                let destination = out.baseAddress! + o * size * inner
                for (i, tap) in taps.enumerated() {
                    let row = destination + i * inner
                    for j in 0..<inner { row[j] = 0 }
                    for (index, weight) in tap where weight != 0 {
                        let from = source + index * inner
                        for j in 0..<inner { row[j] += weight * from[j] }
                    }
                }
            }
        }
    }
}

/// The input indices and weights that make output index `output` along one axis.
func resizeTaps(output: Int, outputLength: Int, inputLength: Int, scale: Float, mode: ResizeMode,
                coordinates: ResizeCoordinates) -> [(Int, Float)] {
    let xr = Float(output), s = scale
    let position: Float = switch coordinates {
    case .halfPixel: (xr + 0.5) / s - 0.5
    case .halfPixelSymmetric:
        { let adjustment = Float(outputLength) / (s * Float(inputLength)); let center = Float(inputLength) / 2
          return center * (1 - adjustment) + (xr + 0.5) / s - 0.5 }()
    case .pytorchHalfPixel: outputLength > 1 ? (xr + 0.5) / s - 0.5 : 0
    case .alignCorners: outputLength == 1 ? 0 : xr * Float(inputLength - 1) / Float(outputLength - 1)
    case .asymmetric: xr / s
    case .tfHalfPixelForNN: (xr + 0.5) / s
    }
    func clamped(_ i: Int) -> Int { min(max(i, 0), inputLength - 1) }
    switch mode {
    case .nearest(let rounding):
        let f = position.rounded(.down)
        let index: Float = switch rounding {
        case .roundPreferFloor: position - f == 0.5 ? f : position.rounded()
        case .roundPreferCeil: position - f == 0.5 ? f + 1 : position.rounded()
        case .floor: f
        case .ceil: position.rounded(.up)
        }
        return [(clamped(Int(index)), 1)]
    case .linear:
        let p = min(max(position, 0), Float(inputLength - 1))
        let lower = Int(p.rounded(.down)), t = p - Float(lower)
        return [(lower, 1 - t), (clamped(lower + 1), t)]
    case .cubic(let a, let excludeOutside):
        let lower = Int(position.rounded(.down)), t = position - Float(lower)
        var weights: [Float] = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                                ((a + 2) * t - (a + 3)) * t * t + 1,
                                ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                                ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
        let indices = (lower - 1...lower + 2).map { $0 }
        if excludeOutside {
            for (k, i) in indices.enumerated() where i < 0 || i >= inputLength { weights[k] = 0 }
            let sum = weights.reduce(0, +)
            if sum != 0 { weights = weights.map { $0 / sum } }
        }
        return zip(indices.map(clamped), weights).map { ($0, $1) }
    }
}
