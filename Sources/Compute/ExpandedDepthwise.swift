import CKernels
import Glibc

/// A 1×1 convolution whose output only a depthwise convolution reads, and the 1×1 convolution after that (the
/// expansion, depthwise and projection layers of MobileNetV2's and EfficientNet's blocks), run together one band of
/// rows at a time: each band's expanded rows go into a buffer of the core's own, the depthwise layer reads them there
/// and the projection reads its rows in turn, so neither intermediate map is stored whole (the expanded one is six
/// times the block's input: 4.8 MB in MobileNetV2's first block at 224 px). At batch 1 the workers take the output's
/// rows in halves: a block is one region of the pool instead of three, and each core reads only rows it computed (the
/// rows under both halves' windows are expanded by both).
///
/// Measured (MobileNetV2 and EfficientNet-Lite0 at 224 px, batch 1, both ways alternated batch by batch in one
/// process): in the host's state where two threads run whole passes ~1.6× slower, 8–14% faster (MobileNetV2
/// 2,653–2,696 → 2,288–2,349 µs, EfficientNet-Lite0 3,011–3,072 → 2,755–2,837); otherwise even on one thread
/// (3,270–3,286 → 3,263–3,267) and 1–3% slower on two (1,646–1,726 → 1,667–1,740): the rows expanded twice. Bands of
/// 256 KB to 1.5 MB ran within 3% of each other: the gain is the cores keeping their rows, not the cache. Batch 64
/// (passes side by side, one image's bands on each thread) even. `WorkerChoice` takes the bands or not by timing both.
///
/// Each value is the one the layers give apart: the products on the same packed kernel with the bias, residual and
/// clamp as they store them, the depthwise taps through `wc_depthwise_rows` on a band of rows with the padding shifted
/// to match, where each output is its bias, then fma(input, tap, sum) over its taps inside the map in row-major
/// order, whatever the band.
public enum ExpandedDepthwise {
    /// Whether the layers run here in bands: AVX-512 (where the depthwise kernel reads a band as it stands; measured
    /// there only), square 3×3 or 5×5 windows at stride 1 or 2 without dilation onto outputs at least 16 wide, and an
    /// expanded map of at least `smallestExpansion` bytes an image. On 14×14 maps the rows expanded twice cost more than
    /// the bands gained (EfficientNet-Lite0 8–10% slower with them there); from 1 MB instead of 512 KB (leaving out
    /// 28×28 maps) MobileNetV2 ran 1–3% slower.
    public static func applies(inputShape: [Int], expandedChannels: Int, window: Window2D) -> Bool {
        guard runsHere, inputShape.count == 4, expandedChannels > 0 else { return false }
        let (k, s) = (window.kernel, window.strides)
        guard k.h == k.w, k.h == 3 || k.h == 5, s.h == s.w, s.h == 1 || s.h == 2, window.dilations == (1, 1),
              !window.ceilMode, let size = window.outputSize(h: inputShape[2], w: inputShape[3]), size.w >= 16,
              let bytes = checkedElementCount(expandedChannels, inputShape[2], inputShape[3], 4) else { return false }
        return bytes >= smallestExpansion
    }

    /// Whether this processor's kernels take the bands at all (AVX-512): where not, the executor marks no blocks.
    public static var runsHere: Bool { wc_kernels_isa() == Int32(WC_ISA_AVX512) }

    /// Expanded maps from this many bytes an image run in bands (`applies`).
    public static let smallestExpansion = 512 << 10

    /// About this many bytes of expanded rows a band holds (from 256 KB to 1.5 MB within 3%; 192 KB slower).
    public static let bandBytes = 384 << 10

    /// The 1×1 convolution after the pair, when it runs in the same bands (a block's projection): its packed weights,
    /// bias and activation, and the fused Add's other operand (a tensor of its output's shape), added after the bias.
    public struct Projection {
        public let weights: PackedWeights
        public let bias: [Float]?
        public let activation: Activation
        public let residual: Tensor<Float>?

        public init(weights: PackedWeights, bias: [Float]?, activation: Activation, residual: Tensor<Float>?) {
            (self.weights, self.bias, self.activation, self.residual) = (weights, bias, activation, residual)
        }
    }

