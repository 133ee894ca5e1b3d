import Dispatch
import Compute
import ModelGraph

/// One form a weight can take in an allocation: `bits` per index, and `clusterDimension` weights per LUT entry
/// (nil: the vector length the base configuration gives, the scalar family of `allocateBits`).
public struct AllocationCandidate: Sendable, Hashable, Comparable {
    public var bits: Int
    public var clusterDimension: Int?

    public init(bits: Int, clusterDimension: Int? = nil) {
        self.bits = bits
        self.clusterDimension = clusterDimension
    }

    /// Scalar LUTs of 1 to 8 bits.
    public static let scalar: [AllocationCandidate] = [1, 2, 3, 4, 5, 6, 8].map { AllocationCandidate(bits: $0) }
    /// Vector LUTs of pairs of weights at 0.5, 1, 1.5 and 2.5 bits per weight: below and between the scalar widths
    /// (only 1 bit per weight is reached by both), so a layer that needs little can pay for one that needs more.
    public static let pairs: [AllocationCandidate] = [1, 2, 3, 5].map { AllocationCandidate(bits: $0, clusterDimension: 2) }

    public static func < (a: Self, b: Self) -> Bool { ((a.clusterDimension ?? 1), a.bits) < ((b.clusterDimension ?? 1), b.bits) }
}

