@testable import Compute
import CKernels
import Testing
import _TestSupport

/// Which calls take Winograd (`Winograd.pays`) and how one image's call splits over the workers
/// (`Winograd.oneImageSplit`): each split gives the same bits as the three-step path.
@Suite struct WinogradSplitTests {
    /// A 3×3 layer's operands on one image: input [1, c, size, size], weight [oc, c, 3, 3], bias, and a residual of the
    /// output's shape, from seeds `seed`…`seed` + 3.
    static func operands(c: Int, size: Int, oc: Int, seed: UInt64) -> (Tensor<Float>, Tensor<Float>, [Float], Tensor<Float>) {
        (Tensor(shape: [1, c, size, size], scalars: ConvolutionTests.random(c * size * size, seed: seed)),
         Tensor(shape: [oc, c, 3, 3], scalars: ConvolutionTests.random(oc * c * 9, seed: seed + 1)),
         ConvolutionTests.random(oc, seed: seed + 2),
         Tensor(shape: [1, oc, size, size], scalars: ConvolutionTests.random(oc * size * size, seed: seed + 3)))
    }

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

    /// One image splits over the workers by rows of tiles (under 64 input channels, or on wide maps; on one worker
    /// too, in blocks of rows of tiles) or by output channels (where the rows do not split, on small maps; 48 → 44 on
    /// 13×13 has seven rows of tiles): the same bits as the three-step path, on one worker and on all, with a bias, a
    /// residual and a clamp, on maps whose last tile row and column hang over the edge, with a last panel of output
    /// channels not full, into a range of a wider tensor's channels, and in several blocks a worker (64 → 12 on 55×55:
    /// 7 rows of tiles a block of 28; 16 → 64 on 51×51: 7 of 26, the last block 5 rows on one worker; with AVX2 up
    /// to 16 input channels take `convolveInRows` instead, tested below).
    @Test func winogradOnOneImageGivesTheSameBits() throws {
        #expect(Winograd.splitsByTileRows(images: 1, inputChannels: 16, outputChannels: 24, tileRows: 11, tileColumns: 11,
                                          workers: 2))
        #expect(Winograd.splitsByTileRows(images: 1, inputChannels: 64, outputChannels: 64, tileRows: 28, tileColumns: 28,
                                          workers: 2))
        #expect(!Winograd.splitsByTileRows(images: 1, inputChannels: 128, outputChannels: 128, tileRows: 14,
                                           tileColumns: 14, workers: 2))
        #expect(Winograd.splitsByTileRows(images: 1, inputChannels: 16, outputChannels: 64, tileRows: 28, tileColumns: 28,
                                          workers: 1))
        #expect(!Winograd.splitsByTileRows(images: 2, inputChannels: 16, outputChannels: 64, tileRows: 28, tileColumns: 28,
                                           workers: 1))
        #expect(Winograd.blockTileRows(tileColumns: 26, inputChannels: 16, outputChannels: 64) == 7)
        #expect(Winograd.blockTileRows(tileColumns: 28, inputChannels: 64, outputChannels: 12) == 7)
        #expect(Winograd.splitsByOutputChannels(images: 1, inputChannels: 64, outputChannels: 44, tiles: 25, workers: 2))
        #expect(Winograd.oneImageSplit(images: 1, inputChannels: 48, outputChannels: 44, tileRows: 7, tileColumns: 7,
                                       workers: 2) == .outputChannels)
        for (c, size, oc) in [(16, 21, 24), (32, 16, 40), (8, 31, 9), (64, 9, 44), (96, 7, 40), (64, 55, 12), (48, 13, 44),
                              (16, 51, 64)] {
            let (x, wt, bias, residual) = Self.operands(c: c, size: size, oc: oc, seed: 4)
            let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
            let prepared = Winograd.PreparedWeights(wt)
            prepared.packForProduct()
            func run(_ oneImagePaths: Bool = true) -> (Tensor<Float>, Tensor<Float>) {
                var own = Tensor<Float>(shape: [1, oc, size, size], scalars: [Float](repeating: -1, count: oc * size * size))
                Winograd.convolve(x, weights: prepared, bias: bias, window: window, activation: .clip(low: 0, high: 6),
                                  residual: residual, into: &own, oneImagePaths: oneImagePaths)
                var wide = Tensor<Float>(shape: [1, oc + 3, size, size], scalars: [Float](repeating: -1, count: (oc + 3) * size * size))
                Winograd.convolve(x, weights: prepared, bias: bias, window: window, activation: .none, into: &wide,
                                  firstChannel: 2, oneImagePaths: oneImagePaths)
                return (own, wide)
            }
            let (threeSteps, threeStepsWide) = ComputeThreads.limited(to: 1) { run(false) }
            for workers in [1, 2] {
                let (own, wide) = ComputeThreads.limited(to: workers) { run() }
                #expect(own.scalars == threeSteps.scalars, "c\(c) \(size)×\(size) oc\(oc), \(workers) workers")
                #expect(wide.scalars == threeStepsWide.scalars, "c\(c) \(size)×\(size) oc\(oc), \(workers) workers, into channels from 2")
            }
            let all = ComputeThreads.limited(to: 2) { run().0 }
            // The naive loop only on the smaller maps (debug builds).
            guard size * size * c * oc < 1 << 20 else { continue }
            let reference = ConvolutionTests.naive(x, wt, bias, window)
            let expected = zip(reference.scalars, residual.scalars).map { min(max($0 + $1, 0), 6) }
            #expect(TestSupport.maxAbsDifference(all.scalars, expected) < 1e-4)
        }
    }

    /// One image's shallow layers a row of tiles at a time (`Winograd.convolveInRows`, AVX2): the same bits as the
    /// three-step paths, on one worker and split by rows of tiles or by output channels, with a bias, a residual and a
    /// clamp, on maps whose last tile row and column hang over the edge (rows of tiles not a multiple of the four a
    /// block takes), with last panels of output channels not full and blocks of one, two and three panels, and into a
    /// range of a wider tensor's channels.
    @Test func winogradInRowsOfTilesGivesTheSameBits() {
        let avx2 = wc_kernels_isa() == Int32(WC_ISA_AVX2)
        #expect(Winograd.runsInRows(images: 1, inputChannels: 16) == avx2)
        #expect(Winograd.runsInRows(images: 1, inputChannels: 3) == avx2)
        #expect(!Winograd.runsInRows(images: 1, inputChannels: 32))
        #expect(!Winograd.runsInRows(images: 2, inputChannels: 16))
        #expect(!Winograd.runsInRows(images: 1, inputChannels: 64))
        for (c, size, oc) in [(16, 21, 24), (3, 9, 9), (16, 55, 64), (8, 13, 40), (12, 13, 44), (5, 16, 16), (7, 30, 17)] {
            let (x, wt, bias, residual) = Self.operands(c: c, size: size, oc: oc, seed: 8)
            let window = Window2D(kernel: (3, 3), pads: (1, 1, 1, 1))
            let prepared = Winograd.PreparedWeights(wt).forProduct()
            #expect(prepared.isPacked || !avx2)  // as `convolve` takes the rows only on packed weights
            func run(_ rows: Bool, into channels: Int? = nil) -> Tensor<Float> {
                var out = Tensor<Float>(shape: [1, channels ?? oc, size, size],
                                        scalars: [Float](repeating: -1, count: (channels ?? oc) * size * size))
                Winograd.convolve(x, weights: prepared, bias: bias, window: window, activation: .clip(low: 0, high: 6),
                                  residual: channels == nil ? residual : nil, into: &out, firstChannel: channels == nil ? 0 : 2,
                                  oneImagePaths: rows)
                return out
            }
            let threePass = ComputeThreads.limited(to: 1) { run(false) }
            for workers in [1, 2] {
                let (rows, wide, wideThreePass) = ComputeThreads.limited(to: workers) { (run(true), run(true, into: oc + 3), run(false, into: oc + 3)) }
                #expect(rows.scalars == threePass.scalars, "c\(c) \(size)×\(size) oc\(oc), \(workers) workers")
                #expect(wide.scalars == wideThreePass.scalars, "c\(c) \(size)×\(size) oc\(oc), \(workers) workers, into channels from 2")
            }
        }
    }
}
