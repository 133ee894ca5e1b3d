/// A scratch copy of one NCHW plane inside a border of a fill value, wide enough that every window of an output row
/// can be read sixteen outputs at a time with no bounds checks (the max pool kernel of CKernels).
@usableFromInline
struct PaddedPlane {
    @usableFromInline let rows: Int, width: Int
    @usableFromInline let top: Int, left: Int
    @usableFromInline let buffer: UnsafeMutablePointer<Float>

    /// Room for `window` over an h×w plane giving oh×ow outputs read up to sixteen at a time, with strides of 1 or 2
    /// (a stride-2 read of 16 outputs takes 32 values).
    @usableFromInline init(h: Int, w: Int, window: Window2D, oh: Int, ow: Int, fill: Float) {
        let rounded = (ow + 15) / 16 * 16
        top = window.pads.top
        left = window.pads.left
        width = max(left + w, (rounded - 1) * window.strides.w + (window.kernel.w - 1) * window.dilations.w + 1) + 16
        rows = max(top + h, (oh - 1) * window.strides.h + (window.kernel.h - 1) * window.dilations.h + 1)
        buffer = .allocate(capacity: rows * width)
        buffer.initialize(repeating: fill, count: rows * width)
    }

    @usableFromInline func deallocate() { buffer.deallocate() }

    /// Copies an h×w plane into the interior; the border keeps the fill value.
    @inlinable func load(_ src: UnsafePointer<Float>, h: Int, w: Int) {
        for y in 0..<h { (buffer + (top + y) * width + left).update(from: src + y * w, count: w) }
    }
}
