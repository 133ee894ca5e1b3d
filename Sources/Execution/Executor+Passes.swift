import Compute
import ModelGraph
import Synchronization

/// Running a batch as passes of a few images each, the whole network per pass.
///
/// Run layer by layer over a whole batch, a network's intermediates at 224 px are hundreds of megabytes per layer
/// (MobileNetV2's first block writes 96×112×112 floats per image: 308 MB at batch 64), so every layer streams its
/// input and output through memory; MobileNetV2 ran faster at batch 1 than at batch 64. Passes of as many images as
/// keep the largest intermediate within `Options.passBytes` keep each layer's data in cache instead. A first run of
/// one image measures that intermediate; the size is then kept per input shape. Outputs are those of one pass over the
/// batch up to rounding (every node of a separable plan computes each image from that image alone, but a product
/// over fewer images may sum in another order).
extension Executor {
    /// Op types that compute each image from that image alone, under the conditions `batchSeparable` checks.
    static let perImageOps: Set<String> = [
        "Conv", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Identity", "Dropout", "Flatten", "Gemm", "MatMul",
        "Concat", "Softmax", "LogSoftmax", "Add", "Sub", "Mul", "Div",
    ]

    /// Whether every node of `plan` treats the images of a batch independently: an op of `perImageOps`, reading at
    /// least one variable; constants only in weight slots or, elsewhere, without a batch axis (rank ≤ 1 or a leading
    /// 1, which broadcasts); Flatten, Concat and Softmax not over axis 0; Gemm not transposing its input; and every
    /// graph output computed by a node.
    static func batchSeparable(plan: [Node], isConstant: (String) -> Bool, constantShape: (String) -> [Int]?,
                               graphOutputs: [String]) -> Bool {
        let produced = Set(plan.flatMap(\.outputs))
        guard graphOutputs.allSatisfy(produced.contains) else { return false }
        for node in plan {
            guard perImageOps.contains(node.opType), node.domain.isEmpty,
                  node.inputs.contains(where: { !$0.isEmpty && !isConstant($0) }) else { return false }
            // Slots that hold weights: any shape.
            let weightSlots: Set<Int> = switch node.opType {
            case "Conv": [1, 2]
            case "Gemm", "MatMul": [1]
            case "BatchNormalization": [1, 2, 3, 4]
            default: []
            }
            for (slot, name) in node.inputs.enumerated() where !name.isEmpty && isConstant(name) && !weightSlots.contains(slot) {
                guard slot > 0 || ["Add", "Sub", "Mul", "Div"].contains(node.opType), let shape = constantShape(name),
                      shape.count <= 1 || shape[0] == 1, node.opType != "Concat" else { return false }
            }
            switch node.opType {
            case "Conv", "Gemm", "MatMul":
                // A variable weight would be one per batch, not per image.
                guard node.inputs.count > 1, isConstant(node.inputs[1]), !isConstant(node.inputs[0]) else { return false }
                if node.opType == "Gemm" && node.int("transA", default: 0) != 0 { return false }
            case "Flatten", "Concat":
                guard node.int("axis", default: 1) >= 1 else { return false }
            case "Softmax", "LogSoftmax":
                let axis = node.int("axis", default: -1)
                guard axis >= 1 || axis == -1 else { return false }
            default: break
            }
        }
        return true
    }

    /// The images per pass for inputs of these per-image shapes (the graph's inputs in order); nil before the first
    /// pass measured it.
    func imagesPerPass(_ imageShapes: [[Int]]) -> Int? {
        passSizes.withLock { $0[imageShapes] }
    }

    /// The images of each pass: the fewest passes of at most `size` images, of even sizes (64 images by 42 at most: 32
    /// and 32, not 42 and 22), each a multiple of the workers where `size` is one (so the rounding stays within it).
    static func passRanges(images n: Int, atMost size: Int, workers: Int) -> [Range<Int>] {
        let passes = (n + size - 1) / size
        var even = (n + passes - 1) / passes
        if even >= workers && size % workers == 0 { even += (workers - even % workers) % workers }
        return stride(from: 0, to: n, by: even).map { $0..<min(n, $0 + even) }
    }

    /// Runs `feeds`, n images each, as passes; every graph output is the passes' outputs stacked along axis 0. The
    /// passes depend only on the input's shape, so one input gives the same outputs on every call. If a pass fails,
    /// the whole batch runs in one pass, so that an error names the shapes the caller gave.
    func runInPasses(_ feeds: [String: AnyTensor], images n: Int, checkingFinite: Bool) throws -> [String: AnyTensor] {
        do {
            // Every input's shape is part of the key: another shape of any of them may need another pass size.
            let imageShapes = graph.inputs.map { Array((feeds[$0.name]?.shape ?? []).dropFirst()) }
            let size: Int
            if let known = imagesPerPass(imageShapes) {
                size = known
            } else {
                // One image, to measure the largest intermediate (its outputs are not used).
                let largest = try runPass(feeds.mapValues { $0.images(0..<1) }, checkingFinite: checkingFinite).largest
                var fitting = max(1, options.passBytes / max(1, largest))
                if fitting >= ComputeThreads.count { fitting -= fitting % ComputeThreads.count }
                passSizes.withLock { $0[imageShapes] = fitting }
                size = fitting
            }
            if size < n {
                var parts: [[String: AnyTensor]] = []
                for range in Self.passRanges(images: n, atMost: size, workers: ComputeThreads.count) {
                    parts.append(try runPass(feeds.mapValues { $0.images(range) }, checkingFinite: checkingFinite).outputs)
                }
                var result: [String: AnyTensor] = [:]
                for output in graph.outputs { result[output.name] = AnyTensor.stacking(parts.map { $0[output.name]! }) }
                return result
            }
        } catch {}
        return try runPass(feeds, checkingFinite: checkingFinite).outputs
    }
}

extension AnyTensor {
    /// The images `range` (along axis 0).
    func images(_ range: Range<Int>) -> AnyTensor {
        func slice<T>(_ t: Tensor<T>) -> Tensor<T> {
            let stride = t.shape.dropFirst().reduce(1, *)
            return Tensor(shape: [range.count] + t.shape.dropFirst(), scalars: Array(t.scalars[range.lowerBound * stride..<range.upperBound * stride]))
        }
        switch self {
        case .float(let t): return .float(slice(t))
        case .int64(let t): return .int64(slice(t))
        }
    }

    /// `parts` stacked along axis 0 (each with the same shape after it, and the same element type).
    static func stacking(_ parts: [AnyTensor]) -> AnyTensor {
        func stack<T>(_ tensors: [Tensor<T>]) -> Tensor<T> {
            Tensor(shape: [tensors.map { $0.shape[0] }.reduce(0, +)] + tensors[0].shape.dropFirst(), scalars: tensors.flatMap(\.scalars))
        }
        if case .int64 = parts[0] { return .int64(stack(parts.map { $0.int64Tensor! })) }
        return .float(stack(parts.map { $0.floatTensor! }))
    }
}
