import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation
import ModelGraph

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress at several settings, evaluate each, and chart accuracy against size.",
        discussion: """
        Palettization (--bits): bits × granularities × cluster dims, every Conv/Gemm/MatMul/Gather weight.
        Kernel sweep (--kernel-reduction, the default when nothing else is asked): kernel reductions × kernel modes.
        Neuron sweep (--neurons): sparsity × column reduction × neuron modes on the fully-connected layers.
        Several families in one run share one table and one chart (top-1 against footprint), so the frontier shows
        which form wins at each size.
        """)

    @OptionGroup var model: ModelArgument

    @Option(help: "Comma-separated kernel reductions, each in [0, 1) (default 0.5,0.75,0.856,0.9,0.95,0.99 when no other family is asked).")
    var kernelReduction: String?

    @Option(help: "Palettization: comma-separated index bits (K = 2^bits entries per codebook).")
    var bits: String?

    @Option(help: "Palettization: comma-separated granularities (per-tensor, per-channel, per-grouped-channel, network).")
    var granularity: String = "per-tensor"

    @Option(help: "Palettization: output channels per codebook with per-grouped-channel.")
    var groupSize: Int = 16

    @Option(help: "Palettization: comma-separated vector lengths d (1 = scalar LUT); bits then count per vector.")
    var clusterDim: String = "1"

    @Option(help: "Palettization: precision of codebook entries (fp32, fp16, int8).")
    var lut: EntryPrecision = .fp16

    @Option(help: "Palettization with --cluster-dim d > 1: comma-separated bits per weight; each gives bits = round(d·b) per vector (instead of --bits).")
    var vectorBitsPerWeight: String?

    @Option(help: "Sensitivity (diagonal Fisher) on N training images weights the clustering of every point.")
    var calibration: Int?

    @Option(help: "Palettization with bits chosen per weight (needs --calibration): comma-separated targets in bits per weight, at each --granularity.")
    var bitsPerWeight: String?

    @Option(help: ArgumentHelp("With --bits-per-weight: comma-separated sets of forms each weight may take (scalar, scalar+vector).",
                               discussion: "Every set is solved at every target from one measurement of the candidates of all sets."))
    var allocationForms: String = "scalar"

    @Option(help: "With --bits-per-weight: what a candidate costs on the calibration images: kl or logits (as compress --allocation-cost).")
    var allocationCost: OutputDivergence.Measure = .kl

    @Flag(help: "Palettization points: GPTQ-style error compensation on the --calibration images.")
    var compensate = false

    @Option(help: "Add the rows of an earlier sweep.json of the same model to the table and chart (repeatable).")
    var include: [String] = []

    @Option(help: "Comma-separated modes to run at each reduction (plain, scaled).")
    var kernelModes: String?

    @Option(help: "Neuron sweep: comma-separated modes (kmeans, spherical, spherical-weighted).")
    var neurons: String?

    @Option(help: "Neuron sweep: comma-separated column reductions, each in [0, 1).")
    var columnReduction: String = "0.5,0.75,0.9"

    @Option(help: "Neuron sweep: comma-separated sparsities (magnitude pruning first), each in [0, 1).")
    var sparsity: String = "0"

    @Option(help: "Neuron sweep: pruning threshold per layer or global.")
    var pruneScope: PruningConfiguration.Scope = .layer

    @Option(help: "Neuron sweep: fully-connected layers (names or globs, comma-separated; default all).")
    var layers: [String] = []

    @OptionGroup var kernels: KernelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Also fine-tune every point for this many epochs and report its top-1 (a fine-tuned column).")
    var finetuneEpochs: Int?

    @OptionGroup var training: TrainingOptions

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Option(help: "Folder for sweep.csv, sweep.json, sweep.md and sweep.svg.")
    var out: String?

    func validate() throws {
        try SensitivityOptions.validate(calibration: calibration, allocating: bitsPerWeight != nil)
        try SensitivityOptions.validate(compensate: compensate, calibration: calibration)
        _ = try formSets()
    }

    func run() throws {
        // A bad --out fails before any work.
        if let out { try createOutputDirectory(out) }
        let graph = try model.load(strictness: .runnable)
        let dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing, limit: limit)
        var plan = try palettizationPlan()
        if neurons != nil { plan += try neuronPlan() }
        if kernelReduction != nil || plan.isEmpty { plan += try kernelPlan() }
        let measures = try SensitivityOptions.measures(graph, calibration: calibration, allocating: bitsPerWeight != nil,
                                                       compensating: compensate, data: dataOptions, cost: allocationCost)
        let baseline = try Evaluator.evaluate(try Executor(graph: graph), on: dataset) { Terminal.progress("baseline", $0, $1) }
        var rows: [SweepRow] = []
        // Allocated points share one measurement of the candidates per granularity; each point only solves its target.
        var curves: [PalettizationSettings.Granularity: AllocationCurves] = [:]
        let allForms = try formSets().flatMap(\.candidates)
        for (number, point) in plan.enumerated() {
            var config = CompressionConfiguration(
                pruning: point.sparsity.flatMap { $0 > 0 ? PruningConfiguration(sparsity: $0, scope: pruneScope, layers: layerPatterns) : nil },
                neurons: point.neurons, kernels: point.kernels, palettization: point.palettization, format: .codebook,
                importance: measures.importance, bitsPerWeight: point.bitsPerWeight)
            config.allocationCost = measures.cost
            if point.palettization != nil { config.compensation = measures.compensation }
            if let forms = point.allocationForms, let p = point.palettization, let g = point.settings?.granularity {
                if curves[g] == nil {
                    curves[g] = try mapped {
                        try AllocationCurves(measuring: graph, configuration: p, candidates: allForms, importance: measures.importance, cost: measures.cost,
                                             compensation: measures.compensation)
                    }
                    let c = curves[g]!
                    let candidates = c.curves.values.reduce(0) { $0 + $1.count }
                    FileHandle.standardError.write(Data("allocation (\(g.rawValue)): \(candidates) candidates for \(c.weights.count) weights measured in \(String(format: "%.1f", c.seconds)) s\n".utf8))
                }
                config.allocationCurves = try mapped { try curves[g]!.restricted(to: forms.candidates) }
            }
            let label = "\(point.label) (\(number + 1)/\(plan.count))"
            let attempt = Result { try compress(graph, configuration: config) }
            if case .failure(let error as ConfigurationError) = attempt, error.level == "allocation", point.bitsPerWeight != nil {
                // A target these forms cannot reach is one point less, not the end of the sweep.
                FileHandle.standardError.write(Data("warning: \(label): skipped: --bits-per-weight \(error.message)\n".utf8))
                continue
            }
            let result = try mapped { try attempt.get() }
            let report = try Evaluator.evaluate(try Executor(graph: result.graph), on: dataset) { Terminal.progress(label, $0, $1) }
            var row = SweepRow(mode: point.mode, footprintBytes: result.footprintBytes, denseBytes: result.denseBytes,
                               compressionRatio: result.compressionRatio, top1: report.top1, deltaTop1: report.top1 - baseline.top1,
                               clusteringSeconds: result.clusteringSeconds)
            if let k = result.kernels {
                row.scope = k.configuration.scope.rawValue
                row.kernelReduction = k.footprint.kernelReduction
                row.clusters = k.footprint.clusters
                row.kernels = k.footprint.kernels
                row.inertia = k.inertia
            }
            if let n = result.neurons {
                row.sparsity = point.sparsity ?? 0
                row.columnReduction = result.columnReduction
                row.clusters = n.layers.reduce(0) { $0 + $1.clusters }
                row.columns = n.layers.reduce(0) { $0 + $1.inputs }
                row.foldedLayers = n.foldedLayers
                row.scaledLayers = n.scaledLayers
                row.inertia = n.layers.reduce(0) { $0 + $1.inertia }
            }
            if let p = result.palettization, let s = point.settings {
                row.bits = point.bitsPerWeight == nil ? s.bits : nil
                row.granularity = s.granularity.rawValue
                row.clusterDim = point.allocationForms == .scalarAndVector ? nil : s.clusterDimension
                row.bitsPerWeight = result.bitsPerWeight
                row.clusters = point.bitsPerWeight == nil ? s.entries : nil
                row.relativeError = p.layers.reduce(0) { $0 + $1.relativeError * Double($1.denseBytes) } / Double(max(1, p.denseBytes))
            }
            var tuned = ""
            if let finetuneEpochs {
                let (_, reports) = try training.fineTune(result.graph, epochs: finetuneEpochs, seed: kernels.seed, data: dataOptions, test: dataset)
                row.top1Finetuned = reports.last?.testTop1
                tuned = ", fine-tuned \(Terminal.percent(row.top1Finetuned ?? 0))"
            }
            rows.append(row)
            FileHandle.standardError.write(Data("\(label): top-1 \(Terminal.percent(report.top1))\(tuned)\n".utf8))
        }
        for path in include {
            guard let data = FileManager.default.contents(atPath: path),
                  let earlier = try? JSONDecoder().decode(SweepReport.self, from: data) else {
                throw ValidationError("--include \(path) is not a sweep.json written by weightcluster sweep")
            }
            guard earlier.images == dataset.count, abs(earlier.baselineTop1 - baseline.top1) < 1e-9 else {
                throw ValidationError("--include \(path) was measured on another model or image set (baseline \(Terminal.percent(earlier.baselineTop1)) on \(earlier.images) images)")
            }
            rows = earlier.rows + rows
        }
        let sweep = SweepReport(model: try model.path, images: dataset.count, baselineTop1: baseline.top1, rows: rows)
        print(sweep.table())
        if let out {
            for (name, text) in [("sweep.csv", sweep.csv()), ("sweep.json", try sweep.json()), ("sweep.md", sweep.markdown()),
                                 ("sweep.svg", sweep.svg())] {
                try writeAtomically(Data(text.utf8), to: (out as NSString).appendingPathComponent(name))
            }
            // The measured cost and size of every candidate form of every weight, one file per granularity.
            for (granularity, c) in curves.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeAtomically(try encoder.encode(c), to: (out as NSString).appendingPathComponent("allocation-curves-\(granularity.rawValue).json"))
            }
            print("wrote \(out)/sweep.{csv,json,md,svg}\(curves.isEmpty ? "" : " and allocation-curves-*.json")")
        }
    }

    struct Point {
        var label: String
        var mode: String
        var sparsity: Double?
        var neurons: NeuronClusteringConfiguration?
        var kernels: KernelClusteringConfiguration?
        var palettization: PalettizationConfiguration?
        var settings: PalettizationSettings?
        /// A size target the bits are allocated to, and the forms each weight may take.
        var bitsPerWeight: Double? = nil
        var allocationForms: SensitivityOptions.AllocationForms? = nil
    }

    /// Comma-separated positive numbers (none when the option is absent).
    func decimals(_ text: String?, option: String) throws -> [Double] {
        try (text ?? "").split(separator: ",").map { item -> Double in
            guard let b = Double(String(item).trimmed), b > 0, b.isFinite else { throw ValidationError("\(option) values must be positive numbers, got '\(item)'") }
            return b
        }
    }

    func palettizationPlan() throws -> [Point] {
        guard bits != nil || vectorBitsPerWeight != nil || bitsPerWeight != nil else { return [] }
        let dims = try integers(clusterDim, option: "--cluster-dim")
        let perWeight = vectorBitsPerWeight == nil ? nil : try decimals(vectorBitsPerWeight, option: "--vector-bits-per-weight")
        let granularities = try granularity.split(separator: ",").map { text in
            guard let g = PalettizationSettings.Granularity(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown granularity '\(text)' (\(PalettizationSettings.Granularity.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return g
        }
        // Data-aware points say so in their family's name.
        let weighted = calibration == nil ? "" : compensate ? ", Fisher-weighted, compensated" : ", Fisher-weighted"
        var plan: [Point] = []
        for target in try decimals(bitsPerWeight, option: "--bits-per-weight") {
            for g in granularities {
                for forms in try formSets() {
                    let settings = PalettizationSettings(bits: 4, granularity: g, groupSize: groupSize, precision: lut)
                    let config = PalettizationConfiguration(global: WeightFormOverride(form: .palettize, granularity: g, groupSize: groupSize, lut: lut),
                                                            seed: kernels.seed)
                    let form = "allocated \(g.rawValue)\(forms == .scalar ? "" : ", \(forms.rawValue)")\(weighted)"
                    plan.append(Point(label: "\(form) \(target) bits/weight", mode: form, palettization: config, settings: settings,
                                      bitsPerWeight: target, allocationForms: forms))
                }
            }
        }
        guard bits != nil || vectorBitsPerWeight != nil else { return plan }
        for d in dims {
            let widths = try d > 1 && perWeight != nil ? perWeight!.map { Int((Double(d) * $0).rounded()) } : integers(bits ?? "", option: "--bits")
            for g in granularities {
                for b in widths {
                    let settings = PalettizationSettings(bits: b, granularity: g, groupSize: groupSize, clusterDimension: d, precision: lut)
                    let config = PalettizationConfiguration(
                        global: WeightFormOverride(form: .palettize, bits: b, granularity: g, groupSize: groupSize, clusterDim: d, lut: lut),
                        seed: kernels.seed)
                    try mapped { try config.validate() }
                    let form = (d == 1 ? "scalar \(g.rawValue)" : "vector d=\(d) \(g.rawValue)") + weighted
                    plan.append(Point(label: "\(form) \(b)-bit", mode: form, palettization: config, settings: settings))
                }
            }
        }
        return plan
    }

    /// --allocation-forms: the sets of forms allocated points choose among.
    func formSets() throws -> [SensitivityOptions.AllocationForms] {
        try allocationForms.split(separator: ",").map { text in
            guard let forms = SensitivityOptions.AllocationForms(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown --allocation-forms '\(text)' (\(SensitivityOptions.AllocationForms.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return forms
        }
    }

    func integers(_ text: String, option: String) throws -> [Int] {
        try text.split(separator: ",").map { item -> Int in
            guard let v = Int(String(item).trimmed) else { throw ValidationError("\(option) values must be whole numbers, got '\(item)'") }
            return v
        }
    }

    var layerPatterns: [String] { layers.flatMap { $0.split(separator: ",").map { String($0).trimmed } } }

    func kernelPlan() throws -> [Point] {
        let reductions = try fractions(kernelReduction ?? "0.5,0.75,0.856,0.9,0.95,0.99", option: "--kernel-reduction")
        let modes = try (kernelModes ?? kernels.kernelMode.rawValue).split(separator: ",").map { text in
            guard let mode = KernelClusteringConfiguration.Mode(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown kernel mode '\(text)' (plain, scaled)")
            }
            return mode
        }
        return try modes.flatMap { mode in
            try reductions.map { r in
                var options = kernels
                options.kernelMode = mode
                return Point(label: "\(mode.rawValue) R=\(r)", mode: mode.rawValue, kernels: try options.configuration(.reduction(r)))
            }
        }
    }

    func neuronPlan() throws -> [Point] {
        let reductions = try fractions(columnReduction, option: "--column-reduction")
        let sparsities = try fractions(sparsity, option: "--sparsity")
        let modes = try neurons!.split(separator: ",").map { text in
            guard let mode = NeuronClusteringConfiguration.Mode(rawValue: String(text).trimmed) else {
                throw ValidationError("unknown neuron mode '\(text)' (kmeans, spherical, spherical-weighted)")
            }
            return mode
        }
        var plan: [Point] = []
        for s in sparsities {
            for mode in modes {
                for r in reductions {
                    var config = NeuronClusteringConfiguration(size: .reduction(r), mode: mode, layers: layerPatterns,
                                                               seed: kernels.seed, maxIterations: kernels.maxIterations)
                    config.initialization = kernels.kernelInit
                    try config.validate()
                    plan.append(Point(label: "\(mode.rawValue) sparsity=\(s) R=\(r)", mode: mode.rawValue, sparsity: s, neurons: config))
                }
            }
        }
        return plan
    }

    func fractions(_ text: String, option: String) throws -> [Double] {
        try text.split(separator: ",").map { item -> Double in
            guard let r = Double(String(item).trimmed), r >= 0, r < 1 else {
                throw ValidationError("\(option) values must be numbers in [0, 1), got '\(item)'")
            }
            return r
        }
    }
}
