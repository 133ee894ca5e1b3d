import ArgumentParser
import Compression
import Foundation

extension PalettizationSettings.Granularity: ExpressibleByArgument {}
extension EntryPrecision: ExpressibleByArgument {}

/// Palettization flags of `compress`: they set the global level of a `PalettizationConfiguration`; `--config`
/// adds the op-type and layer levels (and may set the global one too; flags win).
struct PalettizationOptions: ParsableArguments {
    @Option(help: "Palettize every Conv/Gemm/MatMul/Gather weight: K = 2^bits codebook entries (1…8 scalar, up to 20 for vectors).")
    var bits: Int?

    @Option(help: "One codebook per-tensor, per-channel, per-grouped-channel (--group-size output channels) or network (shared).")
    var granularity: PalettizationSettings.Granularity?

    @Option(help: "Output channels per codebook with per-grouped-channel (the last group may be smaller).")
    var groupSize: Int?

    @Option(help: "Vector palettization: d consecutive weights along the input axis share one index (1 = scalar LUT).")
    var clusterDim: Int?

    @Option(help: "Precision of codebook entries: fp32, fp16 or int8 (one step per codebook).")
    var lut: EntryPrecision?

    @Flag(help: "Normalise each output channel by its largest magnitude before clustering (the factor kept in float16).")
    var perChannelScale = false

    @Option(help: "A JSON plan with per-op-type and per-layer levels (docs/CONFIG.md).")
    var config: String?

    var isEmpty: Bool { isFlagless && config == nil }

    /// The configuration the flags and plan file describe, or nil when palettization was not asked for.
    func configuration(seed: UInt64) throws -> PalettizationConfiguration? {
        guard !isEmpty else { return nil }
        var c = PalettizationConfiguration()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else { throw ValidationError("cannot read the plan file \(config)") }
            do {
                c = try JSONDecoder().decode(PalettizationConfiguration.self, from: data)
            } catch let DecodingError.dataCorrupted(context) {
                throw ValidationError("\(config) is not valid JSON: \(context.debugDescription)")
            } catch let DecodingError.keyNotFound(key, context) {
                throw ValidationError("\(config): missing \"\(key.stringValue)\" at \(context.codingPath.map(\.stringValue).joined(separator: "."))")
            } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
                throw ValidationError("\(config): wrong value at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
            }
        } else {
            c.seed = seed
        }
        if let bits { c.global.bits = bits }
        if let granularity { c.global.granularity = granularity }
        if let groupSize { c.global.groupSize = groupSize }
        if let clusterDim { c.global.clusterDim = clusterDim }
        if let lut { c.global.lut = lut }
        if perChannelScale { c.global.perChannelScale = true }
        if !isFlagless { c.global.form = .palettize }
        try mapped { try c.validate() }
        return c
    }

    private var isFlagless: Bool {
        bits == nil && granularity == nil && groupSize == nil && clusterDim == nil && lut == nil && !perChannelScale
    }
}

/// Runs `body`, turning configuration errors at the global level into messages that name the flag.
func mapped<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ConfigurationError where error.level == "global" || error.level == "allocation" || error.level.hasPrefix("layer '") {
        let flag = ["bits": "--bits", "group_size": "--group-size", "cluster_dim": "--cluster-dim", "granularity": "--granularity",
                    "lut": "--lut", "max_iterations": "--max-iterations", "bits_per_weight": "--bits-per-weight",
                    "target_size": "--target-size"][error.field] ?? error.field
        throw ValidationError("\(flag) \(error.message)" + (error.level == "global" || error.level == "allocation" ? "" : " (\(error.level))"))
    }
}
