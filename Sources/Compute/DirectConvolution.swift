import CKernels

/// Convolution straight from a bordered copy of each image into the NCHW output (`wc_conv_direct`, AVX-512): the
/// im2col path writes every input once per tap into a matrix, the product copies that matrix again in blocks and
/// writes a buffer that a last pass scatters into the output with the bias and clamp; here each block of outputs is
/// summed in registers from the image and stored once. Each output is the same sum, in the same order, as on the
/// im2col path over the same packed weights, so the two give the same bits.
enum DirectConvolution {
    /// Whether a layer takes this path: one group, packed weights, strides of 1 or 2 with AVX-512, and output rows
    /// of at least `narrowest` values (a row's last block of 16 outputs runs in full however few of them it keeps).
    /// A 1×1 convolution with stride 1 and no padding reads its input as it stands on the im2col path already.
    /// The bordered copy's offsets are 32-bit: an image whose copy holds more values goes to im2col.
    static func applies(inputShape: [Int], weightShape: [Int], window: Window2D, group: Int, outputSize: (h: Int, w: Int),
                        packed: PackedWeights?) -> Bool {
        guard group == 1, packed != nil, outputSize.w >= narrowest else { return false }
        let pointwise = weightShape[2] == 1 && weightShape[3] == 1 && window.strides == (1, 1) && window.pads == (0, 0, 0, 0)
        var shape = wc_window(window)
        guard !pointwise, wc_conv_direct_runs(&shape) != 0 else { return false }
        return wc_conv_padded_count(Int32(inputShape[1]), Int32(inputShape[3]), &shape, Int32(outputSize.h),
                                    Int32(outputSize.w)) < Int(Int32.max)
    }

    static let narrowest = 14

    static func convolve(_ input: Tensor<Float>, packed: PackedWeights, bias: [Float]?, window: Window2D,
                         activation: Activation, residual: Tensor<Float>?, into output: inout Tensor<Float>) {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oc, oh, ow) = (output.shape[1], output.shape[2], output.shape[3])
        var shape = wc_window(window)
        let padded = wc_conv_padded_count(Int32(c), Int32(w), &shape, Int32(oh), Int32(ow))
        let bounds = activation.bounds
        let panels = (oc + 7) / 8
        let multiplyAdds = oc * c * window.kernel.h * window.kernel.w * oh * ow
        withResidual(residual) { residualAddress in
        input.scalars.withUnsafeBufferPointer { inBuf in
        (bias ?? []).withUnsafeBufferPointer { biasBuf in
        output.scalars.withUnsafeMutableBufferPointer { outBuf in
            let (inAddress, outAddress) = (Int(bitPattern: inBuf.baseAddress), Int(bitPattern: outBuf.baseAddress))
            let biasAddress = bias == nil ? 0 : Int(bitPattern: biasBuf.baseAddress)
            // Output channels [first, first + count) of image `img`, from its bordered copy.
            let run = { (img: Int, copy: UnsafePointer<Float>, first: Int, count: Int) in
                var shape = shape
                wc_conv_direct(copy, Int32(c), Int32(w), &shape, Int32(oh), Int32(ow), packed.panels(group: 0),
                               Int32(first), Int32(count), UnsafePointer(bitPattern: biasAddress),
                               UnsafePointer<Float>(bitPattern: residualAddress).map { $0 + img * oc * oh * ow },
                               bounds.low, bounds.high, UnsafeMutablePointer<Float>(bitPattern: outAddress)! + img * oc * oh * ow)
            }
            let pad = { (img: Int, copy: UnsafeMutablePointer<Float>) in
                var shape = shape
                wc_conv_pad(UnsafePointer<Float>(bitPattern: inAddress)! + img * c * h * w, Int32(c), Int32(h), Int32(w),
                            &shape, Int32(oh), Int32(ow), copy)
            }
            if n >= ComputeThreads.count || multiplyAdds < PackedWeights.splitMultiplyAdds {
                // Whole images per worker, each with its own copy.
                parallelChunks(n) { images in
                    let copy = UnsafeMutablePointer<Float>.allocate(capacity: padded)
                    defer { copy.deallocate() }
                    for img in images {
                        pad(img, copy)
                        run(img, copy, 0, oc)
                    }
                }
                return
            }
            // Fewer images than workers: one copy per image, its panels of eight channels split over the workers.
            let copy = UnsafeMutablePointer<Float>.allocate(capacity: padded)
            defer { copy.deallocate() }
            for img in 0..<n {
                pad(img, copy)
                parallelChunks(panels) { range in
                    let first = range.lowerBound * 8
                    run(img, copy, first, min(oc, range.upperBound * 8) - first)
                }
            }
        }
        }
        }
        }
    }
}
