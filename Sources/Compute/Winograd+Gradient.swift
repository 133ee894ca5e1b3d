/// The weight gradient of a Winograd-shaped convolution (3×3, stride 1, undilated, ungrouped), computed through the
/// same F(2×2, 3×3) transforms as the forward pass (Lavin & Gray 2015, "training" section).
///
/// Forward, per 2×2 output tile: m = Σᵢ U[o,i] ⊙ V[i], y = Aᵀ·m·A, with U = G·g·Gᵀ and V = Bᵀ·d·B. Its adjoint:
/// dm = A·dy·Aᵀ, dU[o,i] = Σ_tiles dm[o] ⊙ V[i] (16 GEMMs [OC × tiles]·[tiles × IC]), dg = Gᵀ·dU·G. Each output tile
/// costs 16 multiplies instead of the 36 of im2col; the GEMMs' inner dimension is the tile count, which is large.
extension Winograd {
    /// dW ([OC, IC, 3, 3], row-major) for `input` [N, IC, H, W] and `dy` [N, OC, OH, OW].
    /// Images go in chunks; within a chunk the workers split the transforms by image and the 16 GEMMs by ξ, so each
    /// dU[ξ] has one writer and the result does not depend on timing.
    public static func weightGradient(_ input: Tensor<Float>, gradOutput dy: Tensor<Float>, window: Window2D) -> [Float] {
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oc, oh, ow) = (dy.shape[1], dy.shape[2], dy.shape[3])
        let (th, tw) = ((oh + 1) / 2, (ow + 1) / 2)
        let tilesPerImage = th * tw
        // Images per chunk: at least 256 tiles (the GEMMs' inner dimension), else transform buffers of about 2M floats.
        let perChunk = max(1, min(n, max((256 + tilesPerImage - 1) / tilesPerImage, (1 << 21) / max(1, 16 * (c + oc) * tilesPerImage))))
        let capacity = perChunk * tilesPerImage
        let plane = oc * c
        let (pt, pl) = (window.pads.top, window.pads.left)
        let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * paddedStride(c * capacity))
        let dm = UnsafeMutablePointer<Float>.allocate(capacity: 16 * paddedStride(oc * capacity))
        defer { v.deallocate(); dm.deallocate() }
        var du = [Float](repeating: 0, count: 16 * plane)
        input.scalars.withUnsafeBufferPointer { px in
            dy.scalars.withUnsafeBufferPointer { pdy in
                du.withUnsafeMutableBufferPointer { pdu in
                    let (vAddress, mAddress, duAddress) = (Int(bitPattern: v), Int(bitPattern: dm), Int(bitPattern: pdu.baseAddress!))
                    for first in stride(from: 0, to: n, by: perChunk) {
                        let images = min(perChunk, n - first), tiles = images * tilesPerImage
                        parallelChunks(images) { part in
                            // Image `first + i` owns tile columns i·tilesPerImage ..< (i + 1)·tilesPerImage of every row.
                            let offset = part.lowerBound * tilesPerImage
                            inputTransform(px.baseAddress!, c: c, h: h, w: w, first: first + part.lowerBound, images: part.count,
                                           th: th, tw: tw, pt: pt, pl: pl, tiles: tiles,
                                           into: UnsafeMutablePointer<Float>(bitPattern: vAddress)! + offset)
                            gradientTransform(pdy.baseAddress!, oc: oc, first: first + part.lowerBound, images: part.count,
                                              th: th, tw: tw, oh: oh, ow: ow, tiles: tiles,
                                              into: UnsafeMutablePointer<Float>(bitPattern: mAddress)! + offset)
                        }
                        let vStride = paddedStride(c * tiles), mStride = paddedStride(oc * tiles)
                        parallelChunks(16) { range in
                            for xi in range {
                                // dU[ξ] (oc×c) += dm[ξ] (oc×tiles) · V[ξ]ᵀ (tiles×c)
                                sgemm(transB: true, m: oc, n: c, k: tiles,
                                      a: UnsafePointer<Float>(bitPattern: mAddress)! + xi * mStride, lda: tiles,
                                      b: UnsafePointer<Float>(bitPattern: vAddress)! + xi * vStride, ldb: tiles, beta: 1,
                                      c: UnsafeMutablePointer<Float>(bitPattern: duAddress)! + xi * plane, ldc: c)
                            }
                        }
                    }
                }
            }
        }
        return weightsFromTransformed(du, plane: plane)
    }

    /// dm[ξ][oc][tile] = (A·dy·Aᵀ)[ξ] for every 2×2 gradient tile (zero beyond the output): the adjoint of
    /// `outputTransform`.
    static func gradientTransform(_ dy: UnsafePointer<Float>, oc: Int, first: Int, images: Int, th: Int, tw: Int,
                                  oh: Int, ow: Int, tiles: Int, into dm: UnsafeMutablePointer<Float>) {
        let st = paddedStride(oc * tiles)
        for img in 0..<images {
            for o in 0..<oc {
                let src = dy + ((first + img) * oc + o) * oh * ow
                let row = dm + o * tiles + img * th * tw
                for ty in 0..<th {
                    let y = 2 * ty
                    for tx in 0..<tw {
                        let x = 2 * tx
                        let right = x + 1 < ow, below = y + 1 < oh
                        let y00 = src[y * ow + x], y01 = right ? src[y * ow + x + 1] : 0
                        let y10 = below ? src[(y + 1) * ow + x] : 0, y11 = right && below ? src[(y + 1) * ow + x + 1] : 0
                        // A·dy: rows [y0, y0 + y1, y0 − y1, −y1]; then each row (a, b) · Aᵀ = [a, a + b, a − b, −b].
                        let o = row + ty * tw + tx
                        let a1 = y00 + y10, b1 = y01 + y11, a2 = y00 - y10, b2 = y01 - y11
                        o[0] = y00; o[st] = y00 + y01; o[2 * st] = y00 - y01; o[3 * st] = -y01
                        o[4 * st] = a1; o[5 * st] = a1 + b1; o[6 * st] = a1 - b1; o[7 * st] = -b1
                        o[8 * st] = a2; o[9 * st] = a2 + b2; o[10 * st] = a2 - b2; o[11 * st] = -b2
                        o[12 * st] = -y10; o[13 * st] = -y10 - y11; o[14 * st] = y11 - y10; o[15 * st] = y11
                    }
                }
            }
        }
    }

    /// g = Gᵀ·dU·G for every kernel: the adjoint of the weight transform in `PreparedWeights`.
    static func weightsFromTransformed(_ du: [Float], plane: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: 9 * plane) { buffer, initialized in
            let address = Int(bitPattern: buffer.baseAddress!)
            du.withUnsafeBufferPointer { du in
                parallelChunks(plane, minimumChunk: 4096) { kernels in
                    let g = UnsafeMutablePointer<Float>(bitPattern: address)!
                    for k in kernels {
                        // Gᵀ·dU, one column j at a time, then each row of that times G:
                        // (t0, t1, t2, t3) → [t0 + ½(t1 + t2), ½(t1 − t2), ½(t1 + t2) + t3].
                        var rows: (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) = (.zero, .zero, .zero)
                        for j in 0..<4 {
                            let u0 = du[j * plane + k], u1 = du[(4 + j) * plane + k], u2 = du[(8 + j) * plane + k], u3 = du[(12 + j) * plane + k]
                            rows.0[j] = u0 + 0.5 * (u1 + u2)
                            rows.1[j] = 0.5 * (u1 - u2)
                            rows.2[j] = 0.5 * (u1 + u2) + u3
                        }
                        func write(_ a: Int, _ t: SIMD4<Float>) {
                            g[k * 9 + a * 3] = t[0] + 0.5 * (t[1] + t[2])
                            g[k * 9 + a * 3 + 1] = 0.5 * (t[1] - t[2])
                            g[k * 9 + a * 3 + 2] = 0.5 * (t[1] + t[2]) + t[3]
                        }
                        write(0, rows.0); write(1, rows.1); write(2, rows.2)
                    }
                }
            }
            initialized = 9 * plane
        }
    }
}
