extension Executor {
    /// How an executor prepares and runs a graph: kernels, fusions, memory and the passes a batch runs in.
    public struct Options: Sendable {
        public enum Winograd: Sendable { case automatic, always, never }
        /// Which 3×3 convolutions run as Winograd F(2×2,3×3) (automatic: those with enough input channels to gain).
        public var winograd: Winograd = .automatic
        /// Fold into each convolution the BatchNormalization that alone reads its output (`foldingBatchNormalization`),
        /// and fuse into it the zero Pad that feeds it alone, and the Add, then the Relu or Clip, that alone read its
        /// output (`fusingConvolutions`).
        public var fuseActivations = true
        /// Run layers whose weight is a Gather of shared columns in compressed form (sum, then the smaller
        /// product); when false the Gather is folded into a dense weight at load.
        public var sharedColumns = true
        /// Have malloc keep freed buffers for the next node instead of returning them to the kernel (glibc only,
        /// process-wide, set once; see `Executor.reusingFreedMemory`).
        public var reuseFreedMemory = true
        /// Where the products run on packed weights (`PackedWeights.isWorthwhile`), pack each constant convolution
        /// weight once at load (one more copy of it in memory; Winograd's transformed weights are replaced by theirs)
        /// instead of on every call. Deferred (compressed) weights are packed per call, never kept.
        public var packWeights = true
        /// Run a batch as passes of as many images as keep the largest intermediate value within this many bytes, the
        /// whole network per pass, so that each layer's data stays in cache (`runInPasses`); 0 runs one pass. Only
        /// for plans whose every node treats images independently (`batchSeparable`), with a dynamic batch axis.
        /// 16 MB: a layer's input and output then fit together in a 32 MB L3 (AVX2 host, two threads, batch 64,
        /// images/s, median of 5 alternated runs, 64 → 16 MB: MobileNetV2 224 px 92 → 118, EfficientNet-Lite0 84 → 98;
        /// ResNet-18 and SqueezeNet 1.1 at 224 px within noise; 8 MB slower than 16 on EfficientNet-Lite0, 91).
        public var passBytes = 16 << 20
        /// Side by side (`parallelPasses`), each pass runs its early steps in sub-passes of as many images as keep their
        /// largest intermediate within this many bytes, about a core's L2 and a half, up to the step from which every
        /// value for the whole pass fits in it (`PassPlan.stages`); the later steps, whose maps are small and whose
        /// weights are most of the model's, then run once over the pass; 0 runs each pass in one stage. Batch 64, two
        /// threads, images/s, alternated runs, 4 MB (until session 43: passBytes / (2 · workers)) → 1.5 MB, AVX-512 host
        /// with 1 MB of L2 a core: SqueezeNet 1.1 64 px 8,083–8,262 → 8,771–8,880, ResNet-18 64 px 1,420–1,513 →
        /// 1,677–1,831, 224 px 138–143 → 151–159, VGG-16 (Fashion-MNIST) 929–930 → 1,062–1,073, AlexNet 1,307–1,310 →
        /// 1,504–1,515; MobileNetV2, EfficientNet-Lite0 and SqueezeNet 1.1 224 px within 2%. 2 MB gained less
        /// (SqueezeNet 64 px 8,103–8,457, VGG-16 997–1,051), 1.25 MB lost SqueezeNet 224 px its stages (545–593 against
        /// 580–617). Two stages rather than smaller passes throughout: those cost MobileNetV2 64 px 5% (session 35), its
        /// later layers' weights, most of its 14 MB, read again by each pass.
        public var stageBytes = 3 << 19
        /// Run those passes side by side, each on one thread (`runInPasses`), instead of one after another with every
        /// node split over the threads: no thread then waits for another at the end of each node (AVX2 host, two
        /// threads, batch 64, both alternated in one process, median ms: MobileNetV2 224 px 403 → 348, EfficientNet-Lite0
        /// 590 → 484, SqueezeNet 1.1 224 px 390 → 342, ResNet-18 224 px 1,443 → 1,263, MobileNetV2 64 px 37.5 → 33.4;
        /// VGG-16 and AlexNet on FashionMNIST even). While `profiling`, with fewer images than threads, and for graphs
        /// with deferred (compressed) weights, they run one after another (`runInPasses`).
        public var parallelPasses = true
        /// Time single passes (batch 1, or a plan that runs in one) both split over the workers and on the calling
        /// thread alone, and run them the quicker way (`WorkerChoice`): how fast cores hand work to each other varies
        /// with where the host places them.
        public var chooseWorkers = true
        /// Run each block of a 1×1 Conv, the depthwise Conv that alone reads it and the 1×1 Conv that alone reads that
        /// (`Executor.bandedBlocks`) in bands of rows where `ExpandedDepthwise` applies: neither intermediate map is
        /// stored whole, and at batch 1 each core keeps its rows through the block. Single passes take the bands or not
        /// by timing both (`WorkerChoice`) where `chooseWorkers` is set.
        public var expandInBands = true
        public init() {}
    }
}
