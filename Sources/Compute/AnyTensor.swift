/// A tensor of one of the element types the runtime computes with.
/// Float data flows through the network; Int64 carries shapes, indices and axes.
public enum AnyTensor: Sendable, Equatable {
    case float(Tensor<Float>)
    case int64(Tensor<Int64>)

    public var shape: [Int] {
        switch self {
        case .float(let t): t.shape
        case .int64(let t): t.shape
        }
    }

    public var count: Int { shape.reduce(1, *) }

    public var elementTypeName: String {
        switch self {
        case .float: "float32"
        case .int64: "int64"
        }
    }

    public var floatTensor: Tensor<Float>? {
        if case .float(let t) = self { return t }
        return nil
    }

    public var int64Tensor: Tensor<Int64>? {
        if case .int64(let t) = self { return t }
        return nil
    }

    /// The values as Int64, converting floats toward zero; NaN becomes 0 and values past Int64's range saturate
    /// (never a trap). Where a value becomes a size or an index, use `checkedInt64Values` instead.
    public var int64Values: [Int64] {
        switch self {
        case .float(let t): t.scalars.map { Int64(checking: $0) ?? ($0.isNaN ? 0 : $0 < 0 ? .min : .max) }
        case .int64(let t): t.scalars
        }
    }

    /// The values as Int64, or nil when a float is NaN, infinite or outside Int64's range.
    public var checkedInt64Values: [Int64]? {
        switch self {
        case .float(let t):
            var result: [Int64] = []
            result.reserveCapacity(t.count)
            for v in t.scalars {
                guard let i = Int64(checking: v) else { return nil }
                result.append(i)
            }
            return result
        case .int64(let t): return t.scalars
        }
    }

    /// The values as Float, converting integers.
    public var floatValues: [Float] {
        switch self {
        case .float(let t): t.scalars
        case .int64(let t): t.scalars.map { Float($0) }
        }
    }

    public func reshaped(_ newShape: [Int]) -> AnyTensor {
        switch self {
        case .float(let t): .float(t.reshaped(newShape))
        case .int64(let t): .int64(t.reshaped(newShape))
        }
    }
}
