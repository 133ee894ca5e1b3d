import CKernels

// One image's Winograd convolution in one parallel region, split by rows of tiles or by output channels, rather than
// `Winograd.convolve`'s transforms, products and transforms each split on its own.
extension Winograd {
    /// Whether one image's convolution splits over the workers by rows of tiles (`convolveOneImage`): under 64 input
    /// channels, where the transforms weigh most against the products, up to 2¹⁸ transformed weights (1 MB, read by
    /// every worker), or on wide maps (`wideMapTiles`); and rows of tiles that split evenly or four or more a worker.
    /// Each worker then reads and writes only the rows of the maps its tiles cover, in one region, instead of three
    /// regions over the whole maps, the input transform on one worker. One-layer models (3×3 + ReLU), batch 1, two
    /// threads, µs, least of 2 s, the other path → by rows of tiles: 16 → 64 on 55×55 102.5 → 98.3, 32 → 128 on 27×27
    /// 80.7 → 74.1, 16 → 64 on 21×21 23.4 → 18.2; but 64 → 256 on 13×13 (seven rows of tiles) 82.6 → 87. In SqueezeNet
    /// 1.1 224 px (each node's least over 2 alternated rounds), its 27×27 layers 81.5 → 74.9 and 79.9 → 74.0; with the
    /// cores' round trip slow (~400 ns), the whole pass 2,600–2,620 → 2,287–2,290. From 64 channels only on wide maps:
    /// ResNet-18 224 px's 28×28 layers (128 channels, 98 tiles a worker, 7 of 8 vectors' lanes used against 13 of 14
    /// for 196) lost 8%, 271–279 → 293–296, with the round trip fast. On one worker too, a block of rows of tiles at a
    /// time (`blockTileRows`), where the other path passes the whole map's transformed inputs and sums through memory:
    /// the same one-layer models on one thread, least of 1 s, two alternated rounds, µs: 16 → 64 on 55×55 454–480 →
    /// 321–323, 16 → 128 on 55×55 778–784 → 540–544, 64 → 64 on 56×56 1,145–1,241 → 931–960, 32 → 128 on 27×27 264–268
    /// → 240–247, 48 → 192 on 13×13 even.
    static func splitsByTileRows(images: Int, inputChannels c: Int, outputChannels oc: Int, tileRows: Int,
                                 tileColumns: Int, workers: Int) -> Bool {
        let shallow = c < 64 && 16 * oc * c <= 1 << 18
        guard images == 1, shallow || tileRows * tileColumns >= wideMapTiles * workers else { return false }
        return tileRows % workers == 0 || tileRows >= 4 * workers
    }

    /// From 64 input channels, the fewest tiles a worker for which one image splits by rows of tiles all the same
    /// (`splitsByTileRows`): ResNet-18 224 px's 56×56 layers (392 a worker). There the other path's three regions pass
    /// 3.2 MB of transformed inputs and as much of sums between the cores, which costs most when the hypervisor has
    /// placed the two vCPUs apart: its pass at batch 1, two threads, with the cores' round trip slow (400–451 ns),
    /// 8,242–8,524 → 7,630–7,658 µs (with its 28×28 layers too, 98 tiles a worker, 7,671–7,776); with the round trip
    /// fast the four layers lost 3–4% each (292–311 → 305–330 µs) but the first after the max pool, 300 → 395.
    /// onnxruntime takes 7.9–8.0 ms in either state. Not on ResNet-18 64 px, VGG-16 or AlexNet (Fashion-MNIST), whose
    /// maps are 28×28 or smaller: splitting those by rows of tiles cost 4–7% with the round trip slow.
    static let wideMapTiles = 384

    /// How one image's convolution splits over the workers in one region (`convolveOneImage`).
    enum OneImageSplit { case tileRows, outputChannels }

    /// How a call splits over the workers in one region (`splitsByTileRows`, `splitsByOutputChannels`), or nil where
    /// it takes the other path (transforms, then products, then transforms, each split on its own).
    static func oneImageSplit(images: Int, inputChannels c: Int, outputChannels oc: Int, tileRows: Int, tileColumns: Int,
                              workers: Int) -> OneImageSplit? {
        if splitsByTileRows(images: images, inputChannels: c, outputChannels: oc, tileRows: tileRows,
                            tileColumns: tileColumns, workers: workers) {
            return .tileRows
        }
        return splitsByOutputChannels(images: images, inputChannels: c, outputChannels: oc,
                                      tiles: tileRows * tileColumns, workers: workers) ? .outputChannels : nil
    }

