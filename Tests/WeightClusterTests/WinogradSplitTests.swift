@testable import Compute
import CKernels
import Testing
import _TestSupport

/// Which calls take Winograd (`Winograd.pays`) and how one image's call splits over the workers
/// (`Winograd.oneImageSplit`): each split gives the same bits as one worker.
@Suite struct WinogradSplitTests {
    /// Where a call takes Winograd: 64 input channels or more on maps that waste few tiles; fewer channels from
    /// `shallowLeastTileChannels` tiles × input channels over the call's images (SqueezeNet 1.1's 16 → 64 layers on 55×55
    /// and 15×15 maps and its 48 → 192 layers on 13×13 at batch 1), with AVX2 from `avx2ShallowLeast` tiles of one
    /// image × input channels² whatever the batch (SqueezeNet 1.1 64 px's 15×15 and 7×7 layers then take the
    /// weights-as-vectors kernel).
    @Test func winogradPaysByChannelsAndTiles() {
        #expect(Winograd.pays(images: 1, outputHeight: 13, outputWidth: 13, inputChannels: 64))
        #expect(!Winograd.pays(images: 64, outputHeight: 3, outputWidth: 3, inputChannels: 64))
        #expect(Winograd.pays(images: 1, outputHeight: 55, outputWidth: 55, inputChannels: 16))
        #expect(Winograd.pays(images: 1, outputHeight: 27, outputWidth: 27, inputChannels: 32))
        #expect(Winograd.pays(images: 1, outputHeight: 13, outputWidth: 13, inputChannels: 48))
        #expect(!Winograd.pays(images: 1, outputHeight: 11, outputWidth: 11, inputChannels: 16))
        #expect(!Winograd.pays(images: 1, outputHeight: 7, outputWidth: 7, inputChannels: 32))
        let avx2 = wc_kernels_isa() == Int32(WC_ISA_AVX2)
        #expect(Winograd.pays(images: 1, outputHeight: 15, outputWidth: 15, inputChannels: 16) == !avx2)
        #expect(Winograd.pays(images: 1, outputHeight: 13, outputWidth: 13, inputChannels: 16) == !avx2)
        #expect(Winograd.pays(images: 4, outputHeight: 7, outputWidth: 7, inputChannels: 32) == !avx2)
        #expect(Winograd.pays(images: 64, outputHeight: 15, outputWidth: 15, inputChannels: 16) == !avx2)
        #expect(Winograd.pays(images: 1, outputHeight: 15, outputWidth: 15, inputChannels: 32))
    }

    /// One image splits over the workers by rows of tiles (under 64 input channels, or on wide maps) or by output
    /// channels (where the rows do not split, on small maps; 48 → 44 on 13×13 has seven rows of tiles): the same bits
    /// as on one worker, with a bias, a residual and a clamp, on maps whose last tile row and column hang over the
    /// edge, with a last panel of output channels not full, and into a range of a wider tensor's channels.
    @Test func winogradOnOneImageGivesTheSameBits() throws {
        #expect(Winograd.splitsByTileRows(images: 1, inputChannels: 16, outputChannels: 24, tileRows: 11, tileColumns: 11,
                                          workers: 2))
        #expect(Winograd.splitsByTileRows(images: 1, inputChannels: 64, outputChannels: 64, tileRows: 28, tileColumns: 28,
                                          workers: 2))
        #expect(!Winograd.splitsByTileRows(images: 1, inputChannels: 128, outputChannels: 128, tileRows: 14,
                                           tileColumns: 14, workers: 2))
        #expect(Winograd.splitsByOutputChannels(images: 1, inputChannels: 64, outputChannels: 44, tiles: 25, workers: 2))
        #expect(Winograd.oneImageSplit(images: 1, inputChannels: 48, outputChannels: 44, tileRows: 7, tileColumns: 7,
                                       workers: 2) == .outputChannels)
        for (c, size, oc) in [(16, 21, 24), (32, 16, 40), (8, 31, 9), (64, 9, 44), (96, 7, 40), (64, 55, 12), (48, 13, 44)] {
            let x = Tensor(shape: [1, c, size, size], scalars: ConvolutionTests.random(c * size * size, seed: 4))
            let wt = Tensor(shape: [oc, c, 3, 3], scalars: ConvolutionTests.random(oc * c * 9, seed: 5))
            let bias = ConvolutionTests.random(oc, seed: 6)
            let residual = Tensor(shape: [1, oc, size, size], scalars: ConvolutionTests.random(oc * size * size, seed: 7))
            let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
            let prepared = Winograd.PreparedWeights(wt)
            prepared.packForProduct()
            func run() throws -> (Tensor<Float>, Tensor<Float>) {
                let own = try conv2d(x, weight: wt, bias: bias, window: window, activation: .clip(low: 0, high: 6), prepared: prepared,
                                     residual: residual)
                var wide = Tensor<Float>(shape: [1, oc + 3, size, size], scalars: [Float](repeating: -1, count: (oc + 3) * size * size))
                try conv2d(x, weight: wt, bias: bias, window: window, prepared: prepared, into: &wide, firstChannel: 2)
                return (own, wide)
            }
            let (one, oneWide) = try ComputeThreads.limited(to: 1) { try run() }
            let (all, allWide) = try run()
            let (same, sameWide) = (one.scalars == all.scalars, oneWide.scalars == allWide.scalars)
            #expect(same, "c\(c) \(size)×\(size) oc\(oc)")
            #expect(sameWide, "c\(c) \(size)×\(size) oc\(oc) into channels from 2")
            // The naive loop only on the smaller maps (debug builds).
            guard size * size * c * oc < 1 << 20 else { continue }
            let reference = ConvolutionTests.naive(x, wt, bias, window)
            let expected = zip(reference.scalars, residual.scalars).map { min(max($0 + $1, 0), 6) }
            #expect(TestSupport.maxAbsDifference(all.scalars, expected) < 1e-4)
        }
    }
}
