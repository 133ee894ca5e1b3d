import CKernels
@testable import Compute
import Testing

/// The direct convolution (`DirectConvolution`, `PointwiseVectors`): which layers take it on this processor, and bit
/// for bit the im2col path's outputs (with bias, residual and clamp), within rounding of the definition.
@Suite struct DirectConvolutionTests {
    @Test(arguments: [
        (n: 3, c: 3, h: 20, w: 31, oc: 19, k: (3, 3), s: 2, d: 1, pads: (1, 1, 0, 1)),
        (n: 3, c: 5, h: 16, w: 16, oc: 8, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 2, c: 4, h: 17, w: 40, oc: 13, k: (7, 7), s: 2, d: 1, pads: (3, 3, 3, 3)),
        (n: 3, c: 2, h: 15, w: 31, oc: 9, k: (3, 3), s: 1, d: 2, pads: (2, 2, 2, 2)),
        (n: 2, c: 6, h: 9, w: 20, oc: 16, k: (1, 5), s: 1, d: 1, pads: (0, 2, 0, 2)),
        (n: 3, c: 8, h: 30, w: 30, oc: 12, k: (1, 1), s: 2, d: 1, pads: (0, 0, 0, 0)),
        (n: 1, c: 16, h: 32, w: 32, oc: 24, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 3, h: 45, w: 32, oc: 40, k: (3, 3), s: 2, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 32, h: 9, w: 16, oc: 64, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 13, c: 6, h: 5, w: 5, oc: 11, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 7, c: 5, h: 7, w: 7, oc: 16, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 12, c: 4, h: 7, w: 7, oc: 9, k: (3, 3), s: 2, d: 1, pads: (1, 1, 1, 1)),
        (n: 20, c: 8, h: 2, w: 2, oc: 8, k: (1, 1), s: 2, d: 1, pads: (0, 0, 0, 0)),
        // Batch 1 on a few channels (the AVX2 kernel's cases): outputs 15 and 13 wide (a vector's last lanes past the
        // row), 13 channels (a panel's second half of one row), a 7×7 stride-2 stem.
        (n: 1, c: 5, h: 15, w: 15, oc: 13, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 3, h: 31, w: 25, oc: 12, k: (7, 7), s: 2, d: 1, pads: (3, 3, 3, 3)),
        // A stem at batch 2 whose runs are all whole vectors (stored straight), 13 channels: a panel of five, its
        // first half stored straight, its second by the pieces' loop.
        (n: 2, c: 3, h: 32, w: 32, oc: 13, k: (3, 3), s: 2, d: 1, pads: (1, 1, 1, 1)),
        // Rows of 31 outputs (SqueezeNet's stem: each row's fourth vector partial, stored whole where the next row's
        // vectors store its last lane again, by pieces on a worker's last row), at batch 1 split by rows over the
        // workers, at batch 2 an image per worker.
        (n: 1, c: 3, h: 63, w: 63, oc: 16, k: (3, 3), s: 2, d: 1, pads: (0, 0, 0, 0)),
        (n: 2, c: 3, h: 64, w: 64, oc: 11, k: (3, 3), s: 2, d: 1, pads: (0, 0, 0, 0)),
        // A stem's three channels on outputs over `avx2StemOutputs` at batch 2: im2col with AVX2 (the stems above on
        // smaller maps take the direct kernel at any batch).
        (n: 2, c: 3, h: 66, w: 66, oc: 8, k: (3, 3), s: 2, d: 1, pads: (1, 1, 1, 1)),
        // 100 weights per output or more (AVX2: the weights as vectors): 99 outputs (a last block of three) and 29
        // channels (three panels, then one of five); batch 1 split by rows (stride 2, uneven padding) and by panels
        // (70 channels: a worker's panels from 40, three and then one of six; dilation 2); a 5×5 window.
        (n: 3, c: 32, h: 9, w: 11, oc: 29, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 30, h: 13, w: 10, oc: 50, k: (3, 3), s: 2, d: 1, pads: (1, 0, 1, 1)),
        (n: 1, c: 29, h: 6, w: 6, oc: 70, k: (3, 3), s: 1, d: 2, pads: (2, 2, 2, 2)),
        (n: 2, c: 12, h: 10, w: 10, oc: 17, k: (5, 5), s: 1, d: 1, pads: (2, 2, 2, 2)),
        // Channels 32 at a time, three outputs a block: 64 channels on 7×7 maps (two tiles of 24 outputs, then one);
        // 96 on 3×3 maps at batch 1 (each worker's 48 channels: one group of 32, then two panels four outputs at a time).
        (n: 2, c: 12, h: 7, w: 7, oc: 64, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 20, h: 3, w: 3, oc: 96, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        // Rows of nine at batch 1 (AVX-512: the weights as vectors, nine outputs a block, a row a tile).
        (n: 1, c: 16, h: 9, w: 9, oc: 40, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        // One image's rows flat (AVX-512, stride 1, 64 weights an output or more): 21 outputs a row, 22 apart, split by
        // rows over the workers (vectors holding one row's end and the next row's start, the last ones reading past
        // the worker's rows); 19 a row under a 5×5 window, 21 apart, the weights as vectors on the flat copy.
        (n: 1, c: 8, h: 21, w: 21, oc: 19, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 1, c: 4, h: 12, w: 19, oc: 16, k: (5, 5), s: 1, d: 1, pads: (2, 2, 2, 2)),
        // AVX2, small maps, several images a copy, each block at one position across them summing only the taps inside
        // the image: 13 images (copies of 7 and 6: blocks of three that span two positions) in two passes of the input
        // channels (20 of them × 9 taps × 32 channels past 16 KB), 70 channels; 12 images at stride 2 with uneven
        // padding; a 5×5 window on 5×5 maps (rows and columns of taps left out); dilation 2.
        (n: 13, c: 20, h: 3, w: 3, oc: 70, k: (3, 3), s: 1, d: 1, pads: (1, 1, 1, 1)),
        (n: 12, c: 12, h: 8, w: 7, oc: 24, k: (3, 3), s: 2, d: 1, pads: (1, 0, 1, 1)),
        (n: 5, c: 8, h: 5, w: 5, oc: 16, k: (5, 5), s: 1, d: 1, pads: (2, 2, 2, 2)),
        (n: 4, c: 12, h: 6, w: 6, oc: 40, k: (3, 3), s: 1, d: 2, pads: (2, 2, 2, 2)),
    ])
    func directConvolutionMatchesIm2col(_ t: (n: Int, c: Int, h: Int, w: Int, oc: Int, k: (Int, Int), s: Int, d: Int,
                                              pads: (Int, Int, Int, Int))) throws {
        let window = Window2D(kernel: t.k, strides: (t.s, t.s), dilations: (t.d, t.d), pads: t.pads)
        let (oh, ow) = try #require(window.outputSize(h: t.h, w: t.w))
        let x = Tensor(shape: [t.n, t.c, t.h, t.w], scalars: ConvolutionTests.random(t.n * t.c * t.h * t.w, seed: 21))
        let wt = Tensor(shape: [t.oc, t.c, t.k.0, t.k.1], scalars: ConvolutionTests.random(t.oc * t.c * t.k.0 * t.k.1, seed: 22))
        let residual = Tensor(shape: [t.n, t.oc, oh, ow], scalars: ConvolutionTests.random(t.n * t.oc * oh * ow, seed: 23))
        let packed = PackedWeights.isWorthwhile ? PackedWeights(wt, group: 1) : nil
        let applies = DirectConvolution.applies(inputShape: x.shape, weightShape: wt.shape, window: window, group: 1,
                                                outputSize: (oh, ow))
        if wc_kernels_isa() == Int32(WC_ISA_AVX512) {
            // Every case whose vectors are mostly outputs (`leastUseful`); four cases written for AVX2's eight lanes
            // (7×5, 6×6, 10×10 and 3×3 outputs) leave too many of the sixteen idle, and take im2col, but for the two at
            // batch 1 on rows of 5 and 6 (stride 2 with uneven padding; dilation 2), which take the weights as vectors
            // (Vectors16.c), as the 7×7 stem at batch 1 does (rows of 13: two blocks of seven, one tile a row). The 9×11
            // outputs at batch 3 (288 weights an output, one image a copy) take the direct kernel on flat rows (99 of
            // 112 lanes).
            var shape = wc_window(window)
            let images = DirectConvolution.imagesPerCopy(batch: t.n, w: t.w, window: window, outputSize: (oh, ow),
                                                         vectors: false)
            let useful = wc_conv_direct_useful(Int32(t.c), Int32(t.w), &shape, Int32(oh), Int32(ow), Int32(images))
            // At batch 1, rows of 4 outputs or more whose vectors of outputs would leave a tenth of their lanes idle,
            // from 64 weights per output: the weights as vectors (five cases).
            let alone = wc_conv_direct_useful(Int32(t.c), Int32(t.w), &shape, Int32(oh), Int32(ow), 1)
            let vectors = t.n == 1 && ow >= 4 && t.c * t.k.0 * t.k.1 >= 64 && alone < DirectConvolution.vectorsBelowUseful
            #expect(vectors == DirectConvolution.weightsAsVectors(batch: t.n, inputWidth: t.w, inputChannels: t.c,
                                                                  weightShape: wt.shape, window: window, outputSize: (oh, ow)))
            #expect(applies == (useful >= DirectConvolution.leastUseful || vectors), "useful lanes \(useful)")
        } else if wc_kernels_isa() == Int32(WC_ISA_AVX2) {
            let stem = t.c <= DirectConvolution.avx2StemChannels && oh * ow <= DirectConvolution.avx2StemOutputs
            let vectors = DirectConvolution.weightsAsVectors(batch: t.n, inputWidth: t.w, inputChannels: t.c,
                                                             weightShape: wt.shape, window: window, outputSize: (oh, ow))
            #expect(vectors == (t.c * t.k.0 * t.k.1 >= 100))
            #expect(applies == (stem || t.n == 1 && t.c <= DirectConvolution.avx2MostChannels || vectors))
            // Up to 12 images a copy on maps of up to 64 outputs, the batch split evenly.
            let copies = (t.n + 11) / 12
            #expect(DirectConvolution.imagesPerCopy(batch: t.n, w: t.w, window: window, outputSize: (oh, ow), vectors: true)
                    == (oh * ow <= 64 ? (t.n + copies - 1) / copies : 1))
        }
        for (bias, activation, withResidual) in [(ConvolutionTests.random(t.oc, seed: 24), Activation.relu, false),
                                                 (nil, .none, false), (ConvolutionTests.random(t.oc, seed: 25), .clip(low: 0, high: 0.5), true)] {
            let add = withResidual ? residual : nil
            let direct = try conv2d(x, weight: wt, bias: bias, window: window, activation: activation, packed: packed,
                                    residual: add)
            var expected = Tensor<Float>(shape: [t.n, t.oc, oh, ow], unsafeUninitialized: { _ in })
            im2colConv2d(x, weight: wt, bias: bias, window: window, group: 1, activation: activation, residual: add,
                         packed: packed, into: &expected)
            #expect(direct.scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern), "bias \(bias != nil) \(activation)")
            // And the definition, to rounding.
            var worst: Float = 0
            for img in 0..<t.n { for o in 0..<t.oc { for oy in 0..<oh { for ox in 0..<ow {
                var sum = bias?[o] ?? 0
                for ch in 0..<t.c { for ki in 0..<t.k.0 { for kj in 0..<t.k.1 {
                    let iy = oy * t.s + ki * t.d - t.pads.0, ix = ox * t.s + kj * t.d - t.pads.1
                    guard iy >= 0, iy < t.h, ix >= 0, ix < t.w else { continue }
                    sum += x.scalars[((img * t.c + ch) * t.h + iy) * t.w + ix] * wt.scalars[((o * t.c + ch) * t.k.0 + ki) * t.k.1 + kj]
                } } }
                let at = ((img * t.oc + o) * oh + oy) * ow + ox
                if withResidual { sum += residual.scalars[at] }
                worst = max(worst, abs(activation(sum) - direct.scalars[at]))
            } } } }
            #expect(worst < 1e-4)
        }
    }

    /// One image's rows flat (AVX-512, stride 1, from 64 weights an output, where at least 2% more of the lanes are
    /// outputs): 21 outputs a row 22 apart, 441 of 464 lanes instead of 21 of 32; a 5×5 window's rows of 19, 228 of
    /// 256. Not under 64 weights an output (one channel under 3×3), at stride 2, or for a group of two images.
    @Test func flatRowsWhereMoreLanesAreOutputs() {
        guard wc_kernels_isa() == Int32(WC_ISA_AVX512) else { return }
        func useful(c: Int, w: Int, k: Int, pad: Int, oh: Int, ow: Int, stride: Int = 1, images: Int = 1) -> Double {
            var shape = wc_window(Window2D(kernel: (k, k), strides: (stride, stride), dilations: (1, 1),
                                           pads: (pad, pad, pad, pad)))
            return wc_conv_direct_useful(Int32(c), Int32(w), &shape, Int32(oh), Int32(ow), Int32(images))
        }
        #expect(useful(c: 8, w: 21, k: 3, pad: 1, oh: 21, ow: 21) == 441.0 / 464)
        #expect(useful(c: 4, w: 19, k: 5, pad: 2, oh: 12, ow: 19) == 228.0 / 256)
        #expect(useful(c: 1, w: 21, k: 3, pad: 1, oh: 21, ow: 21) == 21.0 / 32)
        #expect(useful(c: 8, w: 42, k: 3, pad: 1, oh: 21, ow: 21, stride: 2) == 21.0 / 32)
        #expect(useful(c: 8, w: 21, k: 3, pad: 1, oh: 21, ow: 21, images: 2) == 42.0 / 48)
    }

    /// 1×1 layers with the weights as vectors (AVX2): bit for bit the im2col path's outputs, with bias and ReLU, without
    /// bias, with a residual and a clip, and into channels 2 ..< 2 + oc of a wider tensor (the others untouched): 29
    /// channels (a group of three panels, then one of five), 50 on 2×2 maps (two groups and one of two panels), 8 (one
    /// panel) on 2×8 maps; where it does not apply (batch 1, 63 input channels, 3×3 maps), the same call takes im2col.
    @Test(arguments: [(n: 3, c: 64, h: 4, w: 4, oc: 29), (n: 2, c: 70, h: 2, w: 2, oc: 50), (n: 5, c: 96, h: 2, w: 8, oc: 8),
                      (n: 1, c: 64, h: 4, w: 4, oc: 29), (n: 2, c: 63, h: 4, w: 4, oc: 16), (n: 2, c: 64, h: 3, w: 3, oc: 16)])
    func pointwiseVectorsMatchIm2col(_ t: (n: Int, c: Int, h: Int, w: Int, oc: Int)) throws {
        let window = Window2D(kernel: (1, 1), strides: (1, 1), dilations: (1, 1), pads: (0, 0, 0, 0))
        let x = Tensor(shape: [t.n, t.c, t.h, t.w], scalars: ConvolutionTests.random(t.n * t.c * t.h * t.w, seed: 41))
        let wt = Tensor(shape: [t.oc, t.c, 1, 1], scalars: ConvolutionTests.random(t.oc * t.c, seed: 42))
        let plane = t.h * t.w
        let residual = Tensor(shape: [t.n, t.oc, t.h, t.w], scalars: ConvolutionTests.random(t.n * t.oc * plane, seed: 43))
        let packed = PackedWeights.isWorthwhile ? PackedWeights(wt, group: 1) : nil
        if wc_kernels_isa() == Int32(WC_ISA_AVX2) {
            #expect(PointwiseVectors.applies(inputShape: x.shape, window: window, group: 1)
                    == (t.n > 1 && t.c >= 64 && plane % 4 == 0))
        }
        for (bias, activation, withResidual) in [(ConvolutionTests.random(t.oc, seed: 44), Activation.relu, false),
                                                 (nil, .none, false), (ConvolutionTests.random(t.oc, seed: 45), .clip(low: 0, high: 0.5), true)] {
            let add = withResidual ? residual : nil
            let got = try conv2d(x, weight: wt, bias: bias, window: window, activation: activation, packed: packed,
                                 residual: add)
            var expected = Tensor<Float>(shape: [t.n, t.oc, t.h, t.w], unsafeUninitialized: { _ in })
            im2colConv2d(x, weight: wt, bias: bias, window: window, group: 1, activation: activation, residual: add,
                         packed: packed, into: &expected)
            #expect(got.scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern), "bias \(bias != nil) \(activation)")
            guard !withResidual, let packed else { continue }
            var wide = Tensor<Float>(shape: [t.n, t.oc + 3, t.h, t.w], scalars: Array(repeating: 7, count: t.n * (t.oc + 3) * plane))
            if PointwiseVectors.applies(inputShape: x.shape, window: window, group: 1) {
                PointwiseVectors.convolve(x, packed: packed, bias: bias, activation: activation, residual: nil, into: &wide,
                                          firstChannel: 2)
                for image in 0..<t.n {
                    let at = image * (t.oc + 3) * plane
                    #expect(wide.scalars[at + 2 * plane..<at + (2 + t.oc) * plane].map(\.bitPattern)
                            == expected.scalars[image * t.oc * plane..<(image + 1) * t.oc * plane].map(\.bitPattern))
                    #expect((wide.scalars[at..<at + 2 * plane] + wide.scalars[at + (2 + t.oc) * plane..<at + (t.oc + 3) * plane])
                        .allSatisfy { $0 == 7 })
                }
            }
        }
    }
}
