import CKernels

/// Runs `body(plane, copy, shape)` for planes 0..<count split over the workers, for the row kernels of CKernels
/// (`wc_depthwise_rows`, `wc_maxpool_rows`): each chunk of planes gets its own scratch (`scratchCount` floats: the
/// bordered copy's `wc_row_copy_count`, or the kernel's own count) filled with `border` (0 for a convolution, −∞ for a
/// max pool), and `shape` is `window` as the kernels read it.
func forEachPlaneWithRowCopy(_ count: Int, h: Int, w: Int, window: Window2D, oh: Int, ow: Int, border: Float,
                             scratchCount: (Int32, Int32, UnsafePointer<wc_window>, Int32, Int32) -> Int = wc_row_copy_count,
                             minimumChunk: Int = 1, evenly: Bool = false,
                             _ body: (Int, UnsafeMutablePointer<Float>, UnsafePointer<wc_window>) -> Void) {
    withUnsafePointer(to: wc_window(window)) { shape in
        let size = scratchCount(Int32(h), Int32(w), shape, Int32(oh), Int32(ow))
        parallelChunks(count, minimumChunk: minimumChunk, evenly: evenly) { planes in
            let copy = UnsafeMutablePointer<Float>.allocate(capacity: size)
            copy.initialize(repeating: border, count: size)
            defer { copy.deallocate() }
            for p in planes { body(p, copy, shape) }
        }
    }
}