    /// Whether one image's convolution splits over the workers by output channels (`convolveOneImage`), where it does
    /// not by rows of tiles, at least two panels of eight a worker. Each worker transforms the whole input itself (a
    /// small share of the work: the products are 16·OC multiply-adds per transformed value), runs the 16 products for
    /// its channels and transforms their outputs, in one region; the other path's three regions pass the transformed
    /// inputs and the products' sums from core to core. Only where the transformed input is small (2¹⁶ floats): each
    /// worker writes all of it. One-layer models (3×3 + ReLU), batch 1, two threads, least of 2 s: 64 → 256 on 13×13
    /// (SqueezeNet 1.1 224 px's last layers) 82–84 → 71–72 µs; under 64 input channels too (session 57; alternated
    /// processes, least µs): 48 → 192 on 13×13 (SqueezeNet 1.1 224 px's fire 9 and 10, seven rows of tiles) 170–171 →
    /// 139 (one thread 255), 32 → 128 on 13×13 98–119 → 77, 48 → 96 on 9×9 59–61 → 51. With any size,
    /// ResNet-18 224 px's 56×56 and 28×28 layers lost 10–30% (each node's least over 2 rounds: 292–300 → 320–396,
    /// 262–267 → 294–297 µs).
    static func splitsByOutputChannels(images: Int, inputChannels c: Int, outputChannels oc: Int, tiles: Int,
                                       workers: Int) -> Bool {
        images == 1 && workers > 1 && oc >= 16 * workers && 16 * c * tiles <= 1 << 16
    }

