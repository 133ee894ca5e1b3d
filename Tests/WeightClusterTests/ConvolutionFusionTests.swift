@testable import Compute
import Execution
import ModelGraph
import Testing
import _TestSupport

/// The convolution fast paths (depthwise along rows and across channels, one GEMM per image, the fused bias / residual / clamp pass) against the
/// definition, and the executor's Pad / Add / Relu / Clip fusion against the same graph run node by node.
@Suite struct ConvolutionFusionTests {
    /// Any-kernel, any-stride, grouped convolution by its definition (each tap a fused multiply-add onto the sum, in
    /// row-major order), then + residual, then clamp.
    static func naive(_ x: Tensor<Float>, _ wt: Tensor<Float>, _ bias: [Float], _ window: Window2D, group: Int,
                      residual: Tensor<Float>? = nil, activation: Activation = .none) -> Tensor<Float> {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oc, icg, kh, kw) = (wt.shape[0], wt.shape[1], wt.shape[2], wt.shape[3])
        let (oh, ow) = window.outputSize(h: h, w: w)!
        let ocg = oc / group
        var out = Tensor<Float>(zeros: [n, oc, oh, ow])
        let (low, high) = activation.bounds
        for b in 0..<n { for o in 0..<oc { for y in 0..<oh { for xx in 0..<ow {
            var s = bias[o]
            for i in 0..<icg { for ki in 0..<kh { for kj in 0..<kw {
                let ch = (o / ocg) * icg + i
                let iy = y * window.strides.h + ki * window.dilations.h - window.pads.top
                let ix = xx * window.strides.w + kj * window.dilations.w - window.pads.left
                if iy >= 0 && iy < h && ix >= 0 && ix < w {
                    let input = x.scalars[((b * c + ch) * h + iy) * w + ix]
                    s = s.addingProduct(input, wt.scalars[((o * icg + i) * kh + ki) * kw + kj])
                }
            } } }
            let index = ((b * oc + o) * oh + y) * ow + xx
            if let residual { s += residual.scalars[index] }
            out.scalars[index] = min(max(s, low), high)
        } } } }
        return out
    }

    struct Case: Sendable, CustomStringConvertible {
        var n, c, h, w, k, stride, dilation: Int
        var pads: (Int, Int, Int, Int)
        var description: String { "n\(n) c\(c) \(h)x\(w) k\(k) s\(stride) d\(dilation) pads\(pads)" }
    }

    static let depthwiseCases = [
        Case(n: 1, c: 3, h: 7, w: 9, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 4, h: 8, w: 8, k: 3, stride: 2, dilation: 1, pads: (0, 0, 1, 1)),
        Case(n: 3, c: 5, h: 11, w: 6, k: 5, stride: 2, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 9, w: 10, k: 5, stride: 1, dilation: 1, pads: (1, 2, 3, 2)),
        Case(n: 2, c: 3, h: 10, w: 9, k: 3, stride: 3, dilation: 2, pads: (2, 1, 0, 2)),
        Case(n: 1, c: 2, h: 3, w: 2, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        // Outputs 16 or more wide: along rows (without AVX-512 conv2d runs those under `depthwiseAcrossWidth` across channels).
        Case(n: 2, c: 3, h: 6, w: 21, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 7, w: 40, k: 5, stride: 2, dilation: 1, pads: (2, 2, 2, 2)),
        // Rows in groups of eight and a last group of two, an odd width at stride 2; stride 3 (each row as three
        // phases) with dilation; a 7×7 kernel.
        Case(n: 1, c: 3, h: 19, w: 33, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 2, h: 20, w: 52, k: 3, stride: 3, dilation: 2, pads: (2, 1, 0, 2)),
        Case(n: 1, c: 2, h: 17, w: 18, k: 7, stride: 1, dilation: 1, pads: (3, 3, 3, 3)),
        // 5×5 at strides 1 and 2 and 3×3 with uneven padding, over several strips of rows.
        Case(n: 1, c: 2, h: 21, w: 24, k: 5, stride: 1, dilation: 1, pads: (2, 1, 0, 2)),
        Case(n: 2, c: 2, h: 23, w: 35, k: 5, stride: 2, dilation: 1, pads: (1, 2, 2, 1)),
        Case(n: 1, c: 3, h: 18, w: 17, k: 3, stride: 1, dilation: 1, pads: (0, 1, 1, 0)),
        // More channels than one block of sixteen, the last block partly filled; one image split over the workers; planes
        // not a multiple of four (the flattened path sums four at once); maps wider than a vector taken across rows.
        Case(n: 1, c: 37, h: 5, w: 4, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 3, c: 7, h: 12, w: 12, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 5, h: 9, w: 9, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 21, h: 5, w: 4, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 3, c: 19, h: 4, w: 3, k: 3, stride: 2, dilation: 2, pads: (2, 2, 2, 2)),
        // Planes of up to 64 floats permuted out of registers: one pair of vectors (up to 32 floats) or two, at strides 1
        // (outputs narrower than the input) and 2, fewer channels than the four planes summed at once.
        Case(n: 5, c: 3, h: 4, w: 4, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 3, c: 2, h: 8, w: 8, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 6, h: 7, w: 7, k: 5, stride: 2, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 5, h: 6, w: 6, k: 3, stride: 2, dilation: 1, pads: (0, 0, 1, 1)),
        Case(n: 2, c: 9, h: 8, w: 7, k: 3, stride: 1, dilation: 1, pads: (1, 0, 1, 0)),
        Case(n: 2, c: 9, h: 8, w: 8, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 4, c: 5, h: 2, w: 2, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        // Along the flattened plane on AVX2 (stride 1, outputs as wide as the input): dilated taps.
        Case(n: 2, c: 5, h: 6, w: 6, k: 3, stride: 1, dilation: 2, pads: (2, 2, 2, 2)),
        // Across channels: 5×5 on 14×14 (EfficientNet-Lite0), outputs inside the input in x four at a time, whole
        // 8 × 8 tiles of the channels-last copies and a partial one; 3×3 at stride 2 with rows cut by the border.
        Case(n: 1, c: 20, h: 14, w: 14, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 2, c: 11, h: 13, w: 12, k: 3, stride: 2, dilation: 1, pads: (1, 0, 1, 1)),
        // Stride 2, 7 to 15 outputs wide: along rows without the bordered copy on AVX2 (`wc_depthwise_stride2_runs`):
        // groups of four rows and a partial one, vectors at both ends of a row read from zero-filled stretches, an
        // interior vector (no left padding), 5×5 and 7×7 taps.
        Case(n: 2, c: 3, h: 27, w: 28, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 4, h: 14, w: 14, k: 5, stride: 2, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 15, w: 30, k: 7, stride: 2, dilation: 1, pads: (3, 3, 3, 3)),
        Case(n: 1, c: 2, h: 9, w: 31, k: 3, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        Case(n: 2, c: 3, h: 20, w: 29, k: 3, stride: 2, dilation: 1, pads: (1, 2, 0, 1)),
        // Stride 2, outputs 7 or 8 wide, on each row split into its even and odd columns (AVX2): TensorFlow's 5×5 after
        // its Pad (17 → 7, no padding), a plane of more than eight output rows (a second, partial block), 3×3 at
        // padding 1 (14 → 7), 5×5 onto 8 wide with uneven padding.
        Case(n: 2, c: 3, h: 17, w: 17, k: 5, stride: 2, dilation: 1, pads: (0, 0, 0, 0)),
        Case(n: 1, c: 2, h: 35, w: 15, k: 5, stride: 2, dilation: 1, pads: (1, 2, 2, 1)),
        Case(n: 2, c: 3, h: 14, w: 14, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 16, w: 16, k: 5, stride: 2, dilation: 1, pads: (2, 2, 1, 1)),
        // Stride 1 wider than `depthwiseFlatWidth`: along rows again (narrower ones above run along the flattened plane).
        Case(n: 2, c: 3, h: 5, w: 70, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 9, w: 67, k: 5, stride: 1, dilation: 1, pads: (2, 0, 2, 1)),
        // 3×3 "same" at stride 1, 12 or more wide: on AVX2 without the bordered copy, four rows at a time (a partial
        // last group), both ends of a row and interior vectors, a single row; rows not a whole number of vectors wide
        // (the last vector overlapping the one before by 4, 7 and 3 lanes).
        Case(n: 2, c: 3, h: 10, w: 16, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 5, w: 32, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 1, w: 24, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 3, h: 6, w: 28, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 2, h: 9, w: 17, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 3, c: 2, h: 13, w: 13, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        // 3×3 at stride 2, outputs half the input's width and 8 or more wide: on AVX2 without the bordered copy (also
        // for outputs under `depthwiseAcrossWidth`), left padding 1 (column −1 a zero in the first vector) and 0
        // (column w a zero in the last), one vector a row and a last one overlapping by 4 lanes, no top padding.
        Case(n: 2, c: 3, h: 9, w: 32, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 8, w: 16, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 2, h: 11, w: 56, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 3, h: 10, w: 16, k: 3, stride: 2, dilation: 1, pads: (0, 0, 1, 1)),
        Case(n: 2, c: 2, h: 7, w: 56, k: 3, stride: 2, dilation: 1, pads: (1, 0, 1, 1)),
        // 5×5 "same" at stride 1, 12 or more wide: on AVX2 without the bordered copy; under 16 wide one vector at a
        // time, seven rows a block (14 rows) or four (1 row: a partial block); from 16 wide two vectors at a time, four
        // rows a block: the first with an inside one or the last (16 wide), inside ones in pairs (48 and 41 wide), the
        // last with the one before or alone (17 wide); a last vector overlapping the one before by 4, 2, 7 and 3
        // lanes, and inside vectors moved left so as not to read past the row (17, 25 and 41 wide).
        Case(n: 1, c: 2, h: 28, w: 28, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 2, c: 3, h: 14, w: 14, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 16, w: 12, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 2, c: 2, h: 9, w: 17, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 3, h: 1, w: 13, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 5, w: 25, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 6, w: 48, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 2, c: 2, h: 5, w: 41, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 2, h: 7, w: 16, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        // 5×5 at stride 2 with left padding 2 or 1 (TensorFlow's "same"), outputs half the input's width and 16 or more
        // wide: on AVX2 without the bordered copy, four rows a block (two and a partial one; one), both ends of a row,
        // an interior vector and a last one overlapping by 4 lanes, top padding 1 and 2.
        Case(n: 2, c: 3, h: 22, w: 56, k: 5, stride: 2, dilation: 1, pads: (2, 2, 1, 1)),
        Case(n: 1, c: 2, h: 9, w: 32, k: 5, stride: 2, dilation: 1, pads: (1, 2, 2, 1)),
        Case(n: 2, c: 3, h: 21, w: 56, k: 5, stride: 2, dilation: 1, pads: (1, 1, 2, 2)),
        Case(n: 1, c: 2, h: 8, w: 32, k: 5, stride: 2, dilation: 1, pads: (2, 1, 1, 3)),
        // ... and 6 or 7 outputs wide at left padding 1 (one vector a row, the values past the row masked off); 5
        // and 4 wide stay across channels.
        Case(n: 2, c: 3, h: 14, w: 14, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 8, w: 8, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 2, h: 11, w: 10, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 2, h: 12, w: 12, k: 3, stride: 2, dilation: 1, pads: (1, 1, 0, 0)),
        Case(n: 1, c: 3, h: 9, w: 12, k: 3, stride: 2, dilation: 1, pads: (0, 1, 1, 1)),
        // One image on AVX-512 across channels sixteen at a time (`wc_depthwise_across16_pays`): EfficientNet-Lite0's
        // 5×5 on 7×7 (two blocks of sixteen and a partial one), 3×3 onto 2×2, and a 5×5 window with uneven padding
        // onto 8 wide (a whole group of eight outputs, taps cut on both sides).
        Case(n: 1, c: 35, h: 7, w: 7, k: 5, stride: 1, dilation: 1, pads: (2, 2, 2, 2)),
        Case(n: 1, c: 17, h: 2, w: 2, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 18, h: 9, w: 10, k: 5, stride: 1, dilation: 1, pads: (1, 3, 2, 0)),
        // Outputs of 2×2 under 3×3 taps, channels a multiple of four (AVX-512: four planes a vector along the
        // flattened plane): inputs of 2×2 (three images), of 4×4 at stride 2 (four loads a group of planes), of 3×3
        // with uneven padding (three loads).
        Case(n: 3, c: 12, h: 2, w: 2, k: 3, stride: 1, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 2, c: 8, h: 4, w: 4, k: 3, stride: 2, dilation: 1, pads: (1, 1, 1, 1)),
        Case(n: 1, c: 8, h: 3, w: 3, k: 3, stride: 1, dilation: 1, pads: (0, 1, 0, 1)),
    ]

    @Test(arguments: depthwiseCases)
    func depthwiseMatchesDefinitionExactly(_ k: Case) throws {
        let x = Tensor(shape: [k.n, k.c, k.h, k.w], scalars: ConvolutionTests.random(k.n * k.c * k.h * k.w, seed: 11))
        let wt = Tensor(shape: [k.c, 1, k.k, k.k], scalars: ConvolutionTests.random(k.c * k.k * k.k, seed: 12))
        let bias = ConvolutionTests.random(k.c, seed: 13)
        let window = Window2D(kernel: (k.k, k.k), strides: (k.stride, k.stride), dilations: (k.dilation, k.dilation), pads: k.pads)
        let (oh, ow) = window.outputSize(h: k.h, w: k.w)!
        let residual = Tensor(shape: [k.n, k.c, oh, ow], scalars: ConvolutionTests.random(k.n * k.c * oh * ow, seed: 14))
        for (activation, r) in [(Activation.none, nil), (.relu, nil), (.clip(low: -0.5, high: 0.25), residual), (.none, residual)] {
            let ours = try conv2d(x, weight: wt, bias: bias, window: window, group: k.c, activation: activation, residual: r)
            let reference = Self.naive(x, wt, bias, window, group: k.c, residual: r, activation: activation)
            // Same sums in the same order: bit for bit.
            #expect(ours.scalars == reference.scalars, "\(k) \(activation) residual \(r != nil)")
            // conv2d picks one path by the map's width and stride; every path gives the same values on every case.
            var across = Tensor<Float>(zeros: [k.n, k.c, oh, ow])
            depthwiseConv2dAcrossChannels(x, weight: wt, bias: bias, window: window, activation: activation,
                                          residual: r, into: &across)
            #expect(across.scalars == reference.scalars, "across channels: \(k) \(activation)")
            var rows = Tensor<Float>(zeros: [k.n, k.c, oh, ow]), flat = rows
            depthwiseConv2d(x, weight: wt, bias: bias, window: window, activation: activation, residual: r, into: &rows)
            #expect(rows.scalars == reference.scalars, "along rows: \(k) \(activation)")
            if depthwiseConv2dFlat(x, weight: wt, bias: bias, window: window, activation: activation, residual: r,
                                   into: &flat) {
                #expect(flat.scalars == reference.scalars, "along the flattened plane: \(k) \(activation)")
            }
        }
    }

    /// A tap over the padding is never summed, not even as zero times its weight: with an infinite first tap, the
    /// outputs whose first tap falls on the padding stay finite, as in the definition (EfficientNet-Lite0's 5×5 on 7×7
    /// at batch 1, across channels sixteen at a time; 3×3 onto 2×2).
    @Test(arguments: [(7, 5), (2, 3)])
    func depthwiseSkipsTapsOverThePadding(_ size: (Int, Int)) throws {
        let ((h, k), c) = (size, 20)
        let x = Tensor(shape: [1, c, h, h], scalars: ConvolutionTests.random(c * h * h, seed: 15))
        var weights = ConvolutionTests.random(c * k * k, seed: 16)
        for channel in 0..<c { weights[channel * k * k] = .infinity }
        let wt = Tensor(shape: [c, 1, k, k], scalars: weights)
        let bias = ConvolutionTests.random(c, seed: 17)
        let window = Window2D(kernel: (k, k), pads: (k / 2, k / 2, k / 2, k / 2))
        let ours = try conv2d(x, weight: wt, bias: bias, window: window, group: c)
        let reference = Self.naive(x, wt, bias, window, group: c)
        #expect(ours.scalars.filter(\.isFinite).count == reference.scalars.filter(\.isFinite).count)
        #expect(ours.scalars.filter(\.isFinite).count >= c * (k / 2) * (2 * h - k / 2))
        #expect(zip(ours.scalars, reference.scalars).allSatisfy { $0 == $1 || $0.isNaN && $1.isNaN })
        // A bias of −0 and inputs of −0 under positive weights: every output −0 (adding the border's +0 · w would
        // make the padded ones +0).
        let zeros = Tensor(shape: [1, c, h, h], scalars: [Float](repeating: -0.0, count: c * h * h))
        let positive = Tensor(shape: [c, 1, k, k],
                              scalars: ConvolutionTests.random(c * k * k, seed: 18).map { abs($0) + 0.1 })
        let signed = try conv2d(zeros, weight: positive, bias: [Float](repeating: -0.0, count: c), window: window,
                                group: c)
        #expect(signed.scalars.allSatisfy { $0 == 0 && $0.sign == .minus })
    }

    /// The last case's rows of 15 tiles take the AVX2 Winograd transforms (a partial last vector of tiles, an odd
    /// last row of them).
    @Test(arguments: [(1, 1, 0, 5), (3, 1, 0, 5), (1, 3, 1, 5), (4, 3, 1, 5), (2, 1, 1, 5), (2, 3, 1, 29)])
    func gemmPathsAddResidualThenClamp(_ n: Int, _ kernel: Int, _ pad: Int, _ w: Int) throws {
        let (c, oc, h) = (6, 5, 7)
        let x = Tensor(shape: [n, c, h, w], scalars: ConvolutionTests.random(n * c * h * w, seed: 21))
        let wt = Tensor(shape: [oc, c, kernel, kernel], scalars: ConvolutionTests.random(oc * c * kernel * kernel, seed: 22))
        let bias = ConvolutionTests.random(oc, seed: 23)
        let window = Window2D(kernel: (kernel, kernel), pads: (pad, pad, pad, pad))
        let (oh, ow) = window.outputSize(h: h, w: w)!
        let residual = Tensor(shape: [n, oc, oh, ow], scalars: ConvolutionTests.random(n * oc * oh * ow, seed: 24))
        let plain = try conv2d(x, weight: wt, bias: bias, window: window)
        #expect(TestSupport.maxAbsDifference(plain.scalars, Self.naive(x, wt, bias, window, group: 1).scalars) < 1e-4)
        let activation = Activation.clip(low: -1, high: 0.5)
        let fused = try conv2d(x, weight: wt, bias: bias, window: window, activation: activation, residual: residual)
        // The fused pass rounds as Conv, then Add, then Clip would.
        let (low, high) = activation.bounds
        #expect(fused.scalars == zip(plain.scalars, residual.scalars).map { min(max($0 + $1, low), high) })
        if kernel == 3 {
            let winograd = try conv2d(x, weight: wt, bias: bias, window: window, activation: activation,
                                      prepared: Winograd.PreparedWeights(wt), residual: residual)
            let plainWinograd = try conv2d(x, weight: wt, bias: bias, window: window, prepared: Winograd.PreparedWeights(wt))
            #expect(winograd.scalars == zip(plainWinograd.scalars, residual.scalars).map { min(max($0 + $1, low), high) })
        }
    }

    /// One image's 1×1 product large enough to split over the workers, by columns (5 panels) and by panels (12): each
    /// worker adds the bias and residual to its own part and clamps it, the same bits as the plain product + Add + Clip,
    /// and as on one worker.
    @Test(arguments: [40, 96])
    func splitProductAddsResidualThenClamp(_ oc: Int) throws {
        let (c, h) = (64, 14)
        let x = Tensor(shape: [1, c, h, h], scalars: ConvolutionTests.random(c * h * h, seed: 25))
        let wt = Tensor(shape: [oc, c, 1, 1], scalars: ConvolutionTests.random(oc * c, seed: 26))
        let bias = ConvolutionTests.random(oc, seed: 27)
        let residual = Tensor(shape: [1, oc, h, h], scalars: ConvolutionTests.random(oc * h * h, seed: 28))
        let window = Window2D(kernel: (1, 1)), activation = Activation.clip(low: -1, high: 0.5)
        let plain = try conv2d(x, weight: wt, bias: bias, window: window)
        let fused = try conv2d(x, weight: wt, bias: bias, window: window, activation: activation, residual: residual)
        let (low, high) = activation.bounds
        #expect(fused.scalars == zip(plain.scalars, residual.scalars).map { min(max($0 + $1, low), high) })
        let one = try ComputeThreads.limited(to: 1) {
            try conv2d(x, weight: wt, bias: bias, window: window, activation: activation, residual: residual)
        }
        // The same bits on one worker where our own product kernels run; the generic ones go to BLAS, whose sums
        // depend on the shape of each worker's part.
        #expect(ExpandedDepthwiseTests.agree(one, fused))
    }

    @Test func residualOfAnotherShapeIsRefused() throws {
        let x = Tensor<Float>(zeros: [1, 2, 4, 4]), wt = Tensor<Float>(zeros: [3, 2, 1, 1])
        #expect(throws: ComputeError.self) {
            try conv2d(x, weight: wt, bias: nil, window: Window2D(kernel: (1, 1)), residual: Tensor<Float>(zeros: [1, 3, 4, 1]))
        }
    }

    /// x → Pad → depthwise Conv → Clip(0, 6) → 1×1 Conv → Add(·, 1×1 Conv of x) → Relu, plus a Conv → Add with a
    /// broadcast operand: fused, the plan holds Convs only (and the broadcast Add's Conv falls back), with every output
    /// equal, bit for bit, to the unfused run.
    @Test func fusedGraphEqualsNodeByNode() throws {
        let c = 4
        func weight(_ shape: [Int], _ seed: UInt64) -> AnyTensor {
            .float(Tensor(shape: shape, scalars: ConvolutionTests.random(shape.reduce(1, *), seed: seed).map { $0 * 2 }))
        }
        let initializers: [String: AnyTensor] = [
            "pads": .int64(Tensor(shape: [8], scalars: [0, 0, 0, 1, 0, 0, 2, 1])),
            "dw": weight([c, 1, 3, 3], 31), "dwb": weight([c], 32),
            "lo": .float(Tensor(shape: [], scalars: [0])), "hi": .float(Tensor(shape: [], scalars: [6])),
            "pw": weight([c, c, 1, 1], 33), "sk": weight([c, c, 1, 1], 34), "skb": weight([c], 35),
            "row": weight([1, c, 1, 1], 36),
        ]
        let nodes = [
            Node(name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: ["xp"]),
            Node(name: "dw", opType: "Conv", inputs: ["xp", "dw", "dwb"], outputs: ["d"],
                 attributes: ["group": .int(c), "strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])]),
            Node(name: "clip", opType: "Clip", inputs: ["d", "lo", "hi"], outputs: ["d6"]),
            Node(name: "pw", opType: "Conv", inputs: ["d6", "pw"], outputs: ["p"]),
            Node(name: "skip", opType: "Conv", inputs: ["x", "sk", "skb"], outputs: ["s"], attributes: ["strides": .ints([2, 2])]),
            Node(name: "add", opType: "Add", inputs: ["s", "p"], outputs: ["a"]),
            Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
            Node(name: "pw2", opType: "Conv", inputs: ["y", "pw"], outputs: ["q"]),
            Node(name: "add2", opType: "Add", inputs: ["q", "row"], outputs: ["z"]),
        ]
        let graph = Graph(nodes: nodes, initializers: initializers,
                          inputs: [ValueInfo(name: "x", shape: [.fixed(2), .fixed(c), .fixed(9), .fixed(9)])],
                          outputs: [ValueInfo(name: "z", shape: nil)])
        let x = AnyTensor.float(Tensor(shape: [2, c, 9, 9], scalars: ConvolutionTests.random(2 * c * 81, seed: 37).map { $0 * 4 }))
        var separate = Executor.Options()
        separate.fuseActivations = false
        let fused = try Executor(graph: graph)
        #expect(fused.plan.map(\.opType) == ["Conv", "Conv", "Conv", "Conv"])
        let expected = try Executor(graph: graph, options: separate).run(["x": x])["z"]?.floatTensor
        let ours = try fused.run(["x": x])["z"]?.floatTensor
        #expect(ours != nil && ours?.shape == expected?.shape && ours?.scalars == expected?.scalars)
    }

    /// Conv → BatchNormalization → Relu, and a second Conv whose output a BatchNormalization and a graph output both
    /// read: the first normalisation is folded into its Conv (one node left, the Relu fused too), the second stays;
    /// outputs equal the node-by-node run up to rounding.
    @Test func batchNormalizationFoldsIntoTheConvBeforeIt() throws {
        let c = 3
        func tensor(_ shape: [Int], _ seed: UInt64, positive: Bool = false) -> AnyTensor {
            .float(Tensor(shape: shape, scalars: ConvolutionTests.random(shape.reduce(1, *), seed: seed).map { positive ? abs($0) + 0.1 : $0 }))
        }
        let initializers: [String: AnyTensor] = [
            "w": tensor([c, c, 3, 3], 41), "b": tensor([c], 42),
            "scale": tensor([c], 43), "shift": tensor([c], 44), "mean": tensor([c], 45), "var": tensor([c], 46, positive: true),
        ]
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"], outputs: ["n"],
                 attributes: ["epsilon": .float(1e-3)]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["r"]),
            Node(name: "conv2", opType: "Conv", inputs: ["r", "w"], outputs: ["c2"]),
            Node(name: "bn2", opType: "BatchNormalization", inputs: ["c2", "scale", "shift", "mean", "var"], outputs: ["y"]),
        ]
        let graph = Graph(nodes: nodes, initializers: initializers,
                          inputs: [ValueInfo(name: "x", shape: [.fixed(2), .fixed(c), .fixed(8), .fixed(8)])],
                          outputs: [ValueInfo(name: "y", shape: nil), ValueInfo(name: "c2", shape: nil)])
        let x = AnyTensor.float(Tensor(shape: [2, c, 8, 8], scalars: ConvolutionTests.random(2 * c * 64, seed: 47)))
        var separate = Executor.Options()
        separate.fuseActivations = false
        let fused = try Executor(graph: graph)
        #expect(fused.plan.map(\.opType) == ["Conv", "Conv", "BatchNormalization"])
        let expected = try Executor(graph: graph, options: separate).run(["x": x])
        let ours = try fused.run(["x": x])
        for name in ["y", "c2"] {
            let e = try #require(expected[name]?.floatTensor), o = try #require(ours[name]?.floatTensor)
            #expect(o.shape == e.shape)
            let scale = e.scalars.reduce(Float(0)) { max($0, abs($1)) }
            #expect(TestSupport.maxAbsDifference(o.scalars, e.scalars) <= 1e-5 * max(1, scale), "\(name)")
        }
    }

    /// Conv → HardSwish (depthwise and Winograd-sized 3×3) and Conv → Add → HardSigmoid: fused into their Convs, the
    /// outputs equal the node-by-node run bit for bit.
    @Test func hardActivationsFuse() throws {
        let c = 16
        func tensor(_ shape: [Int], _ seed: UInt64) -> AnyTensor {
            .float(Tensor(shape: shape, scalars: ConvolutionTests.random(shape.reduce(1, *), seed: seed).map { $0 * 3 }))
        }
        let nodes = [
            Node(name: "dw", opType: "Conv", inputs: ["x", "dw", "b"], outputs: ["d"], attributes: ["group": .int(c), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "hs", opType: "HardSwish", inputs: ["d"], outputs: ["h"]),
            Node(name: "full", opType: "Conv", inputs: ["h", "w", "b"], outputs: ["f"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "hs2", opType: "HardSwish", inputs: ["f"], outputs: ["g"]),
            Node(name: "pw", opType: "Conv", inputs: ["g", "pw"], outputs: ["p"]),
            Node(name: "add", opType: "Add", inputs: ["p", "x"], outputs: ["a"]),
            Node(name: "sig", opType: "HardSigmoid", inputs: ["a"], outputs: ["y"], attributes: ["alpha": .float(0.25), "beta": .float(0.4)]),
        ]
        let graph = Graph(nodes: nodes, initializers: ["dw": tensor([c, 1, 3, 3], 51), "b": tensor([c], 52), "w": tensor([c, c, 3, 3], 53),
                                                       "pw": tensor([c, c, 1, 1], 54)],
                          inputs: [ValueInfo(name: "x", shape: [.fixed(2), .fixed(c), .fixed(7), .fixed(7)])],
                          outputs: [ValueInfo(name: "y", shape: nil)])
        let x = AnyTensor.float(Tensor(shape: [2, c, 7, 7], scalars: ConvolutionTests.random(2 * c * 49, seed: 55).map { $0 * 4 }))
        var separate = Executor.Options()
        separate.fuseActivations = false
        let fused = try Executor(graph: graph)
        #expect(fused.plan.map(\.opType) == ["Conv", "Conv", "Conv"])
        let expected = try Executor(graph: graph, options: separate).run(["x": x])["y"]?.floatTensor
        let ours = try fused.run(["x": x])["y"]?.floatTensor
        #expect(ours != nil && ours?.shape == expected?.shape && ours?.scalars == expected?.scalars)
    }
}
