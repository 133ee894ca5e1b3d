import Clustering
import Compute
import Dispatch
import ModelGraph

/// One palettized weight, as reported.
public struct PalettizedLayer: Sendable, Codable, Equatable {
    public var layer: String
    public var weight: String
    public var opType: String
    /// `scalar` (d = 1) or `vector`.
    public var form: String
    public var bits: Int
    /// Codebook entries per codebook.
    public var clusters: Int
    public var clusterDim: Int
    public var granularity: String
    public var codebooks: Int
    public var lut: String
    public var perChannelScale: Bool
    public var denseBytes: Int
    /// Indices and scales, plus the codebook unless it is shared (then counted once in `sharedCodebookBytes`).
    public var storedBytes: Int
    /// ‖W − Ŵ‖² / ‖W‖².
    public var relativeError: Double
    /// ‖W − Ŵ‖².
    public var squaredError: Double
    /// Σ Fᵢ (wᵢ − ŵᵢ)² with the sensitivity F the clustering was weighted by (about twice the loss it adds), when given.
    public var weightedError: Double? = nil
    /// Whether GPTQ-style error compensation chose the indices (else each weight took its nearest entry).
    public var compensated: Bool? = nil
    /// Why the layer's form differs from what was asked, when it does.
    public var note: String?

    enum CodingKeys: String, CodingKey {
        case layer, weight, form, bits, clusters, granularity, codebooks, lut, note, compensated
        case opType = "op_type", clusterDim = "cluster_dim", perChannelScale = "per_channel_scale", denseBytes = "dense_bytes"
        case storedBytes = "stored_bytes", relativeError = "relative_error", squaredError = "squared_error", weightedError = "weighted_error"
    }
}

public struct PalettizationResult: Sendable {
    /// Codebook form: every palettized weight rebuilt in the graph from its codebook and indices.
    public var graph: Graph
    /// The same weights reconstructed densely.
    public var denseGraph: Graph
    public var weights: [CompressedWeight]
    public var layers: [PalettizedLayer]
    /// Network-scope codebooks, each counted once.
    public var sharedCodebookBytes: Int
    /// The k-means objective summed over every vector codebook (0 for scalar LUTs).
    public var inertia = 0.0
    public var seconds: Double

    public var denseBytes: Int { layers.reduce(0) { $0 + $1.denseBytes } }
    public var storedBytes: Int { layers.reduce(0) { $0 + $1.storedBytes } + sharedCodebookBytes }
    /// Mean squared error over every palettized weight.
    public var meanSquaredError: Double { layers.reduce(0) { $0 + $1.squaredError } / Double(max(1, denseBytes / 4)) }
}

