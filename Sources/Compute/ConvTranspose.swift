/// 2-D transposed convolution (ONNX ConvTranspose), NCHW input, weight [C_in, C_out/group, KH, KW], optional bias
/// [C_out]. `window.pads` crop the full output (top, left, bottom, right); `outputPadding` adds rows/columns at the
/// bottom/right. Each image and group is one GEMM (Wᵀ·X, the columns of every kernel tap) and a scatter-add (col2im).
public func convTransposed2d(_ input: Tensor<Float>, weight: Tensor<Float>, bias: [Float]?, window: Window2D,
                             outputPadding: (h: Int, w: Int) = (0, 0), group: Int = 1) throws -> Tensor<Float> {
    try window.validate()
    guard input.rank == 4, weight.rank == 4 else {
        throw ComputeError.shapeMismatch("ConvTranspose expects 4-D input and weight, got \(input.shape) and \(weight.shape)")
    }
    let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (kh, kw) = (weight.shape[2], weight.shape[3])
    guard group >= 1, c % group == 0, weight.shape[0] == c else {
        throw ComputeError.shapeMismatch("ConvTranspose weight \(weight.shape) does not fit \(c) input channels in \(group) groups")
    }
    guard (kh, kw) == window.kernel else {
        throw ComputeError.shapeMismatch("ConvTranspose kernel \(window.kernel) does not match the weight \(weight.shape)")
    }
    guard outputPadding.h >= 0, outputPadding.w >= 0, outputPadding.h < max(window.strides.h, window.dilations.h),
          outputPadding.w < max(window.strides.w, window.dilations.w) else {
        throw ComputeError.shapeMismatch("ConvTranspose output_padding \(outputPadding) must be below the stride or dilation")
    }
    let cig = c / group, cog = weight.shape[1], oc = cog * group
    if let bias, bias.count != oc { throw ComputeError.shapeMismatch("ConvTranspose bias has \(bias.count) values for \(oc) output channels") }
    let (s, d, p) = (window.strides, window.dilations, window.pads)
    let oh = s.h * (h - 1) + outputPadding.h + (kh - 1) * d.h + 1 - p.top - p.bottom
    let ow = s.w * (w - 1) + outputPadding.w + (kw - 1) * d.w + 1 - p.left - p.right
    guard oh > 0, ow > 0 else { throw ComputeError.shapeMismatch("ConvTranspose pads \(p) leave no output for input \(input.shape)") }
    _ = try elementCount([n, oc, oh, ow], "ConvTranspose output")
    let rows = cog * kh * kw, columns = h * w
    _ = try elementCount([rows, columns], "ConvTranspose column buffer")
    var output = Tensor<Float>(zeros: [n, oc, oh, ow])
    input.scalars.withUnsafeBufferPointer { x in
        weight.scalars.withUnsafeBufferPointer { wt in
            output.scalars.withUnsafeMutableBufferPointer { out in
                let inAddress = Int(bitPattern: x.baseAddress), wAddress = Int(bitPattern: wt.baseAddress)
                let outAddress = Int(bitPattern: out.baseAddress)
                forEachChunk(n * group, scratch: (rows * columns, 0)) { job, cols, _, alone in
                    let image = job / group, g = job % group
                    let xg = UnsafePointer<Float>(bitPattern: inAddress)! + (image * c + g * cig) * columns
                    let wg = UnsafePointer<Float>(bitPattern: wAddress)! + g * cig * rows
                    if alone {
                        parallelSgemm(transA: true, m: rows, n: columns, k: cig, a: wg, lda: rows, b: xg, ldb: columns,
                                      c: cols, ldc: columns)
                    } else {
                        sgemm(transA: true, m: rows, n: columns, k: cig, a: wg, lda: rows, b: xg, ldb: columns, c: cols, ldc: columns)
                    }
                    let y = UnsafeMutablePointer<Float>(bitPattern: outAddress)! + (image * oc + g * cog) * oh * ow
                    for co in 0..<cog {
                        let plane = y + co * oh * ow
                        for ki in 0..<kh {
                            for kj in 0..<kw {
                                let row = cols + ((co * kh + ki) * kw + kj) * columns
                                for ih in 0..<h {
                                    let oy = ih * s.h - p.top + ki * d.h
                                    guard oy >= 0 && oy < oh else { continue }
                                    for iw in 0..<w {
                                        let ox = iw * s.w - p.left + kj * d.w
                                        if ox >= 0 && ox < ow { plane[oy * ow + ox] += row[ih * w + iw] }
                                    }
                                }
                            }
                        }
                        if let bias {
                            let b = bias[g * cog + co]
                            for i in 0..<(oh * ow) { plane[i] += b }
                        }
                    }
                }
            }
        }
    }
    return output
}
