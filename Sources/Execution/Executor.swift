import Compute
import Dispatch
import ModelGraph
import Synchronization

/// Runs a graph on the CPU. Preparation sorts the nodes, checks every operator is supported, folds the
/// nodes whose inputs are all constant (shape-computation chains, Constant nodes) and records when each
/// intermediate value is last read, so `run` frees it right after.
public final class Executor: Sendable {
    public let graph: Graph
    /// The nodes left to run after constant folding, in topological order.
    public let plan: [Node]
    /// Initializers plus folded values.
    public let constants: [String: AnyTensor]
    /// The plan with every value name resolved at load (`Step`), and where each graph input and output is found.
    let steps: [Step]
    private let inputSlots: [Int]
    private let outputSources: [Step.Source]
    private let slotCount: Int
    /// Whether the plan computes each image from that image alone (`batchSeparable`), so a batch may run in passes.
    let batchSeparable: Bool
    /// The passes measured so far, by the inputs' per-image shapes (`runInPasses`).
    let passPlans = Mutex<[[[Int]]: PassPlan]>([:])
    /// Whether single passes run on one worker or all (`Options.chooseWorkers`).
    let workerChoice: Mutex<WorkerChoice>
    /// Whether single passes are still in the choice's warm-up, which alternates the settings (one thread among them):
    /// a caller that times steady passes runs until it is over.
    public var choosingWorkers: Bool { workerChoice.withLock { $0.warmingUp } }
    /// When set, `run` adds each node's wall time to `profile` under its op type and to `nodeProfile` under the node's
    /// name (expanding deferred weights counts as "(expand weights)"). Safe to set and read while other threads run
    /// the executor: the flag is atomic and the sums are kept under a lock.
    public var profiling: Bool {
        get { profilingFlag.load(ordering: .relaxed) }
        set { profilingFlag.store(newValue, ordering: .relaxed) }
    }
    public var profile: [String: Double] { profiles.withLock { $0.byOp } }
    public var nodeProfile: [String: Double] { profiles.withLock { $0.byNode } }
    private let profilingFlag = Atomic<Bool>(false)
    private let profiles = Mutex<(byOp: [String: Double], byNode: [String: Double])>(([:], [:]))

    public let options: Options

    /// The newest ai.onnx opset whose operator definitions WeightCluster follows; newer models are refused.
    public static let newestKnownOpset = 22

    public convenience init(graph: Graph, options: Options = Options()) throws {
        try Executor.checkOpset(graph)
        try self.init(graph: graph, sorted: try Executor.topologicallySorted(graph), options: options)
    }

    /// Prepares `graph` whose nodes `sorted` lists in topological order (validation sorts once for both).
    init(graph: Graph, sorted: [Node], options: Options = Options()) throws {
        self.graph = graph
        self.options = options
        if options.reuseFreedMemory { Executor.reusingFreedMemory }
        if let error = ExecutionError.unsupported(sorted, opset: graph.opsetVersion) { throw error }
        var constants = graph.initializers
        let keptGathers = options.sharedColumns ? Executor.sharedColumnGathers(sorted, graph: graph) : []
        var remaining = try Executor.plan(Executor.annotatingQuantizedTypes(sorted, storageTypes: graph.storageTypes),
                                          constants: &constants, variables: Set(graph.inputs.map(\.name)), keeping: keptGathers,
                                          graphOutputs: Set(graph.outputs.map(\.name)), opset: graph.opsetVersion,
                                          fusions: options.fuseActivations ? .inference : [])
        let rewrite = try Executor.rewritingSharedColumns(remaining, gathers: keptGathers, constants: constants,
                                                          graphOutputs: Set(graph.outputs.map(\.name)))
        remaining = rewrite.0
        var prepared: [Int: Winograd.PreparedWeights] = [:]
        var preparedOnTheFly = Set<Int>()
        for (index, node) in remaining.enumerated() where node.opType == "Conv" && options.winograd != .never {
            let deferred = node.inputs.count > 1 ? graph.deferredWeights[node.inputs[1]] : nil
            guard node.inputs.count > 1, let shape = constants[node.inputs[1]]?.floatTensor?.shape ?? deferred?.shape,
                  Executor.takesWinograd(node, weightShape: shape, opset: graph.opsetVersion, always: options.winograd == .always)
            else { continue }
            if let weight = constants[node.inputs[1]]?.floatTensor {
                let weights = Winograd.PreparedWeights(weight)
                if options.packWeights && PackedWeights.isWorthwhile { weights.packForProduct() }
                prepared[index] = weights
            } else {
                preparedOnTheFly.insert(index)
            }
        }
        var packed: [Int: PackedWeights] = [:]
        if options.packWeights && PackedWeights.isWorthwhile {
            for (index, node) in remaining.enumerated() where node.opType == "Conv" && node.inputs.count > 1 {
                guard let weight = constants[node.inputs[1]]?.floatTensor, weight.rank == 4 else { continue }
                let group = node.int("group", default: 1)
                guard group >= 1, weight.shape[0] % group == 0, !isDepthwise(weightShape: weight.shape, group: group) else { continue }
                packed[index] = PackedWeights(weight, group: group)
            }
        }
        var products: [Int: SharedColumnProduct] = [:]
        for (index, node) in remaining.enumerated() where node.opType == Executor.sharedColumnsOp {
            products[index] = rewrite.1[node.outputs.first ?? ""]
        }
        self.plan = remaining
        self.constants = constants
        (steps, inputSlots, outputSources, slotCount) = Executor.steps(
            remaining, graph: graph, constants: constants, prepared: prepared, preparedOnTheFly: preparedOnTheFly,
            packed: packed, products: products, expandInBands: options.expandInBands)
        workerChoice = Mutex(WorkerChoice(settings: steps.contains { !$0.bandedWith.isEmpty } ? [.banded, .split, .one] : [.split, .one]))
        self.batchSeparable = Executor.batchSeparable(
            plan: remaining, isConstant: { constants[$0] != nil || graph.deferredWeights[$0] != nil },
            constantShape: { constants[$0]?.shape ?? graph.deferredWeights[$0]?.shape }, graphOutputs: graph.outputs.map(\.name))
    }

