import ArgumentParser
import Clustering
import Compression
import Datasets
import Evaluation
import Execution
import ModelGraph

extension KernelClusteringConfiguration.Mode: ExpressibleByArgument {}
extension KernelClusteringConfiguration.Scope: ExpressibleByArgument {}
extension KMeansConfiguration.Initialization: ExpressibleByArgument {}

/// Kernel-clustering settings shared by `compress` and `sweep`.
struct KernelOptions: ParsableArguments {
    @Option(help: "How kernels are represented: plain (centroid replaces kernel, the paper) or scaled (scale × unit shape).")
    var kernelMode: KernelClusteringConfiguration.Mode = .plain

    @Option(help: "One codebook for the whole network (per kernel shape) or one per layer.")
    var kernelScope: KernelClusteringConfiguration.Scope = .network

    @Option(help: "Leave Conv layers whose node or weight name matches this glob dense (repeatable).")
    var exclude: [String] = []

    @Option(help: "Bits per kernel scale in scaled mode: 16 (float16) or 8.")
    var scaleBits: Int = 16

    @Option(help: "Precision of the kernel codebook entries: fp32, fp16 or int8 (one step per codebook).")
    var kernelCodebook: EntryPrecision = .fp32

    @Option(help: "Seed of the clustering (same seed, same output file).")
    var seed: UInt64 = 0

    @Option(help: "Maximum Lloyd iterations.")
    var maxIterations: Int = 30

    @Option(help: "k-means seeding (kernels and neurons): automatic (k-means++ when n·K ≤ 2^28 and n·K·d ≤ 9·2^28, else spreadSample), kMeansPlusPlus, randomSample, spreadSample.")
    var kernelInit: KMeansConfiguration.Initialization = .automatic

    func configuration(_ size: KernelClusteringConfiguration.Size) throws -> KernelClusteringConfiguration {
        var config = KernelClusteringConfiguration(size: size, mode: kernelMode, scope: kernelScope, exclude: exclude,
                                                   scaleBits: scaleBits, seed: seed, maxIterations: maxIterations)
        config.initialization = kernelInit
        config.codebookPrecision = kernelCodebook
        try config.validate()
        return config
    }
}
