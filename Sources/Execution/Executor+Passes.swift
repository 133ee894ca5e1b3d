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

    /// What one image's pass measured, for inputs of one set of per-image shapes.
    struct PassPlan {
        /// Images per pass.
        var size: Int
        /// Bytes of the values alive after each step, for one image.
        var live: [Int]
        /// Whether each step's outputs hold one value per channel of an image (no map: after a global pool).
        var flat: [Bool] = []
        /// Each step's largest intermediate for one image (as `size` counts it).
        var peaks: [Int] = []

        /// The first step from which the rest of the plan runs once over all `n` images, on the passes' values stacked:
        /// from there to the end every step's values for the whole batch, and those it starts from, stay within
        /// `bytes` (a network's head after its last large map: the classifier then reads its weights once, not once per
        /// pass). `live.count` when no such tail exists.
        func tail(images n: Int, within bytes: Int) -> Int {
            var start = live.count
            while start > 1 && live[start - 2] * n <= bytes { start -= 1 }
            return start
        }

        /// A pass of `images` images in two stages: the steps before `step` in passes of `size` images, their values
        /// then stacked for the rest of the pass up to `end`. `step` is the first from which what is alive stays within
        /// `bytes` for all `images` (`tail`: the network's later layers, whose maps are small and whose weights are
        /// most of the model's, read once for the whole pass), and `size` keeps the earlier steps' largest intermediate
        /// within the same bytes (the early layers' large maps stay in cache). nil when one stage is as good.
        func stages(images: Int, within bytes: Int, end: Int) -> (step: Int, size: Int)? {
            let step = tail(images: images, within: bytes)
            guard step > 1, step < end, let peak = peaks[..<step].max() else { return nil }
            let size = max(1, bytes / max(1, peak))
            return size < images ? (step, size) : nil
        }

        /// The first step from which every step, and the one before it, computes flat values (`flat`): the head after
        /// the last map, which passes side by side leave to one run over the batch. `flat.count` when there is none.
        var head: Int {
            var start = flat.count
            while start > 1 && flat[start - 2] { start -= 1 }
            return start
        }
    }

    /// The images per pass for inputs of these per-image shapes (the graph's inputs in order); nil before the first
    /// pass measured it.
    func imagesPerPass(_ imageShapes: [[Int]]) -> Int? {
        passPlans.withLock { $0[imageShapes]?.size }
    }

    /// The images of each pass: the fewest passes of at most `size` images, of even sizes (64 images by 42 at most: 32
    /// and 32, not 42 and 22), each a multiple of the workers where `size` is one (so the rounding stays within it).
    static func passRanges(images n: Int, atMost size: Int, workers: Int) -> [Range<Int>] {
        let passes = (n + size - 1) / size
        var even = (n + passes - 1) / passes
        if even >= workers && size % workers == 0 { even += (workers - even % workers) % workers }
        return stride(from: 0, to: n, by: even).map { $0..<min(n, $0 + even) }
    }

    /// Runs `feeds`, n images each, as passes, then the plan's small tail (`PassPlan.tail`) once over the passes'
    /// values stacked along axis 0. The passes depend only on the input's shape, so one input gives the same outputs on
    /// every call. If a pass fails, the whole batch runs in one pass, so that an error names the shapes the caller gave.
    ///
    /// With `Options.parallelPasses`, at least as many images as workers (two or more) and no deferred weights, the
    /// passes run side by side, one per worker at a time, each on its thread (`parallelPieces`), of up to
    /// `size / workers` images so that as much data is in flight as in one pass of `size`, each in two stages where
    /// that keeps the early layers' maps in cache (`PassPlan.stages`); the head after the last map (`PassPlan.head`)
    /// then runs once over the batch. A worker with no pass left to take joins the nodes of the passes still running
    /// (`wc_pool_idle_workers`), which then split their work as at batch 1 (one batch with it and one without gave the
    /// same values, largest difference 0, on each of the nine nets of `Scripts/bench-architectures.sh`), so the batch
    /// no longer waits for the slower thread's whole pass (measured in `ThreadPool.c`).
    func runInPasses(_ feeds: [String: AnyTensor], images n: Int, checkingFinite: Bool) throws -> [String: AnyTensor] {
        if let outputs = try? passes(feeds, images: n, checkingFinite: checkingFinite) { return outputs }
        return try runPass(feeds, checkingFinite: checkingFinite)
    }

    /// `runInPasses`' passes; nil when one pass over the batch is as good (the batch fits in one and no thread is left
    /// over); throws if a pass failed.
    private func passes(_ feeds: [String: AnyTensor], images n: Int, checkingFinite: Bool) throws -> [String: AnyTensor]? {
        let plan = try passPlan(feeds, checkingFinite: checkingFinite)
        let workers = ComputeThreads.count
        // Not with fewer images than threads (side by side would leave threads idle), nor with deferred (compressed)
        // weights: each pass expands every layer's weights again, and two passes at once hold two expansions (packed
        // VGG-16 at 4 bits, batch 64: peak RSS 113 → 148 MiB, images/s even, 310 → 306).
        let sideBySide = options.parallelPasses && workers > 1 && n >= workers && graph.deferredWeights.isEmpty && !profiling
        guard plan.size < n || sideBySide else { return nil }
        let tail: Int, ranges: [Range<Int>]
        var stages: (step: Int, size: Int)? = nil
        if sideBySide {
            tail = plan.head
            let size = min(max(1, plan.size / workers), (n + workers - 1) / workers)
            ranges = Self.passRanges(images: n, atMost: size, workers: 1)
            // Each pass in two stages where its early layers' maps need fewer images at a time than its later layers'
            // weights (`Options.stageBytes`).
            stages = plan.stages(images: size, within: options.stageBytes, end: tail)
        } else {
            tail = plan.tail(images: n, within: options.passBytes)
            ranges = Self.passRanges(images: n, atMost: plan.size, workers: workers)
        }
        let parts = Mutex<[[AnyTensor?]]>(Array(repeating: [], count: ranges.count))
        let failure = Mutex<(any Error)?>(nil)
        let pass = { (piece: Int) in
            guard failure.withLock({ $0 == nil }) else { return }
            do {
                let range = ranges[piece]
                var values: [AnyTensor?]
                if let stages, range.count > stages.size {
                    let firsts = try Self.passRanges(images: range.count, atMost: stages.size, workers: 1).map { part in
                        let images = range.lowerBound + part.lowerBound..<range.lowerBound + part.upperBound
                        var values = self.initialValues(feeds.mapValues { $0.images(images) })
                        try self.runSteps(0..<stages.step, on: &values, checkingFinite: checkingFinite)
                        return values
                    }
                    values = Self.stacked(firsts)
                    try self.runSteps(stages.step..<tail, on: &values, checkingFinite: checkingFinite)
                } else {
                    values = self.initialValues(feeds.mapValues { $0.images(range) })
                    try self.runSteps(0..<tail, on: &values, checkingFinite: checkingFinite)
                }
                parts.withLock { $0[piece] = values }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        if sideBySide { parallelPieces(ranges.count, pass) } else { ranges.indices.forEach(pass) }
        if let error = failure.withLock({ $0 }) { throw error }
        var values = Self.stacked(parts.withLock { parts in
            defer { parts = [] }
            return parts
        })
        try runSteps(tail..<steps.count, on: &values, checkingFinite: checkingFinite)
        return try graphOutputs(values)
    }

    /// The values of passes over consecutive images, stacked slot by slot along axis 0 (every pass holds the same
    /// slots: the same steps ran on each).
    static func stacked(_ parts: [[AnyTensor?]]) -> [AnyTensor?] {
        parts[0].indices.map { slot in parts[0][slot] == nil ? nil : AnyTensor.stacking(parts.map { $0[slot]! }) }
    }

    /// The pass plan for these inputs' per-image shapes (every input's shape is part of the key: another shape of any
    /// of them may need another pass size), measured by a first run of one image when it is not yet known: the largest
    /// intermediate, each step's largest, what is alive after each step, and which steps compute flat values.
    private func passPlan(_ feeds: [String: AnyTensor], checkingFinite: Bool) throws -> PassPlan {
        let imageShapes = graph.inputs.map { Array((feeds[$0.name]?.shape ?? []).dropFirst()) }
        if let known = passPlans.withLock({ $0[imageShapes] }) { return known }
        // One image (its outputs are not used).
        var values = initialValues(feeds.mapValues { $0.images(0..<1) })
        var largest = 0, live: [Int] = [], flat: [Bool] = [], peaks: [Int] = []
        try runSteps(steps.indices, on: &values, checkingFinite: checkingFinite) { bytes, values in
            largest = max(largest, bytes)
            peaks.append(bytes)
            live.append(values.reduce(0) { $0 + 4 * ($1?.count ?? 0) })  // bytes as `largest` counts them
            let step = self.steps[flat.count]
            flat.append(step.outputs.allSatisfy { index in
                index.flatMap { values[$0]?.shape.dropFirst(2).allSatisfy { $0 == 1 } } ?? true
            })
        }
        var fitting = max(1, options.passBytes / max(1, largest))
        if fitting >= ComputeThreads.count { fitting -= fitting % ComputeThreads.count }
        let plan = PassPlan(size: fitting, live: live, flat: flat, peaks: peaks)
        passPlans.withLock { $0[imageShapes] = plan }
        return plan
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
