import Compute

/// A float weight kept in compressed form until a node reads it (weights of a packed model file): the executor
/// expands it just before the node runs and frees it right after, so only one layer's dense weight is alive at a
/// time (and a 3×3 convolution's only in small slices, straight into its Winograd form).
public struct DeferredWeight: Sendable {
    public var shape: [Int]
    /// Bytes the compressed form holds in memory (reported by `inspect`, counted by benchmarks).
    public var storedBytes: Int
    /// Writes the slices `rows` of the first axis of the dense weight (row-major) into a buffer of
    /// `rows.count · shape[1...].product` floats, every one. Slices are independent: workers call it in parallel.
    public var expandRows: @Sendable (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void

    public init(shape: [Int], storedBytes: Int, expandRows: @escaping @Sendable (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void) {
        self.shape = shape
        self.storedBytes = storedBytes
        self.expandRows = expandRows
    }

    /// The dense weight, expanded on every worker.
    public func expanded() -> Tensor<Float> {
        let rows = shape.first ?? 1, perRow = rows == 0 ? 0 : shape.reduce(1, *) / rows
        return Tensor(shape: shape) { out in
            let address = Int(bitPattern: out.baseAddress)
            parallelChunks(rows, minimumChunk: max(1, 65_536 / max(1, perRow))) { range in
                guard let base = UnsafeMutablePointer<Float>(bitPattern: address) else { return }
                expandRows(range, UnsafeMutableBufferPointer(start: base + range.lowerBound * perRow, count: range.count * perRow))
            }
        }
    }
}
