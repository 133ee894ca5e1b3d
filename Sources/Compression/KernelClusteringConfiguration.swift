import Clustering

/// Settings of the kernel-clustering pass, validated before any work is done.
public struct KernelClusteringConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// The paper: the centroid replaces the kernel.
        case plain
        /// Beyond the paper: kernel = scale × unit-norm shape; shapes clustered with spherical k-means,
        /// the per-kernel scale (the least-squares projection on the shape) kept at `scaleBits`.
        case scaled
    }

    public enum Scope: String, Sendable, CaseIterable {
        /// One codebook per kernel shape for the whole network (the paper).
        case network
        /// One codebook per layer.
        case layer
    }

    public enum Size: Sendable, Equatable {
        /// Total codebook entries (split over codebooks in proportion to their kernel counts).
        case clusters(Int)
        /// Fraction of kernels removed: K = round(N·(1 − R)) per codebook.
        case reduction(Double)
    }

    public var size: Size
    public var mode: Mode
    public var scope: Scope
    /// Conv layers left dense: glob patterns (`*`, `?`) matched against node and weight names.
    public var exclude: [String]
    /// Bits of each per-kernel scale in scaled mode: 16 (IEEE half) or 8 (symmetric, one step per layer).
    public var scaleBits: Int
    public var seed: UInt64
    public var maxIterations: Int
    /// k-means seeding (automatic: k-means++ on small problems, random rows on large ones).
    public var initialization: KMeansConfiguration.Initialization = .automatic
    /// Precision of the stored codebook entries (the kernels are rebuilt from the stored values).
    public var codebookPrecision: EntryPrecision = .fp32

    public init(size: Size, mode: Mode = .plain, scope: Scope = .network, exclude: [String] = [], scaleBits: Int = 16,
                seed: UInt64 = 0, maxIterations: Int = 30) {
        self.size = size
        self.mode = mode
        self.scope = scope
        self.exclude = exclude
        self.scaleBits = scaleBits
        self.seed = seed
        self.maxIterations = maxIterations
    }

    public func validate() throws {
        switch size {
        case .clusters(let k) where k < 1:
            throw CompressionError.invalidSetting("--kernel-clusters must be at least 1, got \(k)")
        case .reduction(let r) where !(r >= 0 && r < 1):
            throw CompressionError.invalidSetting("--kernel-reduction must be in [0, 1), got \(r)")
        default: break
        }
        guard scaleBits == 8 || scaleBits == 16 else {
            throw CompressionError.invalidSetting("--scale-bits must be 8 or 16, got \(scaleBits)")
        }
        guard maxIterations >= 1 else { throw CompressionError.invalidSetting("--max-iterations must be at least 1") }
    }
}

public enum CompressionError: Error, Equatable, CustomStringConvertible {
    case invalidSetting(String)
    case noConvolutions(String)
    case tooManyClusters(k: Int, kernels: Int)
    case nonFinite(tensor: String)
    case noFullyConnected(String)
    /// A compressed weight's recorded layout does not match the graph.
    case layout(weight: String, detail: String)
    /// Nothing in the model matches what the configuration asks for.
    case nothingToCompress(String)
    /// Sensitivity values that do not fit their weight.
    case invalidImportance(tensor: String, detail: String)

    public var description: String {
        switch self {
        case .invalidSetting(let message): message
        case .noConvolutions(let detail): "the model has no Conv layer with constant weights to cluster\(detail)"
        case .tooManyClusters(let k, let kernels): "K = \(k) is larger than the number of kernels (\(kernels)); choose K between 1 and \(kernels)"
        case .noFullyConnected(let detail): "the model has no fully-connected layer (Gemm/MatMul with a constant 2-D weight) to compress\(detail)"
        case .nonFinite(let tensor): "weight tensor '\(tensor)' contains NaN or infinite values"
        case .layout(let weight, let detail): "compressed weight '\(weight)': \(detail)"
        case .nothingToCompress(let detail): detail
        case .invalidImportance(let tensor, let detail): "sensitivity of weight '\(tensor)': \(detail)"
        }
    }
}

/// `*` matches any run of characters, `?` one character.
func globMatches(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern), t = Array(text)
    var memo = [[Bool?]](repeating: [Bool?](repeating: nil, count: t.count + 1), count: p.count + 1)
    func match(_ i: Int, _ j: Int) -> Bool {
        if let known = memo[i][j] { return known }
        let result: Bool
        if i == p.count { result = j == t.count }
        else if p[i] == "*" { result = match(i + 1, j) || (j < t.count && match(i, j + 1)) }
        else { result = j < t.count && (p[i] == "?" || p[i] == t[j]) && match(i + 1, j + 1) }
        memo[i][j] = result
        return result
    }
    return match(0, 0)
}
