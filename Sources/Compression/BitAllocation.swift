import Compute
import ModelGraph

/// Per-weight bits (and vector length) chosen to meet a size budget while losing the least: every candidate form is
/// fitted to every palettized weight (with the sensitivity as k-means weights), its cost and its stored bytes
/// measured (`AllocationCurves`), and then the forms whose costs sum to the least within the budget are chosen (a
/// multiple-choice knapsack, solved by dynamic programming).
public struct BitAllocation: Sendable, Encodable {
    public struct Choice: Sendable, Codable, Equatable {
        public var weight: String
        public var bits: Int
        public var storedBytes: Int
        /// What the weight at these bits costs: the measured cost, or Σ Fᵢ (wᵢ − ŵᵢ)².
        public var error: Double
        /// Weights per LUT entry when the candidate sets it (a vector candidate); nil: as the configuration gives.
        public var clusterDim: Int? = nil

        enum CodingKeys: String, CodingKey { case weight, bits, error, storedBytes = "stored_bytes", clusterDim = "cluster_dim" }
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
    try allocateBits(in: graph, configuration: base, bitsPerWeight: target, modelBytes: modelBytes,
                     forms: candidates.map { AllocationCandidate(bits: $0) }, importance: importance, cost: cost,
                     skipping: skipping, reserveZero: reserveZero)
}

/// The same over any candidate forms (scalar and vector LUTs): `AllocationCurves` measured and solved once
/// (`compensation`: candidates costed with their indices chosen by error compensation, as `AllocationCurves` says).
public func allocateBits(in graph: Graph, configuration base: PalettizationConfiguration, bitsPerWeight target: Double,
                         modelBytes: (target: Int, otherBytes: (PalettizationResult) -> Int)? = nil,
                         forms: [AllocationCandidate], importance: [String: [Float]], cost: AllocationCost? = nil,
                         compensation: ((Graph, Node) throws -> [Float]?)? = nil,
                         skipping: Set<String> = [], reserveZero: Set<String> = []) throws -> BitAllocation {
    // Impossible targets fail before anything is measured.
    guard modelBytes != nil || (target > 0 && target.isFinite) else {
        throw ConfigurationError(level: "allocation", field: "bits_per_weight", message: "must be a positive number, got \(target)")
    }
    if let modelBytes, modelBytes.target < 1 {
        throw ConfigurationError(level: "allocation", field: "target_size", message: "must be a positive number of bytes, got \(modelBytes.target)")
    }
    let curves = try AllocationCurves(measuring: graph, configuration: base, candidates: forms, importance: importance, cost: cost,
                                      compensation: compensation, skipping: skipping, reserveZero: reserveZero, otherBytes: modelBytes?.otherBytes)
    var allocation = try modelBytes.map { try curves.allocate(modelBytes: $0.target) } ?? curves.allocate(bitsPerWeight: target)
    allocation.seconds += curves.seconds
    return allocation
}