    static func checkOpset(_ graph: Graph) throws {
        guard graph.opsetVersion >= 1 && graph.opsetVersion <= newestKnownOpset else {
            throw ExecutionError.unknownOpset(opset: graph.opsetVersion, newest: newestKnownOpset)
        }
    }

    /// Runs the graph on named inputs and returns every graph output. With `checkingFinite`, throws
    /// `ExecutionError.nonFinite` naming the first node whose float output holds NaN or ±Inf (or
    /// `nonFiniteInput` when an input already does).
    ///
    /// A batch may run as passes of a few images each (`Options.passBytes`), with the same outputs up to rounding.
    public func run(_ feeds: [String: AnyTensor], checkingFinite: Bool = false) throws -> [String: AnyTensor] {
        for input in graph.inputs {
            guard let value = feeds[input.name] else {
                throw ExecutionError.missingInput(name: input.name, available: graph.inputs.map(\.name))
            }
            try Executor.check(value, against: input)
            if checkingFinite, let t = value.floatTensor, !t.scalars.allSatisfy(\.isFinite) {
                throw ExecutionError.nonFiniteInput(name: input.name)
            }
        }
        if batchSeparable, options.passBytes > 0, let n = batchSize(feeds), n > 1 {
            return try runInPasses(feeds, images: n, checkingFinite: checkingFinite)
        }
        guard options.chooseWorkers, ComputeThreads.count > 1, !profiling else {
            return try runPass(feeds, checkingFinite: checkingFinite)
        }
        // One pass: split over the workers (with blocks in bands or not) or on this thread alone, whichever is
        // quicker here now (`WorkerChoice`).
        let setting = workerChoice.withLock { $0.next() }
        let start = DispatchTime.now().uptimeNanoseconds
        let outputs = try ComputeThreads.limited(to: setting == .one ? 1 : 0) {
            try runPass(feeds, inBands: setting != .split, checkingFinite: checkingFinite)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        workerChoice.withLock { $0.record(setting, seconds: seconds) }
        return outputs
    }

    /// The images in `feeds` when every graph input has one leading axis of that size, declared dynamic.
    private func batchSize(_ feeds: [String: AnyTensor]) -> Int? {
        var n: Int?
        for input in graph.inputs {
            guard let shape = feeds[input.name]?.shape, shape.count >= 1, n == nil || n == shape[0] else { return nil }
            if let dims = input.shape, let first = dims.first, case .fixed(let d) = first, d > 0 { return nil }
            n = shape[0]
        }
        return n
    }

    /// Adds the seconds since `start` (a `DispatchTime` uptime) to the profile, under the node's op type and its name.
    func record(since start: UInt64, node: Node) {
        record(since: start, op: node.opType, node: "\(node.displayName) (\(node.opType))")
    }

    /// Adds the seconds since `start` (a `DispatchTime` uptime) to the profile.
    func record(since start: UInt64, op: String, node: String) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        profiles.withLock {
            $0.byOp[op, default: 0] += seconds
            $0.byNode[node, default: 0] += seconds
        }
    }

