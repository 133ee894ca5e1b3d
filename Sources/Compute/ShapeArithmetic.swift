/// Checked arithmetic for numbers that come from files or flags and become sizes.
///
/// Every shape read from a model, an array file or computed by an operator is multiplied out with overflow
/// checks and compared against `maxElements` before anything is allocated.
public enum ShapeLimits {
    /// The most elements one tensor may hold: 2²⁸ (268,435,456; 1 GiB of float32). A real model's largest
    /// activation (VGG-16 at 224×224, batch 16) is about 51 M elements; anything past the cap is refused.
    /// Lowered only by the fuzzing harness (so that a fuzzed model cannot ask for a gigabyte per tensor).
    nonisolated(unsafe) public static var maxElements = 1 << 28
    /// The largest value accepted for a window attribute (kernel, stride, dilation, pad).
    public static let maxWindow = 1 << 20
    /// The largest rank accepted.
    public static let maxRank = 64
}

/// The number of elements of `shape`, or nil when a dimension is negative, the rank is absurd, the product
/// overflows, or it exceeds `ShapeLimits.maxElements`.
@inlinable
public func checkedElementCount(_ shape: [Int], limit: Int = ShapeLimits.maxElements) -> Int? {
    guard shape.count <= ShapeLimits.maxRank else { return nil }
    var count = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        count = product
    }
    // A zero dimension anywhere makes the tensor empty however large the others are.
    return count <= limit ? count : nil
}

/// `checkedElementCount` of up to five dimensions given as numbers: their array stays on the stack (a kernel's checks
/// on every call; `elementCount`, whose message takes the array, made one on the heap each time).
@inlinable
public func checkedElementCount(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ e: Int = 1,
                                limit: Int = ShapeLimits.maxElements) -> Int? {
    checkedElementCount([a, b, c, d, e], limit: limit)
}

/// `checkedElementCount`, throwing a message that names the shape and the cap.
public func elementCount(_ shape: [Int], _ what: @autoclosure () -> String = "tensor") throws -> Int {
    guard let count = checkedElementCount(shape) else {
        if shape.contains(where: { $0 < 0 }) { throw ComputeError.shapeMismatch("\(what()) has a negative dimension in \(shape)") }
        throw ComputeError.shapeMismatch("\(what()) of shape \(shape) is larger than the \(ShapeLimits.maxElements)-element limit")
    }
    return count
}

extension Int64 {
    /// The integer a float converts to exactly in range, or nil for NaN, ±Inf and values outside Int64.
    @inlinable
    public init?(checking value: Float) {
        guard value.isFinite, value >= -0x1p63, value < 0x1p63 else { return nil }
        self.init(value)
    }
}
