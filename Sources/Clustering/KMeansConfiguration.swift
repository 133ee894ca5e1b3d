/// What to cluster and how. Validated by `KMeans.fit`.
public struct KMeansConfiguration: Sendable, Equatable {
    public enum Metric: String, Sendable, CaseIterable {
        /// Squared Euclidean distance; centroid = weighted mean.
        case euclidean
        /// Rows normalised to unit length; centroid = normalised weighted sum (cosine similarity).
        case spherical
    }

    public enum Initialization: String, Sendable, Codable, CaseIterable {
        /// k-means++ when n·K (and n·K·d) is small enough for its O(n·K·d) passes, else `spreadSample`.
        case automatic
        /// D²-weighted seeding (Arthur & Vassilvitskii 2007), with row weights.
        case kMeansPlusPlus
        /// K distinct rows drawn uniformly among rows of positive weight (Forgy; what faiss does).
        case randomSample
        /// K distinct rows drawn with probability ∝ wᵢ‖xᵢ − μ‖² (μ the weighted mean): one D² round of k-means++
        /// against the mean, O(n log n), so rare far-out rows get centroids as k-means++ would give them.
        case spreadSample
    }

    public var clusters: Int
    public var metric: Metric
    public var initialization: Initialization
    public var maxIterations: Int
    /// Stop when an iteration lowers the inertia by less than this fraction.
    public var tolerance: Double
    public var seed: UInt64
    /// Tree leaves (of up to 8 centroids) one row's search may open when d ≤ 32; `.max` for exact search.
    public var leafBudget: Int
    /// After the first assignment, a row compares only the centroids nearest to its current one (a neighbour
    /// graph over the centroids, rebuilt each iteration); ignored when `leafBudget` is `.max` (exact search).
    public var neighbours: Int
    /// Up to this n·K the search is exact (`leafBudget` and `neighbours` are then ignored). This is also where
    /// k-means++ seeding is affordable, and k-means++ rows have no seeded centroid for the approximate first
    /// assignment to start from (bundled small VGG at −85.6%: inertia 55.1 approximate against 44.4 exact).
    public var exactSearchBudget = 1 << 28

    public init(clusters: Int, metric: Metric = .euclidean, initialization: Initialization = .automatic,
                maxIterations: Int = 30, tolerance: Double = 1e-3, seed: UInt64 = 0, leafBudget: Int = 2,
                neighbours: Int = 24) {
        self.clusters = clusters
        self.metric = metric
        self.initialization = initialization
        self.maxIterations = maxIterations
        self.tolerance = tolerance
        self.seed = seed
        self.leafBudget = leafBudget
        self.neighbours = neighbours
    }

    /// Largest n·K for which `automatic` still chooses k-means++.
    public static let kMeansPlusPlusBudget = 1 << 28

    /// Whether `automatic` seeds with k-means++: n·K within the budget, and n·K·d within what 3×3 kernels
    /// reach at that budget (AlexNet's 4096×4096 FC columns at k = 2048: 33 s of k-means++ against 1.8 s for
    /// spreadSample plus all Lloyd iterations, at the same reconstruction error).
    public static func affordsKMeansPlusPlus(rows n: Int, clusters k: Int, dimension d: Int) -> Bool {
        n * k <= kMeansPlusPlusBudget && n * k * d <= 9 * kMeansPlusPlusBudget
    }
}

/// The outcome of a clustering.
public struct KMeansResult: Sendable {
    /// K×d, row-major.
    public var centroids: [Float]
    public var dimension: Int
    /// Cluster of each row.
    public var assignments: [Int32]
    /// Σ wᵢ‖xᵢ − c(xᵢ)‖² for the final assignment (rows normalised first in spherical mode).
    public var inertia: Double
    /// Inertia after each assignment step, first to last; never increases.
    public var inertiaHistory: [Double]
    public var iterations: Int
    public var initialization: KMeansConfiguration.Initialization
    /// How the assignment step searched: "kd-tree + bounds" or "blas".
    public var assignmentMethod: String

    public var clusters: Int { centroids.count / max(1, dimension) }
}

public enum KMeansError: Error, Equatable, CustomStringConvertible {
    case invalidClusterCount(k: Int, rows: Int)
    case nonFinite(row: Int)
    case shape(String)

    public var description: String {
        switch self {
        case .invalidClusterCount(let k, let rows): "K must be between 1 and the number of rows (\(rows)), got \(k)"
        case .nonFinite(let row): "row \(row) contains NaN or infinite values"
        case .shape(let message): message
        }
    }
}