    /// One pass of the plan over `feeds` (already checked). Values live in an array by slot (`Step`); each is released
    /// right after its last reader has read it.
    /// With `inBands` false, the blocks that would run in bands of rows (`Step.bandedWith`) run node by node.
    func runPass(_ feeds: [String: AnyTensor], inBands: Bool = true, checkingFinite: Bool) throws -> [String: AnyTensor] {
        var values = initialValues(feeds)
        try runSteps(steps.indices, on: &values, inBands: inBands, checkingFinite: checkingFinite)
        return try graphOutputs(values)
    }

    /// The values by slot before the first step: the graph's inputs.
    func initialValues(_ feeds: [String: AnyTensor]) -> [AnyTensor?] {
        var values = [AnyTensor?](repeating: nil, count: slotCount)
        for (input, slot) in zip(graph.inputs, inputSlots) { values[slot] = feeds[input.name] }
        return values
    }

    /// Runs `steps[range]` on `values` (by slot). After each step, `done` (when given) gets the bytes of the largest
    /// value the step computed and `values` as they then stand.
    func runSteps(_ range: Range<Int>, on values: inout [AnyTensor?], inBands: Bool = true, checkingFinite: Bool,
                  done: ((Int, [AnyTensor?]) -> Void)? = nil) throws {
        for step in steps[range] {
            var largest = 0
            defer { done?(largest, values) }
            if !step.absorbed { largest = try run(step, on: &values, inBands: inBands, checkingFinite: checkingFinite) }
        }
    }

    /// Runs one step (an absorbed one as it would run on its own) on `values`, with the steps it absorbed in bands of
    /// rows where `inBands` and their shapes allow (`runInBands`); returns the bytes of the largest value it computed.
    func run(_ step: Step, on values: inout [AnyTensor?], inBands: Bool = true, checkingFinite: Bool) throws -> Int {
        var largest = 0
        let node = step.node
        if step.assembled, let index = step.outputs[0], let value = values[index] {
            // A Concat its Convs have written: its inputs were never stored. Profiled at its (nil) cost, so that
            // the profile still names it.
            if profiling { record(since: DispatchTime.now().uptimeNanoseconds, node: node) }
            for index in step.freed { values[index] = nil }
            if checkingFinite, !(value.floatTensor?.scalars.allSatisfy(\.isFinite) ?? true) {
                throw ExecutionError.nonFinite(node: node.displayName, op: node.opType)
            }
            return 0
        }
        if !step.bandedWith.isEmpty {
            if inBands, let bytes = try runInBands(step, on: &values, checkingFinite: checkingFinite) { return bytes }
            // Apart: the steps it absorbed first, as they would have run.
            for absorbed in step.bandedWith {
                largest = max(largest, try run(absorbed, on: &values, checkingFinite: checkingFinite))
            }
        }
        if let operands = step.convolution, let x = values[operands.input]?.floatTensor {
            let residual = operands.residual.flatMap { values[$0]?.floatTensor }
            if operands.residual == nil || residual != nil {
                for index in step.freed { values[index] = nil }
                return max(largest, try runConvolution(step, operands, input: x, residual: residual, on: &values,
                                                       checkingFinite: checkingFinite))
            }
        }
        var inputs: [AnyTensor?] = []
        inputs.reserveCapacity(step.sources.count)
        var prepared = step.prepared
        for (slot, source) in step.sources.enumerated() {
            switch source {
            case .omitted: inputs.append(nil)
            case .constant(let value): inputs.append(value)
            case .value(let index):
                guard let value = values[index] else {
                    throw ExecutionError.missingValue(node: node.displayName, value: node.inputs[slot])
                }
                inputs.append(value)
            case .missing(let name): throw ExecutionError.missingValue(node: node.displayName, value: name)
            case .deferred(let deferred):
                // Expanded for this node only; freed when the node is done.
                let start = profiling ? DispatchTime.now().uptimeNanoseconds : nil
                if slot == 1 && step.preparedOnTheFly, let x = inputs.first??.floatTensor,
                   Executor.winogradPays(node, input: x.shape, weightShape: deferred.shape, opset: graph.opsetVersion) {
                    // Expanded a few output channels at a time straight into the Winograd form; the convolution
                    // reads only the weight's shape then, so its placeholder is never written (nor resident).
                    let s = deferred.shape
                    prepared = Winograd.PreparedWeights(outputChannels: s[0], inputChannels: s[1], rows: deferred.expandRows)
                    inputs.append(.float(Tensor(shape: s, unsafeUninitialized: { _ in })))
                } else {
                    inputs.append(.float(deferred.expanded()))
                }
                if let start { record(since: start, op: "(expand weights)", node: "(expand weights)") }
            }
        }
        // Free intermediates whose last reader is this node (the local copies keep them alive until done).
        for index in step.freed { values[index] = nil }
        let start = profiling ? DispatchTime.now().uptimeNanoseconds : nil
        let arguments = Arguments(node: node, values: inputs, opset: graph.opsetVersion, prepared: prepared,
                                  packed: step.packed, shared: step.shared, layer: step.layer)
        if let place = step.place {
            largest = try convolve(step, arguments, into: place, input: try arguments.float(0), weight: try arguments.float(1),
                                   bias: arguments.has(2) ? try arguments.float(2).scalars : nil, on: &values)
            if let start { record(since: start, node: node) }
            return largest
        }
        let outputs = try Operators.evaluate(node, kernel: step.kernel, arguments: arguments)
        if let start { record(since: start, node: node) }
        for (index, value) in zip(step.outputs, outputs) {
            guard let index else { continue }
            values[index] = value
            largest = max(largest, value.count * 4)
        }
        if checkingFinite, outputs.contains(where: { !($0.floatTensor?.scalars.allSatisfy(\.isFinite) ?? true) }) {
            throw ExecutionError.nonFinite(node: node.displayName, op: node.opType)
        }
        return largest
    }

