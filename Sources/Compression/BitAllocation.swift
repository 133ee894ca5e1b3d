import Dispatch
import Compute
import ModelGraph

/// Per-weight bits chosen to meet a size budget while losing the least: every candidate bit width is fitted to every
/// palettized weight (with the sensitivity as k-means weights), its sensitivity-weighted error Σ Fᵢ (wᵢ − ŵᵢ)² and
/// its stored bytes measured, and then, starting from the smallest width everywhere, the upgrade with the largest
/// error saved per byte added is taken while the budget allows (greedy by marginal gain).
public struct BitAllocation: Sendable, Encodable {
    public struct Choice: Sendable, Codable, Equatable {
        public var weight: String
        public var bits: Int
        public var storedBytes: Int
        /// What the weight at these bits costs: the measured cost, or Σ Fᵢ (wᵢ − ŵᵢ)².
        public var error: Double

        enum CodingKeys: String, CodingKey { case weight, bits, error, storedBytes = "stored_bytes" }
    }

    /// The input configuration with one layer entry per palettized weight setting its bits: pass it as `--config`
    /// (with the same calibration) to reproduce the result.
    public var configuration: PalettizationConfiguration
    public var choices: [Choice]
    /// Bits per palettized weight asked for, and the budget in bytes it gives.
    public var targetBitsPerWeight: Double
    public var budgetBytes: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case choices, targetBitsPerWeight = "target_bits_per_weight", budgetBytes = "budget_bytes", seconds
    }
}

/// What one weight at one candidate costs: given the weight's name and its rebuilt value, a measured error of the
/// model (e.g. the divergence of its outputs on calibration images with only that weight changed).
public typealias AllocationCost = @Sendable (_ weight: String, _ rebuilt: Tensor<Float>) throws -> Double

/// Chooses each palettized weight's bits among `candidates` so that codebooks, indices and scales of all of them take
/// at most `bitsPerWeight` bits per weight. `importance` (a weight's name → sensitivity per element, e.g. the
/// diagonal Fisher information) weights the clustering and is required; what a candidate costs is `cost` when given
/// (measured), else its sensitivity-weighted error Σ Fᵢ (wᵢ − ŵᵢ)² — a second-order estimate that, measured on
/// VGG-16, badly underrates the harm of 1 bit in the large late layers (docs/RESULTS.md).
///
/// `modelBytes` sets the budget as the whole model's footprint instead: `otherBytes` gives, from a palettization
/// result, the footprint of everything it does not cover (other passes' weights, biases, dense layers), and the
/// palettized weights get what is left (`target` is then ignored).
public func allocateBits(in graph: Graph, configuration base: PalettizationConfiguration, bitsPerWeight target: Double,
                         modelBytes: (target: Int, otherBytes: (PalettizationResult) -> Int)? = nil,
                         candidates: [Int] = [1, 2, 3, 4, 5, 6, 8], importance: [String: [Float]], cost: AllocationCost? = nil,
                         skipping: Set<String> = [], reserveZero: Set<String> = []) throws -> BitAllocation {
    guard modelBytes != nil || (target > 0 && target.isFinite) else {
        throw ConfigurationError(level: "allocation", field: "bits_per_weight", message: "must be a positive number, got \(target)")
    }
    if let modelBytes, modelBytes.target < 1 {
        throw ConfigurationError(level: "allocation", field: "target_size", message: "must be a positive number of bytes, got \(modelBytes.target)")
    }
    guard !importance.isEmpty else {
        throw ConfigurationError(level: "allocation", field: "bits_per_weight", message: "needs a sensitivity per weight: give calibration images")
    }
    let start = DispatchTime.now().uptimeNanoseconds
    let widths = Array(Set(candidates)).sorted()
    var curves: [String: [BitAllocation.Choice]] = [:]
    var order: [String] = []
    var weights = 0, other = 0
    for bits in widths {
        var config = base
        config.global.bits = bits
        for key in config.opTypes.keys where config.opTypes[key]!.bits != nil { config.opTypes[key]!.bits = bits }
        for i in config.layers.indices where config.layers[i].override.bits != nil { config.layers[i].override.bits = bits }
        let r = try palettizeWeights(in: graph, configuration: config, skipping: skipping, reserveZero: reserveZero, importance: importance)
        if order.isEmpty {
            order = r.layers.map(\.weight)
            weights = r.denseBytes / 4
            other = modelBytes?.otherBytes(r) ?? 0
        }
        for l in r.layers {
            let shared = l.granularity == PalettizationSettings.Granularity.network.rawValue
            // A network-wide codebook is shared: each weight is charged its share of it.
            let codebook = shared ? r.sharedCodebookBytes * l.denseBytes / max(1, r.denseBytes) : 0
            let error = try cost.map { try $0(l.weight, r.denseGraph.initializers[l.weight]!.floatTensor!) } ?? l.weightedError ?? l.squaredError
            curves[l.weight, default: []].append(BitAllocation.Choice(weight: l.weight, bits: l.bits, storedBytes: l.storedBytes + codebook,
                                                                      error: error))
        }
    }
    let budget = modelBytes.map { $0.target - other } ?? Int((target * Double(weights) / 8).rounded(.down))
    var current = order.map { name in curves[name]!.indices.min { curves[name]![$0].storedBytes < curves[name]![$1].storedBytes }! }
    var total = zip(order, current).reduce(0) { $0 + curves[$1.0]![$1.1].storedBytes }
    guard total <= budget else {
        if let modelBytes {
            throw ConfigurationError(level: "allocation", field: "target_size",
                                     message: "\(modelBytes.target) bytes is below the smallest model any candidate reaches: \(total + other) bytes (\(other) of them not palettized)")
        }
        throw ConfigurationError(level: "allocation", field: "bits_per_weight",
                                 message: String(format: "%.3g is below the smallest size any candidate reaches: %.3f bits per weight (%d bytes)",
                                                 target, Double(total * 8) / Double(max(1, weights)), total))
    }
    while true {
        var best: (layer: Int, choice: Int, gain: Double)?
        for (l, name) in order.enumerated() {
            let now = curves[name]![current[l]]
            for (j, c) in curves[name]!.enumerated() where c.storedBytes > now.storedBytes && c.error < now.error {
                let added = c.storedBytes - now.storedBytes
                guard total + added <= budget else { continue }
                let gain = (now.error - c.error) / Double(added)
                if best == nil || gain > best!.gain { best = (l, j, gain) }
            }
        }
        guard let best else { break }
        total += curves[order[best.layer]]![best.choice].storedBytes - curves[order[best.layer]]![current[best.layer]].storedBytes
        current[best.layer] = best.choice
    }
    let choices = zip(order, current).map { curves[$0]![$1] }
    var plan = base
    plan.layers += choices.map { .init(name: $0.weight, override: WeightFormOverride(bits: $0.bits)) }
    return BitAllocation(configuration: plan, choices: choices,
                         targetBitsPerWeight: modelBytes == nil ? target : Double(budget * 8) / Double(max(1, weights)), budgetBytes: budget,
                         seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}
