/// A dense, contiguous, row-major tensor (NCHW for images).
public struct Tensor<Scalar: Sendable>: Sendable {
    public var shape: [Int]
    public var scalars: [Scalar]

    public init(shape: [Int], scalars: [Scalar]) {
        precondition(shape.reduce(1, *) == scalars.count, "shape \(shape) does not hold \(scalars.count) scalars")
        self.shape = shape
        self.scalars = scalars
    }

    /// Inlinable, so that callers in other modules fill a concrete type's array (a memset for zeros): unspecialized,
    /// each scalar went through a generic copy (about 3 ns each: the classifier's 1,000 outputs of MobileNetV2 64 px at
    /// batch 1, `Tensor(zeros:)` in Gemm, 0.3% of a pass).
    @inlinable
    public init(shape: [Int], repeating value: Scalar) {
        self.shape = shape
        self.scalars = Array(repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor whose scalars `initializer` must all write (for kernels that overwrite their whole output).
    @inlinable
    public init(shape: [Int], unsafeUninitialized initializer: (UnsafeMutableBufferPointer<Scalar>) -> Void) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.scalars = [Scalar](unsafeUninitializedCapacity: count) { buffer, initialized in
            initializer(buffer)
            initialized = count
        }
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// The same scalars viewed with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }
}

extension Tensor: Equatable where Scalar: Equatable {}

extension Tensor where Scalar: Numeric {
    @inlinable
    public init(zeros shape: [Int]) { self.init(shape: shape, repeating: 0) }
}

/// Row-major strides of a shape.
@inlinable
public func strides(of shape: [Int]) -> [Int] {
    var result = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        result[axis] = running
        running *= shape[axis]
    }
    return result
}