/// Palettizes every weight the configuration selects (`skipping` weights other passes own): each weight becomes
/// codebook entries and indices, per tensor, per output channel, per group of output channels or shared by the
/// network. Scalar codebooks come from exact 1-D k-means on sorted values (`ScalarKMeans`), vector codebooks from
/// k-means over the vectors (`KMeans`); entries are rounded to their stored precision and every weight is then
/// assigned to its nearest stored entry. Weights in `reserveZero` (pruned ones) keep an exact zero entry.
///
/// `importance` (a weight's name → one value ≥ 0 per element, in the tensor's order, e.g. the diagonal Fisher
/// information from calibration images) weights each element's squared error in the k-means objective, so the
/// entries go where an error costs the most; a vector weighs the sum of its elements'.
///
/// `compensation` (a graph and a layer's node → the Gram matrix XᵀX of the layer's inputs on calibration data run
/// through that graph, canonical column order, or nil when it has none: `InputGram` of the Execution module computes
/// it) turns on GPTQ-style error compensation: the codebooks are fitted as above, then each weight's columns are
/// assigned in turn with their errors spread over the columns not yet assigned (`Compensation`). Layers are taken in
/// graph order and each sees the inputs of the model with the layers before it already palettized ("true
/// sequential"), so it also absorbs what they changed in its inputs. Layers it cannot serve keep nearest assignment, with a
/// note: network-wide codebooks, pruned weights (their zeros must stay exact), nodes without a Gram matrix.
public func palettizeWeights(in graph: Graph, configuration config: PalettizationConfiguration, skipping: Set<String> = [],
                             reserveZero: Set<String> = [], importance: [String: [Float]] = [:],
                             compensation: ((Graph, Node) throws -> [Float]?)? = nil) throws -> PalettizationResult {
    try config.validate()
    let candidates = PalettizableWeight.all(in: graph).filter { !skipping.contains($0.name) }
    // Every layer pattern must name a weight that exists.
    for (i, layer) in config.layers.enumerated() where !candidates.contains(where: { globMatches(layer.name, $0.node.name) || globMatches(layer.name, $0.name) }) {
        let known = candidates.prefix(8).map { $0.node.displayName }.joined(separator: ", ")
        throw ConfigurationError(level: "layers[\(i)]", field: "name",
                                 message: "'\(layer.name)' matches no layer with weights (layers: \(known)\(candidates.count > 8 ? ", …" : ""))")
    }
    var jobs: [(weight: PalettizableWeight, settings: PalettizationSettings, note: String?)] = []
    for w in candidates {
        guard var s = try config.settings(opType: w.node.opType, names: [w.node.name, w.name]) else { continue }
        guard w.tensor.scalars.allSatisfy(\.isFinite) else { throw CompressionError.nonFinite(tensor: w.name) }
        if let f = importance[w.name], f.count != w.tensor.count || !f.allSatisfy({ $0 >= 0 && $0.isFinite }) {
            throw CompressionError.invalidImportance(tensor: w.name, detail: f.count != w.tensor.count
                ? "\(f.count) values for \(w.tensor.count) weights" : "values must be finite and ≥ 0")
        }
        var note: String? = nil
        if s.clusterDimension > w.columns {
            throw ConfigurationError(level: "layer '\(w.node.displayName)'", field: "cluster_dim",
                                     message: "\(s.clusterDimension) is larger than the layer's input axis (\(w.columns) weights per output channel)")
        }
        if w.columns % s.clusterDimension != 0 {
            let bitsPerWeight = Double(s.indexBits) / Double(s.clusterDimension)
            note = "input axis of \(w.columns) is not a multiple of cluster_dim \(s.clusterDimension): scalar LUT at the nearest bits per weight"
            s.bits = max(1, min(8, Int(bitsPerWeight.rounded())))
            s.clusterDimension = 1
            s.clusters = nil
            s.vectorScaleBits = nil
        }
        if (s.clusterDimension > 1 || s.entries > 256 || s.vectorScaleBits != nil) && reserveZero.contains(w.name) {
            throw ConfigurationError(level: "layer '\(w.node.displayName)'", field: "cluster_dim",
                                     message: "> 1 (or a scaled or wider-than-256 codebook) cannot keep pruned zeros exact yet; palettize pruned layers with scalar LUTs")
        }
        jobs.append((w, s, note))
    }
    guard !jobs.isEmpty else {
        throw CompressionError.nothingToCompress("no weight to palettize: the configuration leaves every Conv/Gemm/MatMul/Gather weight dense or the model has none")
    }

    let start = DispatchTime.now().uptimeNanoseconds
    var compressed = graph, dense = graph
    var weights: [CompressedWeight?] = Array(repeating: nil, count: jobs.count)
    var sharedBytes = 0, inertia = 0.0

    // Network scope: one codebook per distinct setting, fitted on all its weights together.
    var shared: [PalettizationSettings: [Int]] = [:]
    for (i, job) in jobs.enumerated() where job.settings.granularity == .network { shared[job.settings, default: []].append(i) }
    for (n, (settings, members)) in shared.sorted(by: { $0.value[0] < $1.value[0] }).enumerated() {
        let name = "wc_codebook_\(n)"
        let blocks = members.map { prepared(jobs[$0].weight, settings, importance: importance[jobs[$0].weight.name]) }
        let all = Array(blocks.map(\.values).joined())
        let allWeights = blocks.contains { $0.importance != nil }
            ? Array(blocks.map { $0.importance ?? [Float](repeating: 1, count: $0.values.count) }.joined()) : nil
        let fitted = try all.withUnsafeBufferPointer { values in
            try withOptionalBuffer(allWeights) { weights in
                try fitCodebook(values, weights: weights, settings: settings, reserveZero: members.contains { reserveZero.contains(jobs[$0].weight.name) },
                                seed: config.seed &+ UInt64(n), configuration: config, workspace: ScalarKMeans.Workspace())
            }
        }
        inertia += fitted.inertia
        let indices = fitted.assign(all)
        var offset = 0
        for (member, block) in zip(members, blocks) {
            let job = jobs[member]
            let count = block.values.count / settings.clusterDimension
            let layout = WeightLayout(weight: job.weight.name, shape: job.weight.tensor.shape, rows: job.weight.rows, columns: job.weight.columns,
                                      transposed: job.weight.transposed, dimension: settings.clusterDimension, entries: fitted.entries,
                                      groupSize: job.weight.rows, codebook: name, precision: settings.precision, rowScales: settings.perChannelScale,
                                      vectorScaleBits: settings.vectorScaleBits, origin: config.origin)
            let mine = Array(indices[offset..<offset + count])
            offset += count
            weights[member] = CompressedWeight(layout: layout, indices: mine, codebook: fitted.codebook, rowScales: block.rowScales,
                                               vectorScales: settings.vectorScaleBits.map { projections(block.values, mine, layout, fitted.codebook, bits: $0) })
        }
        sharedBytes += fitted.codebook.count * settings.precision.bits / 8 + (settings.precision == .int8 ? 4 : 0)
    }

    // Per tensor / channel / group: every group of every weight is an independent job, spread over the cores; each
    // worker reuses one workspace, and writes its indices straight into the weight's index buffer.
    var groupJobs: [(job: Int, rows: Range<Int>)] = []
    for (i, job) in jobs.enumerated() where job.settings.granularity != .network {
        let size = groupRows(job.settings, rows: job.weight.rows)
        for start in stride(from: 0, to: job.weight.rows, by: size) { groupJobs.append((i, start..<min(job.weight.rows, start + size))) }
    }
    let blocks = jobs.map { $0.settings.granularity == .network ? nil : prepared($0.weight, $0.settings, importance: importance[$0.weight.name]) }
    let indexBuffers = jobs.map { job -> UnsafeMutableBufferPointer<Int32>? in
        job.settings.granularity == .network ? nil : .allocate(capacity: job.weight.tensor.count / job.settings.clusterDimension)
    }
    defer { for buffer in indexBuffers { buffer?.deallocate() } }
    var fits = [FittedCodebook?](repeating: nil, count: groupJobs.count)
    var failure: Error? = nil
    fits.withUnsafeMutableBufferPointer { out in
        nonisolated(unsafe) let out = out
        nonisolated(unsafe) var failed: Error? = nil
        parallelChunks(groupJobs.count) { range in
            let workspace = ScalarKMeans.Workspace()
            for g in range {
                let (i, rows) = groupJobs[g]
                let columns = jobs[i].weight.columns, settings = jobs[i].settings
                let span = rows.lowerBound * columns..<rows.upperBound * columns
                blocks[i]!.values[span].withUnsafeBufferPointer { values in
                    do {
                        let fit = try withOptionalBuffer(blocks[i]!.importance?[span]) { weights in
                            try fitCodebook(values, weights: weights, settings: settings, reserveZero: reserveZero.contains(jobs[i].weight.name),
                                            seed: config.seed &+ UInt64(g), configuration: config, workspace: workspace)
                        }
                        fit.assign(values, to: indexBuffers[i]!.baseAddress! + rows.lowerBound * columns / settings.clusterDimension)
                        out[g] = fit
                    } catch { failed = error }
                }
            }
        }
        failure = failed
    }
    if let failure { throw failure }
    let groupsOfJob = Dictionary(grouping: groupJobs.indices, by: { groupJobs[$0].job })
    var compensated = Set<Int>(), compensationNotes: [Int: String] = [:]
    // With compensation: the model with the weights assigned so far rebuilt, whose inputs the next layer sees.
    var sequential = graph
    for (i, job) in jobs.enumerated() where job.settings.granularity != .network {
        let mine = groupsOfJob[i] ?? []
        // Groups of one tensor share one codebook tensor, so they share one entry count (the smallest, for tiny groups).
        let entries = mine.map { fits[$0]!.entries }.min()!
        var codebook: [Float] = []
        let block = blocks[i]!, columns = job.weight.columns, d = job.settings.clusterDimension
        for g in mine {
            let fit = fits[g]!.truncated(to: entries)
            codebook += fit.codebook
            if fits[g]!.entries != entries {
                let rows = groupJobs[g].rows
                block.values[rows.lowerBound * columns..<rows.upperBound * columns].withUnsafeBufferPointer {
                    fit.assign($0, to: indexBuffers[i]!.baseAddress! + rows.lowerBound * columns / d)
                }
            }
        }
        inertia += mine.reduce(0.0) { $0 + fits[$1]!.inertia }
        if let compensation {
            if job.settings.vectorScaleBits != nil {
                compensationNotes[i] = "not compensated: unit shapes with scales"
            } else if reserveZero.contains(job.weight.name) {
                compensationNotes[i] = "not compensated: a pruned weight's zeros must stay exact"
            } else if let gram = try compensation(sequential, job.weight.node), gram.count == columns * columns {
                let groups = mine.map { (rows: groupJobs[$0].rows, codebook: fits[$0]!.truncated(to: entries)) }
                if Compensation.assign(block.values, rows: job.weight.rows, columns: columns, dimension: d, gram: gram, groups: groups,
                                       into: indexBuffers[i]!.baseAddress!) {
                    compensated.insert(i)
                } else {
                    compensationNotes[i] = "not compensated: its inputs' Gram matrix is not positive definite even damped"
                }
            } else {
                compensationNotes[i] = "not compensated: no input statistics for this \(job.weight.node.opType) (grouped or depthwise convolutions, transposed inputs)"
            }
        }
        let layout = WeightLayout(weight: job.weight.name, shape: job.weight.tensor.shape, rows: job.weight.rows, columns: columns,
                                  transposed: job.weight.transposed, dimension: d, entries: entries,
                                  groupSize: groupRows(job.settings, rows: job.weight.rows), codebook: "\(job.weight.name)/wc_lut",
                                  precision: job.settings.precision, rowScales: job.settings.perChannelScale,
                                  vectorScaleBits: job.settings.vectorScaleBits, origin: config.origin)
        let indices = Array(indexBuffers[i]!)
        weights[i] = CompressedWeight(layout: layout, indices: indices, codebook: codebook, rowScales: block.rowScales,
                                      vectorScales: job.settings.vectorScaleBits.map { projections(block.values, indices, layout, codebook, bits: $0) })
        if compensation != nil { sequential.initializers[job.weight.name] = .float(weights[i]!.reconstructed()) }
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

    var layers: [PalettizedLayer] = []
    for (i, job) in jobs.enumerated() {
        let w = weights[i]!, l = w.layout
        let rebuilt = w.reconstructed()
        var err = 0.0, norm = 0.0
        for (a, b) in zip(job.weight.tensor.scalars, rebuilt.scalars) { err += Double((a - b) * (a - b)); norm += Double(a * a) }
        let weighted = importance[job.weight.name].map { f in
            zip(f, zip(job.weight.tensor.scalars, rebuilt.scalars)).reduce(0.0) { $0 + Double($1.0) * Double(($1.1.0 - $1.1.1) * ($1.1.0 - $1.1.1)) }
        }
        w.write(into: &compressed)
        dense.initializers[l.weight] = .float(rebuilt)
        let ownCodebook = job.settings.granularity == .network ? 0 : l.codebookBytes
        layers.append(PalettizedLayer(layer: job.weight.node.displayName, weight: l.weight, opType: job.weight.node.opType,
                                      form: l.dimension == 1 ? "scalar" : "vector", bits: job.settings.indexBits, clusters: l.entries,
                                      clusterDim: l.dimension, granularity: job.settings.granularity.rawValue, codebooks: l.groups,
                                      lut: l.precision.rawValue, perChannelScale: l.rowScales, denseBytes: job.weight.tensor.count * 4,
                                      storedBytes: ownCodebook + l.indexAndScaleBytes, relativeError: norm > 0 ? err / norm : 0, squaredError: err,
                                      weightedError: weighted, compensated: compensation != nil ? compensated.contains(i) : nil,
                                      note: [job.note, compensationNotes[i] ?? (compensation != nil && job.settings.granularity == .network
                                          ? "not compensated: a network-wide codebook" : nil)].compactMap { $0 }.joined(separator: "; ").nilIfEmpty))
    }
    return PalettizationResult(graph: compressed, denseGraph: dense, weights: weights.map { $0! }, layers: layers,
                               sharedCodebookBytes: sharedBytes, inertia: inertia, seconds: seconds)
}

/// Unit shapes: each vector's least-squares scale on its entry (its projection), as stored at `bits` (16: float16;
/// 8: int8 codes with one step per weight).
private func projections(_ values: [Float], _ indices: [Int32], _ l: WeightLayout, _ codebook: [Float], bits: Int) -> [Float] {
    let d = l.dimension, perRow = l.vectorsPerRow
    let raw = indices.indices.map { i in
        let c = ((i / perRow / l.groupSize) * l.entries + Int(indices[i])) * d
        var dot: Float = 0
        for j in 0..<d { dot += values[i * d + j] * codebook[c + j] }
        return dot
    }
    return quantiseScales(raw, bits: bits).stored
}

private func groupRows(_ s: PalettizationSettings, rows: Int) -> Int {
    switch s.granularity {
    case .perTensor, .network: rows
    case .perChannel: 1
    case .perGroupedChannel: min(rows, s.groupSize)
    }
}

/// A weight's canonical rows, divided by their per-channel scales when asked (the scales as stored, float16), and its
/// importance in the same order — times the squared scale (an error in the scaled row costs that much more), plus a
/// floor of 10⁻³ of the mean so that no value is ignored outright.
private func prepared(_ w: PalettizableWeight, _ s: PalettizationSettings, importance: [Float]? = nil)
    -> (values: [Float], rowScales: [Float]?, importance: [Float]?) {
    var values = w.canonical
    var weights = importance.map { w.canonical($0) }
    if var f = weights {
        let floor = Float(f.reduce(0.0) { $0 + Double($1) } / Double(max(1, f.count))) * 1e-3
        for i in f.indices { f[i] += floor > 0 ? floor : 1 }
        weights = f
    }
    guard s.perChannelScale else { return (values, nil, weights) }
    var scales = [Float](repeating: 1, count: w.rows)
    for r in 0..<w.rows {
        let row = r * w.columns..<(r + 1) * w.columns
        let m = values[row].reduce(Float(0)) { max($0, abs($1)) }
        let stored = Float(halfBits: m.halfBits)
        scales[r] = stored > 0 && stored.isFinite ? stored : 1
        for j in row { values[j] /= scales[r] }
        if weights != nil { for j in row { weights![j] *= scales[r] * scales[r] } }
    }
    return (values, scales, weights)
}

/// `body` with a buffer over `values`, or nil.
private func withOptionalBuffer<C: Collection, R>(_ values: C?, _ body: (UnsafeBufferPointer<Float>?) throws -> R) rethrows -> R where C.Element == Float {
    guard let values else { return try body(nil) }
    return try Array(values).withUnsafeBufferPointer { try body($0) }
}

private extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
