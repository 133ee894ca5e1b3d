import CKernels
/// An activation fused into the convolution's output pass.
public enum Activation: Sendable, Equatable {
    case none, relu
    /// min(max(x, low), high): ONNX Clip with constant bounds (ReLU6 is `clip(low: 0, high: 6)`).
    case clip(low: Float, high: Float)
    /// ONNX HardSigmoid: max(0, min(1, alpha·x + beta)).
    case hardSigmoid(alpha: Float, beta: Float)
    /// ONNX HardSwish: x · max(0, min(1, x/6 + 1/2)).
    case hardSwish

    /// The clamp this activation applies in the output pass; `none` is (−∞, ∞), which leaves every value (NaN
    /// included) as it is. The hard sigmoid and swish clamp nothing there: `conv2d` applies them after the pass.
    @inlinable public var bounds: (low: Float, high: Float) {
        switch self {
        case .none, .hardSigmoid, .hardSwish: (-.infinity, .infinity)
        case .relu: (0, .infinity)
        case .clip(let low, let high): (low, high)
        }
    }

    /// The activation of one value, rounded as the ONNX operator computes it here.
    @inlinable public func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .none: x
        case .relu, .clip: min(max(x, bounds.low), bounds.high)
        case .hardSigmoid(let alpha, let beta): min(1, max(0, alpha * x + beta))
        case .hardSwish: x * min(1, max(0, x / 6 + 0.5))
        }
    }

    /// Whether the activation runs after the output pass (one more pass over the output, in place).
    @inlinable public var isPointwiseAfterPass: Bool {
        switch self {
        case .hardSigmoid, .hardSwish: true
        default: false
        }
    }
}

/// What a convolution does to each output value after the product: add the channel's bias, then a residual tensor of
/// the output's shape (a fused Add), then clamp (the fused activation) — in that order, so each value is rounded
/// exactly as the separate Conv, Add and Relu/Clip nodes would round it.
@usableFromInline
struct ConvolutionEpilogue {
    @usableFromInline let bias: UnsafePointer<Float>?
    @usableFromInline let residual: UnsafePointer<Float>?
    @usableFromInline let low: Float, high: Float

    @usableFromInline init(bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation) {
        self.bias = bias
        self.residual = residual
        (low, high) = activation.bounds
    }

    /// dst = clamp(src + bias[channel] (+ residual)) for `images` images' planes of channels firstChannel…, held in
    /// `src` as [channel, image, planeSize] (row stride `columns`), into NCHW at `dst` (image stride `imageStride`;
    /// `offset` is the NCHW index of `dst[0]`), in one call (`wc_conv_scatter`); `src` may be `dst` for one image.
    @inlinable @inline(__always)
    func scatter(_ src: UnsafePointer<Float>, columns: Int, images: Int, channels: Int, planeSize: Int,
                 to dst: UnsafeMutablePointer<Float>, imageStride: Int, firstChannel: Int, offset: Int) {
        wc_conv_scatter(src, columns, Int32(images), Int32(channels), planeSize, dst, imageStride,
                        bias.map { $0 + firstChannel }, residual.map { $0 + offset }, low, high)
    }

    /// dst[i] = clamp(dst[i] (+ residual[offset + i])), for values that already hold their bias (a bias of −0 leaves
    /// each as it is).
    @inlinable @inline(__always)
    func finish(_ dst: UnsafeMutablePointer<Float>, count: Int, offset: Int) {
        guard residual != nil || low != -.infinity || high != .infinity else { return }
        wc_conv_epilogue(dst, dst, count, -0.0, residual.map { $0 + offset }, low, high)
    }
}