/// What every candidate form costs every palettized weight, measured once: each candidate is fitted to every weight
/// (with the sensitivity as k-means weights) and its stored bytes and cost recorded. `allocate` then chooses, for any
/// budget, the forms that meet it and lose the least — so a sweep over targets measures once.
public struct AllocationCurves: Sendable, Encodable {
    /// The configuration the candidates vary (its layer entries are kept; the plan adds one per palettized weight).
    public var base: PalettizationConfiguration
    /// The palettized weights, in the order palettization reports them.
    public var weights: [String]
    /// For each weight, one choice per candidate that applies to it (a vector candidate does not where the layer's
    /// input axis is not a multiple of its length).
    public var curves: [String: [BitAllocation.Choice]]
    /// Elements of all palettized weights.
    public var palettizedElements: Int
    /// Footprint of everything palettization does not cover (0 unless measured with `otherBytes`).
    public var otherBytes: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case weights, curves, seconds, palettizedElements = "palettized_elements", otherBytes = "other_bytes"
    }

    /// Measures every candidate on every weight `palettizeWeights` would palettize with `base`. `cost` (a weight's
    /// name and rebuilt value → its measured harm) is what the allocation minimises; without it, the
    /// sensitivity-weighted error Σ Fᵢ (wᵢ − ŵᵢ)². `otherBytes` gives, from a palettization result, the footprint
    /// of everything it does not cover, for `allocate(modelBytes:)`.
    ///
    /// `compensation` (as `palettizeWeights` takes it) costs every candidate as the compressed model will use it: with
    /// its indices chosen by error compensation on the inputs of the dense model — each weight is costed with only it
    /// changed, so the layers before it are dense. Without it a candidate is costed with nearest assignment, which
    /// at 2 bits and below overrates what compensation will repair. Give `cost` other images than the ones the Gram
    /// matrices come from (the CLI takes the next N training images): a layer with more inputs than there are images
    /// is compensated to fit those images almost exactly and would look free on them. Each candidate gathers the
    /// Gram matrices again (kept for one layer at a time, not for all: VGG-16's would take 640 MB).
    public init(measuring graph: Graph, configuration base: PalettizationConfiguration,
                candidates: [AllocationCandidate] = AllocationCandidate.scalar, importance: [String: [Float]],
                cost: AllocationCost? = nil, compensation: ((Graph, Node) throws -> [Float]?)? = nil,
                skipping: Set<String> = [], reserveZero: Set<String> = [],
                otherBytes: ((PalettizationResult) -> Int)? = nil) throws {
        guard !importance.isEmpty else {
            throw ConfigurationError(level: "allocation", field: "bits_per_weight", message: "needs a sensitivity per weight: give calibration images")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        self.base = base
        weights = []
        curves = [:]
        palettizedElements = 0
        self.otherBytes = 0
        // Each layer's inputs as the dense model gives them, whatever the candidate did to the layers before it.
        let denseInputs = compensation.map { gram in { (_: Graph, node: Node) in try gram(graph, node) } }
        for candidate in Array(Set(candidates)).sorted() {
            let r = try palettizeWeights(in: graph, configuration: Self.configuration(base, candidate, reserveZero: reserveZero),
                                         skipping: skipping, reserveZero: reserveZero, importance: importance, compensation: denseInputs)
            if weights.isEmpty {
                weights = r.layers.map(\.weight)
                palettizedElements = r.denseBytes / 4
                self.otherBytes = otherBytes?(r) ?? 0
            }
            for l in r.layers {
                // A vector candidate that fell back to scalar LUTs (or was kept scalar) is not a candidate here.
                if let d = candidate.clusterDimension, l.clusterDim != d { continue }
                let shared = l.granularity == PalettizationSettings.Granularity.network.rawValue
                // A network-wide codebook is shared: each weight is charged its share of it.
                let codebook = shared ? r.sharedCodebookBytes * l.denseBytes / max(1, r.denseBytes) : 0
                let error = try cost.map { try $0(l.weight, r.denseGraph.initializers[l.weight]!.floatTensor!) } ?? l.weightedError ?? l.squaredError
                curves[l.weight, default: []].append(BitAllocation.Choice(weight: l.weight, bits: l.bits, storedBytes: l.storedBytes + codebook,
                                                                          error: error, clusterDim: candidate.clusterDimension))
            }
        }
        seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// `base` with every width set to the candidate's (and its vector length, for a vector candidate; pruned weights
    /// keep scalar LUTs, which alone keep their zeros exact).
    static func configuration(_ base: PalettizationConfiguration, _ candidate: AllocationCandidate,
                              reserveZero: Set<String>) -> PalettizationConfiguration {
        var config = base
        config.global.bits = candidate.bits
        for key in config.opTypes.keys where config.opTypes[key]!.bits != nil { config.opTypes[key]!.bits = candidate.bits }
        for i in config.layers.indices where config.layers[i].override.bits != nil { config.layers[i].override.bits = candidate.bits }
        if let d = candidate.clusterDimension {
            config.global.clusterDim = d
            for key in config.opTypes.keys where config.opTypes[key]!.clusterDim != nil { config.opTypes[key]!.clusterDim = d }
            for i in config.layers.indices where config.layers[i].override.clusterDim != nil { config.layers[i].override.clusterDim = d }
            config.layers += reserveZero.sorted().map { .init(name: $0, override: WeightFormOverride(clusterDim: 1)) }
        }
        return config
    }

    /// The same curves with only the choices of `forms` (e.g. scalar LUTs only, from curves that also hold vectors).
    public func restricted(to forms: [AllocationCandidate]) throws -> AllocationCurves {
        let kept = Set(forms)
        var r = self
        for (weight, choices) in curves {
            r.curves[weight] = choices.filter { kept.contains(AllocationCandidate(bits: $0.bits, clusterDimension: $0.clusterDim)) }
            guard !r.curves[weight]!.isEmpty else {
                throw ConfigurationError(level: "allocation", field: "candidates", message: "none of \(forms.count) forms was measured for '\(weight)'")
            }
        }
        return r
    }

    /// The forms for `bitsPerWeight` bits per palettized weight (codebooks, indices and scales counted).
    public func allocate(bitsPerWeight target: Double) throws -> BitAllocation {
        guard target > 0 && target.isFinite else {
            throw ConfigurationError(level: "allocation", field: "bits_per_weight", message: "must be a positive number, got \(target)")
        }
        let budget = Int((target * Double(palettizedElements) / 8).rounded(.down))
        return try allocate(budget: budget, target: target) { total in
            ConfigurationError(level: "allocation", field: "bits_per_weight",
                               message: String(format: "%.3g is below the smallest size any candidate reaches: %.3f bits per weight (%d bytes)",
                                               target, Double(total * 8) / Double(max(1, palettizedElements)), total))
        }
    }

    /// The forms for a whole model of at most `modelBytes` bytes: what palettization does not cover (`otherBytes`)
    /// is charged first.
    public func allocate(modelBytes: Int) throws -> BitAllocation {
        guard modelBytes >= 1 else {
            throw ConfigurationError(level: "allocation", field: "target_size", message: "must be a positive number of bytes, got \(modelBytes)")
        }
        let budget = modelBytes - otherBytes
        return try allocate(budget: budget, target: Double(budget * 8) / Double(max(1, palettizedElements))) { total in
            ConfigurationError(level: "allocation", field: "target_size",
                               message: "\(modelBytes) bytes is below the smallest model any candidate reaches: \(total + otherBytes) bytes (\(otherBytes) of them not palettized)")
        }
    }

    /// The forms whose measured costs sum to the least within the budget: a multiple-choice knapsack, solved exactly
    /// by dynamic programming over the bytes above every weight's smallest form (in at most `steps` steps of budget,
    /// each form's bytes rounded up, so the plan never exceeds the budget), then what rounding left over spent by
    /// greedy upgrades (the largest cost saved per byte added first). Exact, unlike greedy marginal gain alone, which
    /// stops short where a weight's curve is not convex: no plan of these forms that fits the budget — a uniform one
    /// included — costs less in sum than the one chosen.
    func allocate(budget: Int, target: Double, tooSmall: (Int) -> ConfigurationError, steps: Int = 16_384) throws -> BitAllocation {
        let start = DispatchTime.now().uptimeNanoseconds
        let curve = weights.map { curves[$0]! }
        let smallest = curve.map { c in c.indices.min { c[$0].storedBytes < c[$1].storedBytes }! }
        var total = zip(curve, smallest).reduce(0) { $0 + $1.0[$1.1].storedBytes }
        guard total <= budget else { throw tooSmall(total) }
        let spare = budget - total
        let step = max(1, (spare + steps - 1) / steps)
        let units = spare / step
        // Units of budget a form takes above its weight's smallest.
        let weight = curve.indices.map { l in curve[l].map { ($0.storedBytes - curve[l][smallest[l]].storedBytes + step - 1) / step } }
        // least[u]: the least cost of the weights so far in at most u units; picked[l][u]: the form weight l takes there.
        var least = [Double](repeating: 0, count: units + 1)
        var picked: [[UInt16]] = []
        for (l, choices) in curve.enumerated() {
            var next = [Double](repeating: .infinity, count: units + 1), pick = [UInt16](repeating: 0, count: units + 1)
            for (j, c) in choices.enumerated() where weight[l][j] <= units {
                for u in weight[l][j]...units where least[u - weight[l][j]] + c.error < next[u] {
                    next[u] = least[u - weight[l][j]] + c.error
                    pick[u] = UInt16(j)
                }
            }
            least = next
            picked.append(pick)
        }
        var current = smallest, u = units
        for l in curve.indices.reversed() {
            current[l] = Int(picked[l][u])
            u -= weight[l][current[l]]
        }
        total = zip(curve, current).reduce(0) { $0 + $1.0[$1.1].storedBytes }
        // What rounding left over, spent greedily.
        while true {
            var best: (layer: Int, choice: Int, gain: Double)?
            for (l, choices) in curve.enumerated() {
                let now = choices[current[l]]
                for (j, c) in choices.enumerated() where c.storedBytes > now.storedBytes && c.error < now.error {
                    let added = c.storedBytes - now.storedBytes
                    guard total + added <= budget else { continue }
                    let gain = (now.error - c.error) / Double(added)
                    if best == nil || gain > best!.gain { best = (l, j, gain) }
                }
            }
            guard let best else { break }
            total += curve[best.layer][best.choice].storedBytes - curve[best.layer][current[best.layer]].storedBytes
            current[best.layer] = best.choice
        }
        let choices = zip(curve, current).map { $0[$1] }
        var plan = base
        plan.layers += choices.map { .init(name: $0.weight, override: WeightFormOverride(bits: $0.bits, clusterDim: $0.clusterDim)) }
        return BitAllocation(configuration: plan, choices: choices, targetBitsPerWeight: target, budgetBytes: budget,
                             seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
