/// Exact storage of a compressed model, in bytes, as the paper counts kernels.
public struct Footprint: Sendable, Codable, Equatable {
    /// All float weights of the original model at 32 bits.
    public var denseBytes: Int
    /// The clustered kernels as they were, at 32 bits.
    public var clusteredDenseBytes: Int
    /// Codebook entries at 32 bits.
    public var codebookBytes: Int
    /// ceil(log2 K) bits per kernel, bit-packed, per codebook.
    public var indexBytes: Int
    /// Per-kernel scales (scaled mode).
    public var scaleBytes: Int
    /// Everything left unclustered (biases, FC layers, excluded convs) at 32 bits.
    public var restBytes: Int
    public var kernels: Int
    public var clusters: Int

    public var totalBytes: Int { codebookBytes + indexBytes + scaleBytes + restBytes }
    public var compressionRatio: Double { Double(denseBytes) / Double(max(1, totalBytes)) }
    /// 1 − K/N, as the paper reports it.
    public var kernelReduction: Double { 1 - Double(clusters) / Double(max(1, kernels)) }

    public static func indexBits(clusters k: Int) -> Int {
        k <= 1 ? 0 : Int.bitWidth - (k - 1).leadingZeroBitCount
    }
}