    /// The graph's outputs from the values after the last step.
    func graphOutputs(_ values: [AnyTensor?]) throws -> [String: AnyTensor] {
        var result: [String: AnyTensor] = [:]
        for (output, source) in zip(graph.outputs, outputSources) {
            switch source {
            case .value(let index) where values[index] != nil: result[output.name] = values[index]
            case .constant(let value): result[output.name] = value
            default: throw ExecutionError.missingValue(node: "graph output", value: output.name)
            }
        }
        return result
    }

    /// Runs a single-input, single-output model on a float tensor.
    public func callAsFunction(_ input: Tensor<Float>) throws -> Tensor<Float> {
        guard let inputName = graph.inputs.first?.name, let outputName = graph.outputs.first?.name else {
            throw ExecutionError.missingInput(name: "<first input>", available: graph.inputs.map(\.name))
        }
        let outputs = try run([inputName: .float(input)])
        guard let output = outputs[outputName]?.floatTensor else {
            throw ExecutionError.inputMismatch(name: outputName, detail: "output is not a float tensor")
        }
        return output
    }

    static func check(_ value: AnyTensor, against info: ValueInfo) throws {
        if info.elementType == 1, value.floatTensor == nil {
            throw ExecutionError.inputMismatch(name: info.name, detail: "expects float32, got \(value.elementTypeName)")
        }
        guard let dims = info.shape else { return }
        let shape = value.shape
        let matches = dims.count == shape.count && zip(dims, shape).allSatisfy { dim, n in
            if case .fixed(let d) = dim { return d == n || d <= 0 }
            return true
        }
        if !matches {
            throw ExecutionError.inputMismatch(name: info.name,
                detail: "expects shape [\(dims.map(\.description).joined(separator: ", "))], got \(shape)")
        }
    }

    /// Records on each QuantizeLinear the element type its zero-point initializer is stored as (its output type), which
    /// the Int64 values no longer tell.
    static func annotatingQuantizedTypes(_ nodes: [Node], storageTypes: [String: Int]) -> [Node] {
        nodes.map { node in
            guard node.opType == "QuantizeLinear", node.inputs.count > 2, let type = storageTypes[node.inputs[2]] else { return node }
            var node = node
            node.attributes[Operators.quantizedTypeKey] = .int(type)
            return node
        }
    }
}

extension Executor {
    /// The model with every constant subgraph folded into initializers: weights rebuilt from a codebook or from
    /// shared columns become plain dense tensors (a drop-in dense model). Build the executor with
    /// `fuseActivations = false` and `sharedColumns = false` so the remaining nodes are standard ONNX.
    public func foldedGraph() -> Graph {
        var g = graph
        g.nodes = plan.map { node in
            var node = node
            node.attributes[Operators.quantizedTypeKey] = nil
            return node
        }
        let read = Set(plan.flatMap(\.inputs)).union(graph.outputs.map(\.name))
        g.initializers = constants.filter { read.contains($0.key) }
        g.storageTypes = g.storageTypes.filter { g.initializers[$0.key] != nil && g.initializers[$0.key]?.floatTensor == nil }
        g.metadata["weightcluster.format"] = "dense"
        return g
    }
}