    /// The depthwise convolution (weight [C, 1, k, k], `window`, `activation`) of the 1×1 convolution `expand`
    /// (C output channels, with `expandBias` and `expandActivation`) of `input` [N, IC, H, W]; with `projection`, that
    /// convolution of it too, each band's depthwise rows kept in a buffer of their own. Callers check `applies` and the
    /// operands' shapes (the residual's included).
    public static func convolve(_ input: Tensor<Float>, expand: PackedWeights, expandBias: [Float]?,
                                expandActivation: Activation, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                                activation: Activation, projection: Projection? = nil,
                                bandBytes: Int = ExpandedDepthwise.bandBytes) -> Tensor<Float> {
        let (n, ic, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let c = expand.outputChannels, (kh, s, top) = (window.kernel.h, window.strides.h, window.pads.top)
        precondition(expand.group == 1 && expand.depth == ic && weight.shape == [c, 1, kh, kh]
                        && (projection.map { $0.weights.group == 1 && $0.weights.depth == c } ?? true),
                     "ExpandedDepthwise: input \(input.shape), expansion to \(expand.outputChannels), weight \(weight.shape)")
        let (oh, ow) = window.outputSize(h: h, w: w)!
        let oc = projection?.weights.outputChannels ?? c
        // Output rows a band: a multiple of the depthwise kernel's eight rows where the buffer allows.
        let fitting = max(1, (bandBytes / (c * w * 4) - (kh - s)) / s)
        let band = fitting >= 8 ? fitting / 8 * 8 : fitting
        let capacity = (band - 1) * s + kh  // input rows a band reads at most
        let taps = kh * kh
        let (eLow, eHigh) = expandActivation.bounds, (low, high) = activation.bounds
        var output = Tensor<Float>(shape: [n, oc, oh, ow], unsafeUninitialized: { _ in })
        input.scalars.withUnsafeBufferPointer { x in
          weight.scalars.withUnsafeBufferPointer { wt in
            output.scalars.withUnsafeMutableBufferPointer { out in
              (expandBias ?? []).withUnsafeBufferPointer { eb in
                (projection?.bias ?? []).withUnsafeBufferPointer { pb in
                  (projection?.residual?.scalars ?? []).withUnsafeBufferPointer { res in
                    let x = Int(bitPattern: x.baseAddress), wt = Int(bitPattern: wt.baseAddress)
                    let out = Int(bitPattern: out.baseAddress), res = Int(bitPattern: res.baseAddress)
                    let eb = expandBias == nil ? nil : Int(bitPattern: eb.baseAddress)
                    let pb = projection?.bias == nil ? nil : Int(bitPattern: pb.baseAddress)
                    // Output rows [first, end) of image `image`, one band after another; the rows the next band
                    // shares with this one are moved to the buffer's front rather than computed again.
                    func rows(_ image: Int, _ first: Int, _ end: Int) {
                        let x = UnsafePointer<Float>(bitPattern: x)! + image * ic * h * w
                        let wt = UnsafePointer<Float>(bitPattern: wt)!
                        let out = UnsafeMutablePointer<Float>(bitPattern: out)! + image * oc * oh * ow
                        let residual = projection?.residual == nil ? nil : UnsafePointer<Float>(bitPattern: res)! + image * oc * oh * ow
                        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: c * capacity * w)
                        // The band's depthwise rows, when a projection follows (each channel's band * ow apart).
                        let middle = projection == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: c * band * ow)
                        var scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)
                        defer { buffer.deallocate(); middle?.deallocate(); scratch.deallocate() }
                        var held = (low: 0, high: 0)  // input rows in the buffer, from its first row
                        var r0 = first
                        while r0 < end {
                            let r1 = min(end, r0 + band)
                            let from = max(0, r0 * s - top), to = min(h, (r1 - 1) * s - top + kh)
                            var kept = 0
                            if from >= held.low && from < held.high {
                                kept = held.high - from
                                if from > held.low {
                                    for ch in 0..<c {
                                        let plane = buffer + ch * capacity * w
                                        memmove(plane, plane + (from - held.low) * w, kept * w * 4)
                                    }
                                }
                            }
                            let fresh = from + kept
                            if to > fresh {
                                expand.multiply(group: 0, n: (to - fresh) * w, b: x + fresh * w, ldb: h * w,
                                                c: buffer + kept * w, ldc: capacity * w, parallel: false,
                                                bias: eb.map { UnsafePointer<Float>(bitPattern: $0)! }, bounds: (eLow, eHigh))
                            }
                            held = (from, max(to, fresh))
                            // The band's output rows from its input rows: the padding above shifted to the band.
                            var shape = wc_window(window)
                            shape.pad_top = Int32(from - (r0 * s - top))
                            let needed = wc_depthwise_rows_scratch_count(Int32(to - from), Int32(w), &shape, Int32(r1 - r0),
                                                                         Int32(ow))
                            if needed > scratch.count {
                                scratch.deallocate()
                                scratch = .allocate(capacity: needed)
                                scratch.initialize(repeating: 0)
                            }
                            let (planes, planeStride) = middle.map { ($0, band * ow) } ?? (out + r0 * ow, oh * ow)
                            for ch in 0..<c {
                                wc_depthwise_rows(buffer + ch * capacity * w, Int32(to - from), Int32(w), &shape,
                                                  wt + ch * taps, bias?[ch] ?? 0, planes + ch * planeStride,
                                                  Int32(r1 - r0), Int32(ow), nil, low, high, scratch.baseAddress)
                            }
                            if let projection, let middle {
                                let (pLow, pHigh) = projection.activation.bounds
                                projection.weights.multiply(group: 0, n: (r1 - r0) * ow, b: middle, ldb: band * ow,
                                                            c: out + r0 * ow, ldc: oh * ow, parallel: false,
                                                            bias: pb.map { UnsafePointer<Float>(bitPattern: $0)! },
                                                            bounds: (pLow, pHigh), residual: residual.map { $0 + r0 * ow })
                            }
                            r0 = r1
                        }
                    }
                    if n == 1 {
                        parallelChunks(oh, minimumChunk: 4, evenly: true) { rows(0, $0.lowerBound, $0.upperBound) }
                    } else {
                        parallelPieces(n) { rows($0, 0, oh) }
                    }
                  }
                }
              }
            }
          }
        }
        return output
    }
}