    /// One image's convolution in one region, its rows of tiles or its output channels (panels of eight) split evenly
    /// over the workers: each transforms the inputs of its tiles (all of them when split by channels), runs the 16
    /// products on them for its output channels and transforms their outputs, into the rows and channels it covers, a
    /// block of rows of tiles at a time (`blockTileRows`). The same sums in the same order as `convolve`'s other path
    /// (each tile's column of each product, each row of U).
    static func convolveOneImage(_ input: Tensor<Float>, weights prepared: PreparedWeights, bias: [Float]?,
                                 window: Window2D, activation: Activation, residual: Tensor<Float>?,
                                 into output: inout Tensor<Float>, firstChannel: Int, split: OneImageSplit) {
        let (c, h, w) = (input.shape[1], input.shape[2], input.shape[3])
        let (oc, oh, ow) = (prepared.outputChannels, output.shape[2], output.shape[3])
        let (th, tw) = ((oh + 1) / 2, (ow + 1) / 2)
        let (pt, pl) = (window.pads.top, window.pads.left)
        let (low, high) = activation.bounds
        let (uStride, panels) = (prepared.uStride, (oc + 7) / 8)
        withAddresses(input, bias, residual, &output) { inAddress, biasAddress, residualAddress, outAddress in
            prepared.u.withUnsafeBufferPointer { uBuf in
                let u = uBuf.baseAddress!
                parallelChunks(split == .tileRows ? th : panels, evenly: true) { part in
                    let all = split == .tileRows ? part : 0..<th
                    let outputs = split == .tileRows ? 0..<oc : part.lowerBound * 8..<min(oc, part.upperBound * 8)
                    let step = blockTileRows(tileColumns: tw, inputChannels: c, outputChannels: outputs.count)
                    // Buffers for the largest block; each block's 16 blocks of values `paddedStride` of its own tiles
                    // apart, as `inputTransform` writes them.
                    let most = min(all.count, step) * tw
                    let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * paddedStride(c * most))
                    let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * paddedStride(outputs.count * most))
                    defer { v.deallocate(); m.deallocate() }
                    let biases = UnsafePointer<Float>(bitPattern: biasAddress)
                    let (out, residual) = (UnsafeMutablePointer<Float>(bitPattern: outAddress)!,
                                           UnsafePointer<Float>(bitPattern: residualAddress))
                    for start in stride(from: all.lowerBound, to: all.upperBound, by: step) {
                        let rows = start..<min(all.upperBound, start + step)
                        let tiles = rows.count * tw
                        let (vStride, mStride) = (paddedStride(c * tiles), paddedStride(outputs.count * tiles))
                        // Tile row r reads input rows from 2r − pt: the part's first row r0 is its row 0 with the top
                        // padding 2·r0 rows less (negative past the first part).
                        inputTransform(UnsafePointer<Float>(bitPattern: inAddress)!, c: c, h: h, w: w, first: 0,
                                       images: 1, th: rows.count, tw: tw, pt: pt - 2 * rows.lowerBound, pl: pl,
                                       tiles: tiles, into: v)
                        // Rows of each packed U[ξ] from output channel `outputs.lowerBound` (a panel's first row) on.
                        for xi in 0..<16 {
                            wc_gemm_packed_per_point(Int32(outputs.count), Int32(tiles), Int32(c),
                                                     u + xi * uStride + outputs.lowerBound * c, v + xi * vStride, tiles,
                                                     m + xi * mStride, tiles, nil)
                        }
                        let skip = 2 * rows.lowerBound * ow
                        for o in outputs {
                            wc_winograd_output(m + (o - outputs.lowerBound) * tiles, mStride, Int32(rows.count),
                                               Int32(tw), biases?[o] ?? 0, residual.map { $0 + o * oh * ow + skip },
                                               low, high, out + (firstChannel + o) * oh * ow + skip,
                                               Int32(oh - 2 * rows.lowerBound), Int32(ow))
                        }
                    }
                }
            }
        }
    }

    /// The rows of tiles a worker's part takes at a time (`convolveOneImage`): as many as keep their transformed inputs
    /// and the 16 products' sums, 16·(C + OC) floats a tile, within `blockFloats`. The whole part at once had its sums
    /// leave L2 on wide maps (16 → 64 on 55×55: 1.6 MB a worker). One-layer models (3×3 + ReLU), batch 1, least of 1 s,
    /// three alternated rounds, µs, AVX-512 host with 2 MB of L2 a core, two threads, whole part → blocks: 16 → 64 on
    /// 55×55 202–210 → 165–171, 16 → 128 on 55×55 429–482 → 288–305, 64 → 64 on 56×56 493–512 → 469–489, 32 → 128 on
    /// 27×27 even (136–171 → 136–137). Blocks of 2¹⁷ or 3·2¹⁷ floats gained less (16 → 64 on 55×55: 170–175 and
    /// 177–182 µs).
    static func blockTileRows(tileColumns tw: Int, inputChannels c: Int, outputChannels oc: Int) -> Int {
        max(1, blockFloats / (16 * (c + oc) * tw))
    }

    static let blockFloats = 1 << 18

    /// Whether one image's call runs a row of tiles at a time, its transforms and 16 products together
    /// (`wc_winograd_rows`), instead of passing every tile's products through memory between three steps: with AVX2,
    /// up to 16 input channels (deeper layers ran 2–10% slower so: Winograd.c). The same bits. SqueezeNet 1.1 224 px's
    /// 16 → 64 layers on 55×55 at batch 1, two threads, each node's least over 100 profiled passes: 328–337 → 290–296
    /// µs (onnxruntime's profiler: 294–295); one thread 613–646 → 583–600.
    static func runsInRows(images: Int, inputChannels c: Int) -> Bool {
        images == 1 && wc_kernels_isa() == Int32(WC_ISA_AVX2) && c <= 16
    }

    /// One image's convolution a row of tiles at a time (`wc_winograd_rows`), its rows of tiles or its output channels
    /// (panels of eight) split evenly over the workers as `split` says.
    static func convolveInRows(_ input: Tensor<Float>, weights prepared: PreparedWeights, bias: [Float]?,
                               window: Window2D, activation: Activation, residual: Tensor<Float>?,
                               into output: inout Tensor<Float>, firstChannel: Int, split: OneImageSplit) {
        let (c, h, w) = (input.shape[1], input.shape[2], input.shape[3])
        let (oc, oh, ow) = (prepared.outputChannels, output.shape[2], output.shape[3])
        let th = (oh + 1) / 2
        let (low, high) = activation.bounds
        let (uStride, scratchCount) = (prepared.uStride, wc_winograd_rows_scratch_count(Int32(c), Int32(ow)))
        withAddresses(input, bias, residual, &output) { inAddress, biasAddress, residualAddress, outAddress in
            prepared.u.withUnsafeBufferPointer { u in
                let u = u.baseAddress!
                parallelChunks(split == .tileRows ? th : (oc + 7) / 8, evenly: true) { part in
                    let rows = split == .tileRows ? part : 0..<th
                    let outputs = split == .tileRows ? 0..<oc : part.lowerBound * 8..<min(oc, part.upperBound * 8)
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
                    defer { scratch.deallocate() }
                    wc_winograd_rows(UnsafePointer<Float>(bitPattern: inAddress)!, Int32(c), Int32(h), Int32(w),
                                     Int32(window.pads.top), Int32(window.pads.left), u, uStride,
                                     Int32(outputs.lowerBound), Int32(outputs.count),
                                     UnsafePointer<Float>(bitPattern: biasAddress),
                                     UnsafePointer<Float>(bitPattern: residualAddress), low, high,
                                     UnsafeMutablePointer<Float>(bitPattern: outAddress)! + firstChannel * oh * ow,
                                     Int32(oh), Int32(ow), Int32(rows.lowerBound), Int32(rows.upperBound), scratch)
                }
            }
        }
    }
}
